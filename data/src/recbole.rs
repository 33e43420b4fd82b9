//! RecBole atomic files: tab-separated, first line a typed header (`name:type`).
//!
//! Reads `{name}.inter` (`user_id`, `item_id`, `timestamp`), `{name}.item` (`item_id`, a title
//! column `movie_title` or `title`, optionally `release_year` and `class` or `genre`) and, when
//! present, validates `{name}.user`. Internal item ids follow the order of the `.item` file;
//! users are numbered by first appearance in `.inter`. Each user's sequence is sorted by
//! timestamp with a **stable** sort, so ties keep file order (on MovieLens the tie rule decides
//! the test item for many users). Item text = title, year and genres.

use std::collections::HashMap;
use std::path::Path;

use crate::{DataError, Dataset, ItemMeta, LoadReport, Sequences, checksum, parse_time, read_text};

/// Loads `{dir}/{name}.inter`, `{dir}/{name}.item` and (if present) `{dir}/{name}.user`.
pub fn load(dir: &Path, name: &str) -> Result<Dataset, DataError> {
    let inter = read_text(&dir.join(format!("{name}.inter")))?;
    let item = read_text(&dir.join(format!("{name}.item")))?;
    let user_path = dir.join(format!("{name}.user"));
    let user = if user_path.exists() {
        Some(read_text(&user_path)?)
    } else {
        None
    };
    parse(dir, name, &inter, &item, user.as_deref())
}

/// Parses the contents of the atomic files (`dir` and `name` only name them in errors).
pub fn parse(
    dir: &Path,
    name: &str,
    inter: &str,
    item: &str,
    user: Option<&str>,
) -> Result<Dataset, DataError> {
    let inter_path = dir.join(format!("{name}.inter"));
    let item_path = dir.join(format!("{name}.item"));
    let items = parse_items(&item_path, item)?;
    let index: HashMap<&str, u32> = items
        .iter()
        .enumerate()
        .map(|(i, m)| (m.raw_id.as_str(), i as u32 + 1))
        .collect();

    let table = Table::parse(&inter_path, inter)?;
    let user_col = table.column(&inter_path, "user_id")?;
    let item_col = table.column(&inter_path, "item_id")?;
    let time_col = table.column(&inter_path, "timestamp")?;
    let mut seqs = Sequences::default();
    for row in &table.rows {
        let raw_item = row.fields[item_col];
        let item = *index.get(raw_item).ok_or_else(|| {
            DataError::at(
                &inter_path,
                Some(row.line),
                format!(
                    "unknown item id {raw_item:?}: not in {}",
                    item_path.display()
                ),
            )
        })?;
        let time: f64 = parse_time(row.fields[time_col]).ok_or_else(|| {
            DataError::at(
                &inter_path,
                Some(row.line),
                format!("timestamp {:?} is not a number", row.fields[time_col]),
            )
        })?;
        seqs.push(row.fields[user_col], item, time);
    }
    if seqs.is_empty() {
        return Err(DataError::at(&inter_path, None, "no interactions"));
    }
    if let Some(user) = user {
        let user_path = dir.join(format!("{name}.user"));
        let t = Table::parse(&user_path, user)?;
        t.column(&user_path, "user_id")?;
    }
    let (user_ids, sequences, times) = seqs.finish();
    let mut parts: Vec<&[u8]> = vec![inter.as_bytes(), item.as_bytes()];
    if let Some(u) = user {
        parts.push(u.as_bytes());
    }
    Ok(Dataset::new(
        name,
        user_ids,
        items,
        sequences,
        checksum(&parts),
        LoadReport::default(),
    )
    .with_times(times))
}

