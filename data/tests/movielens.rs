//! The real MovieLens files as RecBole ships them (fetched by `scripts/fetch_data.py ml-100k
//! ml-1m` into `.cache/data`, or `PERPEFT_DATA_DIR`). Missing data fails with instructions.

use std::path::PathBuf;

use perpeft_data::{Format, Split, load};

fn data_dir() -> PathBuf {
    let dir = std::env::var_os("PERPEFT_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.cache/data"));
    assert!(
        dir.exists(),
        "{} is missing: run `python3 scripts/fetch_data.py ml-100k ml-1m`",
        dir.display()
    );
    dir
}

#[test]
fn ml_100k_matches_the_files() {
    let d = load(Format::Recbole, &data_dir().join("ml-100k"), "ml-100k").unwrap();
    let s = d.stats();
    assert_eq!((s.users, s.items, s.interactions), (943, 1682, 100_000));
    // user 196 is first in the file; items keep the .item file's order
    assert_eq!(d.user_ids[0], "196");
    assert_eq!(d.item(1).unwrap().title, "Toy Story (1995)");
    assert_eq!(
        d.item(1).unwrap().text,
        "Toy Story (1995); Animation, Children's, Comedy"
    );
    // every user has >= 20 ratings, so all are evaluated
    assert_eq!(
        Split::leave_one_out(&d.sequences).evaluated_users().len(),
        943
    );
}

#[test]
fn ml_1m_matches_the_files() {
    let d = load(Format::Recbole, &data_dir().join("ml-1m"), "ml-1m").unwrap();
    let s = d.stats();
    assert_eq!((s.users, s.items, s.interactions), (6040, 3883, 1_000_209));
    assert_eq!(d.user_ids[0], "1m_1");
    assert_eq!(d.item(1).unwrap().raw_id, "Toy Story (1995)");
    assert_eq!(d.item(1).unwrap().title, "Toy Story (1995)");
}

/// Ties in timestamps keep file order: checked against an independent reading of the file,
/// and on ml-100k the tie rule decides the test item for a real share of users.
#[test]
fn equal_timestamps_keep_file_order_on_ml_100k() {
    let dir = data_dir().join("ml-100k");
    let d = load(Format::Recbole, &dir, "ml-100k").unwrap();
    let text = std::fs::read_to_string(dir.join("ml-100k.inter")).unwrap();
    let mut per_user: std::collections::HashMap<&str, Vec<(u64, usize, &str)>> = Default::default();
    for (line, l) in text.lines().skip(1).enumerate() {
        let f: Vec<&str> = l.split('\t').collect();
        per_user
            .entry(f[0])
            .or_default()
            .push((f[3].parse().unwrap(), line, f[1]));
    }
    let mut tie_decides_test = 0;
    for (u, raw) in d.user_ids.iter().enumerate() {
        let mut events = per_user[raw.as_str()].clone();
        events.sort_by_key(|e| (e.0, e.1));
        let want: Vec<&str> = events.iter().map(|e| e.2).collect();
        let got: Vec<&str> = d.sequences[u]
            .iter()
            .map(|&i| d.item(i).unwrap().raw_id.as_str())
            .collect();
        assert_eq!(got, want, "user {raw}");
        let n = events.len();
        if events[n - 1].0 == events[n - 2].0 {
            tie_decides_test += 1;
        }
    }
    assert!(
        tie_decides_test > 50,
        "only {tie_decides_test} users have a tied last timestamp"
    );
}
