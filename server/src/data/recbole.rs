//! RecBole atomic files: tab-separated, first line a typed header (`name:type`).
//!
//! Reads `{name}.inter` (`user_id`, `item_id`, `timestamp`) and `{name}.item` (`item_id`, a
//! title column, optionally `release_year` and `class`). Internal item ids follow the order of
//! the `.item` file; users are numbered in order of first appearance in `.inter`. Each user's
//! sequence is sorted by timestamp with a **stable** sort, so ties keep file order (on MovieLens
//! the tie rule decides the test item for many users).

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::{DataError, Dataset, ItemMeta};

/// Loads `{dir}/{name}.inter` and `{dir}/{name}.item`.
pub fn load(dir: &Path, name: &str) -> Result<Dataset, DataError> {
    let inter_path = dir.join(format!("{name}.inter"));
    let item_path = dir.join(format!("{name}.item"));
    let inter_text = read(&inter_path)?;
    let item_text = read(&item_path)?;

    let items = parse_items(&item_path, &item_text)?;
    let index: HashMap<&str, u32> = items
        .iter()
        .enumerate()
        .map(|(i, m)| (m.raw_id.as_str(), i as u32 + 1))
        .collect();

    let table = Table::parse(&inter_path, &inter_text)?;
    let user_col = table.column(&inter_path, "user_id")?;
    let item_col = table.column(&inter_path, "item_id")?;
    let time_col = table.column(&inter_path, "timestamp")?;

    let mut user_ids: Vec<String> = Vec::new();
    let mut user_index: HashMap<&str, usize> = HashMap::new();
    let mut events: Vec<Vec<(f64, u32)>> = Vec::new();
    for row in &table.rows {
        let raw_user = row.fields[user_col];
        let raw_item = row.fields[item_col];
        let item = *index.get(raw_item).ok_or_else(|| {
            DataError::at(
                &inter_path,
                Some(row.line),
                format!("unknown item id {raw_item:?}: not in {}", item_path.display()),
            )
        })?;
        let time: f64 = row.fields[time_col].parse().map_err(|_| {
            DataError::at(
                &inter_path,
                Some(row.line),
                format!("timestamp {:?} is not a number", row.fields[time_col]),
            )
        })?;
        let u = *user_index.entry(raw_user).or_insert_with(|| {
            user_ids.push(raw_user.to_string());
            events.push(Vec::new());
            user_ids.len() - 1
        });
        events[u].push((time, item));
    }
    if user_ids.is_empty() {
        return Err(DataError::at(&inter_path, None, "no interactions"));
    }
    let sequences = events
        .into_iter()
        .map(|mut ev| {
            // `sort_by` is stable: equal timestamps keep file order.
            ev.sort_by(|a, b| a.0.total_cmp(&b.0));
            ev.into_iter().map(|(_, item)| item).collect()
        })
        .collect();

    let mut hasher = Sha256::new();
    hasher.update(inter_text.as_bytes());
    hasher.update(item_text.as_bytes());
    let checksum = format!("{:x}", hasher.finalize());

    Ok(Dataset {
        name: name.to_string(),
        user_ids,
        items,
        sequences,
        checksum,
    })
}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|e| DataError::at(path, None, format!("cannot read: {e}")))
}

fn parse_items(path: &Path, text: &str) -> Result<Vec<ItemMeta>, DataError> {
    let table = Table::parse(path, text)?;
    let id_col = table.column(path, "item_id")?;
    let title_col = table
        .find("movie_title")
        .or_else(|| table.find("title"))
        .ok_or_else(|| DataError::at(path, Some(1), "header has no movie_title or title column"))?;
    let year_col = table.find("release_year");
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut items = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let raw = row.fields[id_col];
        if let Some(first) = seen.insert(raw, row.line) {
            return Err(DataError::at(
                path,
                Some(row.line),
                format!("duplicate item id {raw:?} (first on line {first})"),
            ));
        }
        let title = row.fields[title_col].trim();
        let title = match year_col.map(|c| row.fields[c].trim()) {
            Some(year) if !year.is_empty() => format!("{title} ({year})"),
            _ => title.to_string(),
        };
        items.push(ItemMeta {
            raw_id: raw.to_string(),
            title,
        });
    }
    Ok(items)
}