fn parse_items(path: &Path, text: &str) -> Result<Vec<ItemMeta>, DataError> {
    let table = Table::parse(path, text)?;
    let id_col = table.column(path, "item_id")?;
    let title_col = table
        .find("movie_title")
        .or_else(|| table.find("title"))
        .ok_or_else(|| DataError::at(path, Some(1), "header has no movie_title or title column"))?;
    let year_col = table.find("release_year");
    let genre_col = table.find("class").or_else(|| table.find("genre"));
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
        let name = row.fields[title_col].trim();
        let year = year_col
            .map(|c| row.fields[c].trim())
            .filter(|y| !y.is_empty());
        let year = year.map(|y| y.strip_suffix(".0").unwrap_or(y));
        let title = match year {
            Some(y) => format!("{name} ({y})"),
            None => name.to_string(),
        };
        let genres: Vec<&str> = genre_col
            .map(|c| row.fields[c].split_whitespace().collect())
            .unwrap_or_default();
        let text = if genres.is_empty() {
            title.clone()
        } else {
            format!("{title}; {}", genres.join(", "))
        };
        items.push(ItemMeta {
            raw_id: raw.to_string(),
            title,
            text,
            categories: genres.iter().map(|g| g.to_string()).collect(),
            image: None,
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
    /// Parses one atomic file; `path` names it in errors.
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
                DataError::at(
                    path,
                    Some(1),
                    format!("header column {col:?} has no `:type`"),
                )
            })?;
            if !matches!(ty, "token" | "token_seq" | "float" | "float_seq") {
                return Err(DataError::at(
                    path,
                    Some(1),
                    format!("header column {col:?} has unknown type {ty:?}"),
                ));
            }
            if names.contains(&name) {
                return Err(DataError::at(
                    path,
                    Some(1),
                    format!("header names column {name:?} twice"),
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
            rows.push(Row {
                line: i + 1,
                fields,
            });
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

    const ITEMS: &str = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n\
        10\tAlpha\t1995\tComedy Drama\n20\tBeta\t\tDrama\n30\tGamma\t2001\t\n";
    const INTER: &str = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n\
         b\t30\t1\t5\na\t20\t1\t9\nb\t10\t1\t5\nb\t20\t1\t1\na\t10\t1\t3\n";

    fn parse_t(inter: &str, item: &str, user: Option<&str>) -> Result<Dataset, DataError> {
        parse(Path::new("d"), "t", inter, item, user)
    }

    #[test]
    fn loads_and_sorts_stably() {
        let d = parse_t(INTER, ITEMS, Some("user_id:token\tage:token\na\t3\nb\t4\n")).unwrap();
        // user b: two events at t=5 keep file order (30 then 10)
        assert_eq!(d.user_ids, vec!["b", "a"]);
        assert_eq!(d.sequences, vec![vec![2, 3, 1], vec![1, 2]]);
        // each item keeps its own time through the sort
        assert_eq!(d.times, Some(vec![vec![1.0, 5.0, 5.0], vec![3.0, 9.0]]));
        assert_eq!(d.time(0, 2), Some(5.0));
        assert_eq!(d.time(1, 2), None);
        assert_eq!(d.user_index("a"), Some(1));
        assert_eq!(d.items[0].title, "Alpha (1995)");
        assert_eq!(d.items[0].text, "Alpha (1995); Comedy, Drama");
        assert_eq!(d.items[0].categories, ["Comedy", "Drama"]);
        assert!(d.items[2].categories.is_empty());
        assert_eq!(d.items[1].title, "Beta");
        assert_eq!(d.items[2].text, "Gamma (2001)");
        let s = d.stats();
        assert_eq!((s.users, s.items, s.interactions), (2, 3, 5));
        assert_eq!(d.checksum.len(), 64);
    }

    #[test]
    fn loads_from_files() {
        let dir = std::env::temp_dir().join(format!("perpeft-recbole-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.item"), ITEMS).unwrap();
        std::fs::write(dir.join("t.inter"), INTER).unwrap();
        assert_eq!(
            load(&dir, "t").unwrap().sequences,
            parse_t(INTER, ITEMS, None).unwrap().sequences
        );
        let e = load(&dir, "missing").unwrap_err();
        assert!(e.to_string().contains("missing.inter: cannot read"), "{e}");
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse_t(
            "user_id:token\titem_id:token\ttimestamp:float\na\t10\t1\na\t99\t2\n",
            ITEMS,
            None,
        )
        .unwrap_err();
        assert_eq!(e.line(), Some(3));
        assert_eq!(
            e.to_string(),
            "d/t.inter:3: unknown item id \"99\": not in d/t.item"
        );

        let e = parse_t(
            "user_id:token\titem_id:token\ttimestamp:float\na\t10\n",
            ITEMS,
            None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "d/t.inter:2: 2 fields, header has 3");

        let e = parse_t("user_id\titem_id:token\ttimestamp:float\n", ITEMS, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d/t.inter:1: header column \"user_id\" has no `:type`"
        );

        let e = parse_t("user_id:int\titem_id:token\ttimestamp:float\n", ITEMS, None).unwrap_err();
        assert!(e.to_string().contains("unknown type \"int\""), "{e}");

        let e = parse_t(
            "user_id:token\titem_id:token\ttimestamp:float\na\t10\tsoon\n",
            ITEMS,
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "d/t.inter:2: timestamp \"soon\" is not a number"
        );

        let e = parse_t("user_id:token\titem_id:token\n", ITEMS, None).unwrap_err();
        assert_eq!(e.to_string(), "d/t.inter:1: header has no timestamp column");

        let e = parse_t(
            "user_id:token\titem_id:token\ttimestamp:float\n",
            ITEMS,
            None,
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "d/t.inter: no interactions");

        let e = parse_t(INTER, "item_id:token\ttitle:token\n1\tA\n1\tB\n", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d/t.item:3: duplicate item id \"1\" (first on line 2)"
        );

        let e = parse_t(INTER, "", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "d/t.item:1: empty file: expected a typed header"
        );

        let e = parse_t(INTER, ITEMS, Some("age:token\n3\n")).unwrap_err();
        assert_eq!(e.to_string(), "d/t.user:1: header has no user_id column");
    }
}
