//! Dependencies point one way, as ARCHITECTURE.md draws them:
//! - in the `perpeft` library, every `crate::` reference goes from a top-level module to one in
//!   a lower layer of [`LAYERS`];
//! - in every crate of the workspace (`server`, `data`, `shared`, `app`), the files (modules)
//!   form no import cycle through `crate::` and `super::` paths.
//!
//! A new edge upwards or a cycle fails here, naming the files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The library's top-level modules by layer, lowest first; a module uses lower layers only.
const LAYERS: &[&[&str]] = &[
    &["error", "params"],
    &["config", "device"],
    &["rec", "cluster"],
    &["store"],
    &["eval", "backbone"],
    &["peft"],
    &["train", "engine", "bench"],
    &["catalog", "export"],
    &["jobs"],
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

/// The paths a file names after `prefix` (`crate::` or `super::`), each as its segments;
/// a `{a, b::c}` group is expanded one level (a group nested in it counts as its head).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let segments = |s: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = s.trim();
        loop {
            let id = ident(rest);
            if id.is_empty() {
                break;
            }
            out.push(id.to_string());
            match rest[id.len()..].strip_prefix("::") {
                Some(r) if !r.starts_with('{') => rest = r,
                _ => break,
            }
        }
        out
    };
    let mut out = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        // `super::super::x` is read from its first `super::` only
        if prefix == "super::" && code[..at].ends_with("super::") {
            continue;
        }
        let mut rest = &code[at + prefix.len()..];
        let mut lead = Vec::new();
        while let Some(r) = rest.strip_prefix("super::") {
            lead.push("super".to_string());
            rest = r;
        }
        let head = segments(rest);
        let after_head = head.iter().map(|s| s.len() + 2).sum::<usize>();
        let group = rest.get(after_head..).and_then(|r| r.strip_prefix('{'));
        let with_lead = |mut p: Vec<String>| {
            let mut v = lead.clone();
            v.append(&mut p);
            v
        };
        match group {
            Some(group) => {
                let (mut depth, mut start) = (0, 0);
                for (i, c) in group.char_indices() {
                    let item = match c {
                        '{' => {
                            depth += 1;
                            None
                        }
                        '}' if depth == 0 => Some(&group[start..i]),
                        '}' => {
                            depth -= 1;
                            None
                        }
                        ',' if depth == 0 => Some(&group[start..i]),
                        _ => None,
                    };
                    if let Some(item) = item {
                        let mut p = head.clone();
                        p.extend(segments(item));
                        out.push(with_lead(p));
                        start = i + 1;
                        if c == '}' {
                            break;
                        }
                    }
                }
            }
            None => out.push(with_lead(head)),
        }
    }
    out.retain(|p| !p.is_empty() && p.last().is_some_and(|s| s != "self"));
    out
}

/// A crate's files as module paths (`src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`, `lib.rs` →
/// the root, `main.rs` → `main`) with the modules each one references (references to the
/// root, or to another crate, are not edges).
struct Crate {
    modules: BTreeMap<Vec<String>, (PathBuf, BTreeSet<Vec<String>>)>,
}

