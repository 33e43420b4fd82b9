//! The PerPEFT authors' Amazon Reviews 2023 release, read unchanged (docs/method.md §2.2):
//!
//! - `{ds}_final.txt`: `user item` per line, both 1-based integers, each user's lines in
//!   chronological order (file order is kept);
//! - `{ds}_item2id_final.pickle`: dict internal item id (`1..=N`) → raw item key;
//! - `{ds}_texts_final.pickle`: dict raw key → title (missing titles get the reference's
//!   fallback `"No description available."`, counted);
//! - `{ds}_images/{raw}.jpg`: item images, decoded on demand (missing files counted).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_pickle::{DeOptions, HashableValue, Value};

use crate::{DataError, Dataset, ItemMeta, LoadReport, Sequences, checksum, read_bytes, read_text};

/// The reference's text for items without a title.
pub const NO_TITLE: &str = "No description available.";

/// Loads dataset `ds` from `dir`.
pub fn load(dir: &Path, ds: &str) -> Result<Dataset, DataError> {
    let final_txt = read_text(&dir.join(format!("{ds}_final.txt")))?;
    let item2id = read_bytes(&dir.join(format!("{ds}_item2id_final.pickle")))?;
    let texts = read_bytes(&dir.join(format!("{ds}_texts_final.pickle")))?;
    let images = dir.join(format!("{ds}_images"));
    let has_images = images.is_dir();
    parse(
        dir,
        ds,
        &final_txt,
        &item2id,
        &texts,
        |raw| {
            let p = images.join(format!("{raw}.jpg"));
            (has_images && p.is_file()).then_some(p)
        },
        has_images,
    )
}

/// Parses the release from memory. `image_of(raw)` returns an existing image path, if any;
/// `has_images` says whether the dataset has an image folder at all (if not, no image is
/// counted as missing: the dataset is text-only).
pub fn parse(
    dir: &Path,
    ds: &str,
    final_txt: &str,
    item2id: &[u8],
    texts: &[u8],
    image_of: impl Fn(&str) -> Option<PathBuf>,
    has_images: bool,
) -> Result<Dataset, DataError> {
    let final_path = dir.join(format!("{ds}_final.txt"));
    let ids_path = dir.join(format!("{ds}_item2id_final.pickle"));
    let texts_path = dir.join(format!("{ds}_texts_final.pickle"));

    let raw_keys = item_keys(&ids_path, item2id)?;
    let titles = titles(&texts_path, texts)?;
    let mut report = LoadReport::default();
    let items: Vec<ItemMeta> = raw_keys
        .into_iter()
        .map(|raw| {
            let title = match titles.get(&raw) {
                Some(t) => t.clone(),
                None => {
                    report.missing_titles += 1;
                    NO_TITLE.to_string()
                }
            };
            let image = image_of(&raw);
            if has_images && image.is_none() {
                report.missing_images += 1;
            }
            ItemMeta {
                text: title.clone(),
                title,
                raw_id: raw,
                categories: Vec::new(),
                image,
            }
        })
        .collect();

    let mut seqs = Sequences::default();
    for (i, line) in final_txt.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(u), Some(it), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(DataError::at(
                &final_path,
                Some(line_no),
                format!("expected `user item`, got {line:?}"),
            ));
        };
        let user: u64 = u.parse().ok().filter(|&x| x >= 1).ok_or_else(|| {
            DataError::at(
                &final_path,
                Some(line_no),
                format!("user id {u:?} is not a positive integer"),
            )
        })?;
        let item: u32 = it.parse().ok().filter(|&x| x >= 1).ok_or_else(|| {
            DataError::at(
                &final_path,
                Some(line_no),
                format!("item id {it:?} is not a positive integer"),
            )
        })?;
        if item as usize > items.len() {
            return Err(DataError::at(
                &final_path,
                Some(line_no),
                format!(
                    "unknown item id {item}: {} maps ids 1..={}",
                    ids_path.display(),
                    items.len()
                ),
            ));
        }
        // file order is chronological: the line number is the time
        seqs.push(&user.to_string(), item, line_no as f64);
    }
    if seqs.is_empty() {
        return Err(DataError::at(&final_path, None, "no interactions"));
    }
    // line numbers are an order, not times: the dataset has none
    let (user_ids, sequences, _) = seqs.finish();
    Ok(Dataset::new(
        ds,
        user_ids,
        items,
        sequences,
        checksum(&[final_txt.as_bytes(), item2id, texts]),
        report,
    ))
}

fn unpickle(path: &Path, bytes: &[u8]) -> Result<BTreeMap<HashableValue, Value>, DataError> {
    match serde_pickle::value_from_slice(bytes, DeOptions::new()) {
        Ok(Value::Dict(d)) => Ok(d),
        Ok(other) => Err(DataError::at(
            path,
            None,
            format!("expected a pickled dict, found {}", kind(&other)),
        )),
        Err(e) => Err(DataError::at(
            path,
            None,
            format!("not a readable pickle: {e}"),
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::None => "None",
        Value::Bool(_) => "a bool",
        Value::I64(_) | Value::Int(_) => "an int",
        Value::F64(_) => "a float",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "a string",
        Value::List(_) => "a list",
        Value::Tuple(_) => "a tuple",
        Value::Set(_) | Value::FrozenSet(_) => "a set",
        Value::Dict(_) => "a dict",
    }
}

fn key_text(k: &HashableValue) -> String {
    match k {
        HashableValue::String(s) => s.clone(),
        HashableValue::I64(i) => i.to_string(),
        HashableValue::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    }
}

/// `item2id`: keys must be exactly `1..=N`; values are raw keys (strings, or ints as text).
fn item_keys(path: &Path, bytes: &[u8]) -> Result<Vec<String>, DataError> {
    let dict = unpickle(path, bytes)?;
    let n = dict.len();
    let mut raw = vec![None::<String>; n];
    for (k, v) in dict {
        let id = match &k {
            HashableValue::I64(i) if *i >= 1 && (*i as u64) <= n as u64 => *i as usize,
            _ => {
                return Err(DataError::key(
                    path,
                    key_text(&k),
                    format!("item ids must be the integers 1..={n}"),
                ));
            }
        };
        let value = match v {
            Value::String(s) => s,
            Value::I64(i) => i.to_string(),
            other => {
                return Err(DataError::key(
                    path,
                    key_text(&k),
                    format!("raw key must be a string, found {}", kind(&other)),
                ));
            }
        };
        raw[id - 1] = Some(value);
    }
    // n distinct keys within 1..=n: every slot is filled
    Ok(raw
        .into_iter()
        .map(|r| r.expect("distinct keys in range"))
        .collect())
}

/// `texts`: raw key → title string.
fn titles(
    path: &Path,
    bytes: &[u8],
) -> Result<std::collections::HashMap<String, String>, DataError> {
    let dict = unpickle(path, bytes)?;
    let mut out = std::collections::HashMap::with_capacity(dict.len());
    for (k, v) in dict {
        let key = key_text(&k);
        match v {
            Value::String(s) => {
                out.insert(key, s);
            }
            other => {
                return Err(DataError::key(
                    path,
                    key,
                    format!("title must be a string, found {}", kind(&other)),
                ));
            }
        }
    }
    Ok(out)
}