/// A parsed atomic file: column names (type suffix removed) and rows of borrowed fields.
struct Table<'a> {
    names: Vec<&'a str>,
    rows: Vec<Row<'a>>,
}

struct Row<'a> {
    line: usize,
    fields: Vec<&'a str>,
}

impl<'a> Table<'a> {
    fn parse(path: &Path, text: &'a str) -> Result<Self, DataError> {
        let mut lines = text.lines().enumerate();
        let header = lines
            .next()
            .map(|(_, l)| l)
            .filter(|l| !l.trim().is_empty())
            .ok_or_else(|| DataError::at(path, Some(1), "empty file: expected a typed header"))?;
        let mut names = Vec::new();
        for col in header.split('\t') {
            let (name, ty) = col.split_once(':').ok_or_else(|| {
                DataError::at(path, Some(1), format!("header column {col:?} has no `:type`"))
            })?;
            if !matches!(ty, "token" | "token_seq" | "float" | "float_seq") {
                return Err(DataError::at(
                    path,
                    Some(1),
                    format!("header column {col:?} has unknown type {ty:?}"),
                ));
            }
            names.push(name);
        }
        let mut rows = Vec::new();
        for (i, line) in lines {
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            if fields.len() != names.len() {
                return Err(DataError::at(
                    path,
                    Some(i + 1),
                    format!("{} fields, header has {}", fields.len(), names.len()),
                ));
            }
            rows.push(Row { line: i + 1, fields });
        }
        Ok(Self { names, rows })
    }

    fn find(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| *n == name)
    }

    fn column(&self, path: &Path, name: &str) -> Result<usize, DataError> {
        self.find(name)
            .ok_or_else(|| DataError::at(path, Some(1), format!("header has no {name} column")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).unwrap();
    }

    fn tmp(tag: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("perpeft-recbole-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    const ITEMS: &str = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
        10\tAlpha\t1995\tComedy\n20\tBeta\t\tDrama\n30\tGamma\t2001\tAction\n";

    #[test]
    fn loads_and_sorts_stably() {
        let dir = tmp("ok");
        write(&dir, "t.item", ITEMS);
        // user b: two events at t=5 must keep file order (30 then 10).
        write(
            &dir,
            "t.inter",
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
             b\t30\t1\t5\na\t20\t1\t9\nb\t10\t1\t5\nb\t20\t1\t1\na\t10\t1\t3\n",
        );
        let d = load(&dir, "t").unwrap();
        assert_eq!(d.user_ids, vec!["b", "a"]);
        assert_eq!(d.sequences, vec![vec![2, 3, 1], vec![1, 2]]);
        assert_eq!(d.items[0].title, "Alpha (1995)");
        assert_eq!(d.items[1].title, "Beta");
        let s = d.stats();
        assert_eq!((s.users, s.items, s.interactions), (2, 3, 5));
        assert_eq!(d.checksum.len(), 64);
    }

    #[test]
    fn errors_name_file_and_line() {
        let dir = tmp("bad");
        write(&dir, "t.item", ITEMS);
        write(&dir, "t.inter", "user_id:token\titem_id:token\ttimestamp:float\na\t10\t1\na\t99\t2\n");
        let e = load(&dir, "t").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.to_string().contains("t.inter:3: unknown item id \"99\""), "{e}");

        write(&dir, "t.inter", "user_id:token\titem_id:token\ttimestamp:float\na\t10\n");
        let e = load(&dir, "t").unwrap_err();
        assert!(e.to_string().ends_with("t.inter:2: 2 fields, header has 3"), "{e}");

        write(&dir, "t.inter", "user_id\titem_id:token\ttimestamp:float\n");
        assert!(load(&dir, "t").unwrap_err().to_string().contains(":1: header column"));

        write(&dir, "t.inter", "user_id:token\titem_id:token\ttimestamp:float\na\t10\tsoon\n");
        assert!(load(&dir, "t").unwrap_err().to_string().contains("timestamp \"soon\""));

        write(&dir, "t.inter", "user_id:token\titem_id:token\n");
        assert!(load(&dir, "t").unwrap_err().to_string().contains("no timestamp column"));

        assert!(load(&dir, "missing").unwrap_err().to_string().contains("cannot read"));
    }
}
