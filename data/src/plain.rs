//! The plain format for a user's own data (documented in `docs/data-format.md`):
//!
//! - `interactions.csv` (header `user,item,timestamp`) or `interactions.jsonl`
//!   (`{"user": .., "item": .., "timestamp": ..}` per line);
//! - `items.csv` (header `id,title` plus optional `image`, `text`, `categories` (separated by
//!   `|`)) or `items.jsonl`.
//!
//! Items get internal ids in file order. Each user's interactions are sorted by timestamp with a
//! stable sort. Image paths are relative to the dataset directory; missing files are counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{DataError, Dataset, ItemMeta, LoadReport, Sequences, checksum, parse_time, read_text};

/// One of the two files, in whichever syntax it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Comma-separated with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

fn find(dir: &Path, stem: &str) -> Result<(PathBuf, Syntax), DataError> {
    let csv = dir.join(format!("{stem}.csv"));
    let jsonl = dir.join(format!("{stem}.jsonl"));
    match (csv.exists(), jsonl.exists()) {
        (true, false) => Ok((csv, Syntax::Csv)),
        (false, true) => Ok((jsonl, Syntax::Jsonl)),
        (true, true) => Err(DataError::at(
            &csv,
            None,
            format!("both {stem}.csv and {stem}.jsonl exist; keep one"),
        )),
        (false, false) => Err(DataError::at(
            &csv,
            None,
            format!("neither {stem}.csv nor {stem}.jsonl exists"),
        )),
    }
}

/// Loads `dir` as dataset `name`.
pub fn load(dir: &Path, name: &str) -> Result<Dataset, DataError> {
    let (inter_path, inter_syntax) = find(dir, "interactions")?;
    let (items_path, items_syntax) = find(dir, "items")?;
    let inter = read_text(&inter_path)?;
    let items = read_text(&items_path)?;
    parse(
        name,
        dir,
        (&inter_path, inter_syntax, &inter),
        (&items_path, items_syntax, &items),
        |p| p.is_file(),
    )
}

/// A record: 1-based line and named fields as text.
type Record = (usize, HashMap<String, String>);

fn records(
    path: &Path,
    syntax: Syntax,
    text: &str,
    required: &[&str],
) -> Result<Vec<Record>, DataError> {
    let mut out = Vec::new();
    match syntax {
        Syntax::Csv => {
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(text.as_bytes());
            let headers: Vec<String> = rdr
                .headers()
                .map_err(|e| DataError::at(path, Some(1), format!("bad CSV header: {e}")))?
                .iter()
                .map(|h| h.trim().to_string())
                .collect();
            for r in required {
                if !headers.iter().any(|h| h == r) {
                    return Err(DataError::at(
                        path,
                        Some(1),
                        format!("header has no {r} column (has {})", headers.join(",")),
                    ));
                }
            }
            for rec in rdr.records() {
                let rec = rec.map_err(|e| {
                    let line = e.position().map(|p| p.line() as usize);
                    DataError::at(path, line, format!("bad CSV record: {e}"))
                })?;
                let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
                let fields = headers
                    .iter()
                    .cloned()
                    .zip(rec.iter().map(str::to_string))
                    .collect();
                out.push((line, fields));
            }
        }
        Syntax::Jsonl => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(line)
                    .map_err(|e| DataError::at(path, Some(i + 1), format!("bad JSON: {e}")))?;
                let Value::Object(map) = value else {
                    return Err(DataError::at(path, Some(i + 1), "expected a JSON object"));
                };
                let mut fields = HashMap::new();
                for (k, v) in map {
                    let text = match v {
                        Value::String(s) => s,
                        Value::Number(n) => n.to_string(),
                        Value::Null => continue,
                        other => {
                            return Err(DataError::at(
                                path,
                                Some(i + 1),
                                format!("field {k:?} must be a string or number, got {other}"),
                            ));
                        }
                    };
                    fields.insert(k, text);
                }
                for r in required {
                    if !fields.contains_key(*r) {
                        return Err(DataError::at(
                            path,
                            Some(i + 1),
                            format!("missing field {r:?}"),
                        ));
                    }
                }
                out.push((i + 1, fields));
            }
        }
    }
    Ok(out)
}

/// Parses both files from memory. `exists` decides whether an image path is present.
pub fn parse(
    name: &str,
    dir: &Path,
    (inter_path, inter_syntax, inter): (&Path, Syntax, &str),
    (items_path, items_syntax, items_text): (&Path, Syntax, &str),
    exists: impl Fn(&Path) -> bool,
) -> Result<Dataset, DataError> {
    let mut report = LoadReport::default();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut items = Vec::new();
    for (line, f) in records(items_path, items_syntax, items_text, &["id", "title"])? {
        let id = f["id"].trim().to_string();
        if id.is_empty() {
            return Err(DataError::at(items_path, Some(line), "empty item id"));
        }
        if index.insert(id.clone(), items.len() as u32 + 1).is_some() {
            return Err(DataError::at(
                items_path,
                Some(line),
                format!("duplicate item id {id:?}"),
            ));
        }
        let title = f["title"].trim().to_string();
        let text = f
            .get("text")
            .map(|t| t.trim())
            .filter(|t| !t.is_empty())
            .unwrap_or(&title)
            .to_string();
        let image = match f.get("image").map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => None,
            Some(rel) => {
                let p = dir.join(rel);
                if exists(&p) {
                    Some(p)
                } else {
                    report.missing_images += 1;
                    None
                }
            }
        };
        let categories = f
            .get("categories")
            .map(|c| {
                c.split('|')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        items.push(ItemMeta {
            raw_id: id,
            title,
            text,
            categories,
            image,
        });
    }
    let mut seqs = Sequences::default();
    for (line, f) in records(
        inter_path,
        inter_syntax,
        inter,
        &["user", "item", "timestamp"],
    )? {
        let raw_item = f["item"].trim();
        let item = *index.get(raw_item).ok_or_else(|| {
            DataError::at(
                inter_path,
                Some(line),
                format!(
                    "unknown item id {raw_item:?}: not in {}",
                    items_path.display()
                ),
            )
        })?;
        let ts = f["timestamp"].trim();
        let time = parse_time(ts).ok_or_else(|| {
            DataError::at(
                inter_path,
                Some(line),
                format!("timestamp {ts:?} is not a number"),
            )
        })?;
        let user = f["user"].trim();
        if user.is_empty() {
            return Err(DataError::at(inter_path, Some(line), "empty user id"));
        }
        seqs.push(user, item, time);
    }
    if seqs.is_empty() {
        return Err(DataError::at(inter_path, None, "no interactions"));
    }
    let (user_ids, sequences, times) = seqs.finish();
    Ok(Dataset::new(
        name,
        user_ids,
        items,
        sequences,
        checksum(&[inter.as_bytes(), items_text.as_bytes()]),
        report,
    )
    .with_times(times))
}
