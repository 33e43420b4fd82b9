//! The library's modules depend on each other one way, as ARCHITECTURE.md draws them: every
//! `crate::` reference in `server/src` goes from a module to one in a lower layer. A new edge
//! upwards (or a cycle) fails here, naming the file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first; a module may use those of lower layers only.
const LAYERS: &[&[&str]] = &[
    &["error", "params"],
    &["config", "device"],
    &["rec", "cluster"],
    &["eval", "store"],
    &["backbone"],
    &["peft"],
    &["train", "engine", "bench"],
    &["api"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module {module} is not in LAYERS: add it where it belongs"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments and string literals (so a path in a doc is not an import).
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
            }
            '"' => {
                let mut escaped = false;
                for c in chars.by_ref() {
                    if !escaped && c == '"' {
                        break;
                    }
                    escaped = !escaped && c == '\\';
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a file names through `crate::x` or `crate::{x, y::z}`.
fn references(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut start) = (0, 0);
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(group[start..i].trim()).to_string());
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(group[start..i].trim()).to_string());
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest).to_string());
        }
    }
    out.retain(|m| !m.is_empty() && m != "self");
    out
}

#[test]
fn modules_depend_on_lower_layers_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut edges = BTreeSet::new();
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for used in references(&code(&text)) {
            // `data` is the perpeft-data crate, re-exported: below every module
            if used == module || used == "data" {
                continue;
            }
            edges.insert((module.clone(), used.clone()));
            if layer(&used) >= layer(&module) {
                wrong.push(format!("{} uses {used}", rel.display()));
            }
        }
    }
    assert!(
        edges.len() > 20,
        "the scan found too few imports to be reading the code: {edges:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layering of ARCHITECTURE.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_scanner_sees_imports_and_ignores_comments_and_strings() {
    let text = "use crate::{config::{A, B}, store::RunDir};\n// crate::api in a comment\n\
                let s = \"crate::engine\"; crate::rec::f(); /* crate::train */";
    let found: Vec<String> = references(&code(text)).into_iter().collect();
    assert_eq!(found, ["config", "rec", "store"]);
}