impl Crate {
    fn read(src: &Path) -> Self {
        let mut files = Vec::new();
        rust_files(src, &mut files);
        let mut raw = BTreeMap::new();
        for file in files {
            let rel = file.strip_prefix(src).unwrap().with_extension("");
            let mut path: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(path.last().map(String::as_str), Some("mod" | "lib")) {
                path.pop();
            }
            let text = code(&std::fs::read_to_string(&file).unwrap());
            raw.insert(path, (file, text));
        }
        let known: BTreeSet<Vec<String>> = raw.keys().cloned().collect();
        // the longest known module that a path starts with
        let resolve = |p: &[String]| -> Option<Vec<String>> {
            (1..=p.len())
                .rev()
                .map(|n| p[..n].to_vec())
                .find(|m| known.contains(m))
        };
        let modules = raw
            .into_iter()
            .map(|(me, (file, text))| {
                let mut uses = BTreeSet::new();
                for p in paths_after(&text, "crate::") {
                    uses.extend(resolve(&p));
                }
                for p in paths_after(&text, "super::") {
                    // `super` is the parent module, whatever file the module lives in
                    let mut base = me.clone();
                    base.pop();
                    let mut rest: &[String] = &p;
                    while rest.first().is_some_and(|s| s == "super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.extend(rest.iter().cloned());
                    uses.extend(resolve(&base));
                }
                uses.remove(&me);
                (me, (file, uses))
            })
            .collect();
        Self { modules }
    }

    /// Every cycle found by a depth-first walk of the file graph, as `a -> b -> a`.
    fn cycles(&self) -> Vec<String> {
        let mut found = Vec::new();
        let mut state: BTreeMap<&Vec<String>, u8> = BTreeMap::new();
        fn visit<'a>(
            c: &'a Crate,
            m: &'a Vec<String>,
            stack: &mut Vec<&'a Vec<String>>,
            state: &mut BTreeMap<&'a Vec<String>, u8>,
            found: &mut Vec<String>,
        ) {
            state.insert(m, 1);
            stack.push(m);
            for next in &c.modules[m].1 {
                if next.is_empty() {
                    continue;
                }
                match state.get(next).copied() {
                    Some(1) => {
                        let at = stack.iter().position(|s| *s == next).unwrap();
                        let cycle: Vec<String> = stack[at..].iter().map(|s| s.join("::")).collect();
                        found.push(format!("{} -> {}", cycle.join(" -> "), next.join("::")));
                    }
                    Some(_) => {}
                    None => visit(c, next, stack, state, found),
                }
            }
            stack.pop();
            state.insert(m, 2);
        }
        for m in self.modules.keys() {
            if !state.contains_key(m) {
                visit(self, m, &mut Vec::new(), &mut state, &mut found);
            }
        }
        found
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn library_modules_depend_on_lower_layers_only() {
    let krate = Crate::read(&workspace().join("server/src"));
    let mut edges = 0;
    let mut wrong = Vec::new();
    for (me, (file, uses)) in &krate.modules {
        let Some(top) = me.first() else { continue };
        if top == "main" {
            continue;
        }
        for used in uses {
            let Some(other) = used.first() else { continue };
            // `data` is the perpeft-data crate, re-exported: below every module
            if other == top || other == "data" {
                continue;
            }
            edges += 1;
            if layer(other) >= layer(top) {
                wrong.push(format!("{} uses {}", file.display(), used.join("::")));
            }
        }
    }
    assert!(
        edges > 40,
        "only {edges} imports found: the scan is not reading the code"
    );
    assert!(
        wrong.is_empty(),
        "imports against the layering of ARCHITECTURE.md:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_crate_has_an_import_cycle_between_its_files() {
    for name in ["server", "data", "shared", "app"] {
        let krate = Crate::read(&workspace().join(name).join("src"));
        assert!(krate.modules.len() > 3, "{name}: too few files read");
        let cycles = krate.cycles();
        assert!(
            cycles.is_empty(),
            "{name}: import cycles\n{}",
            cycles.join("\n")
        );
    }
}

#[test]
fn the_scanner_sees_imports_cycles_and_ignores_comments_and_strings() {
    let text = "use crate::{config::{A, B}, store::RunDir};\n// crate::api in a comment\n\
                let s = \"crate::engine\"; crate::rec::f(); /* crate::train */ use super::x::Y;";
    let code = code(text);
    let crate_paths: BTreeSet<String> = paths_after(&code, "crate::")
        .into_iter()
        .map(|p| p.join("::"))
        .collect();
    // a nested group counts as its head: enough to name the module
    let want: BTreeSet<String> = ["config", "store::RunDir", "rec::f"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(crate_paths, want);
    assert_eq!(paths_after(&code, "super::"), vec![vec!["x", "Y"]]);

    // two files that use each other are reported
    let dir = std::env::temp_dir().join(format!("perpeft-arch-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "pub mod a;\npub mod b;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "pub mod c;\nuse crate::b::B;\n").unwrap();
    std::fs::write(dir.join("a/c.rs"), "use super::super::b::X;\n").unwrap();
    std::fs::write(dir.join("b.rs"), "use crate::a::A;\n").unwrap();
    let cycles = Crate::read(&dir).cycles();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(cycles, ["a -> b -> a"], "{cycles:?}");
}
