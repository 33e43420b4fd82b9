//! The three formats load into the same `Dataset`, from the committed fixtures
//! (`fixtures/make_fixtures.py`), and bad files give errors that name file and line or key.

use std::path::{Path, PathBuf};

use perpeft_data::plain::Syntax;
use perpeft_data::{Format, LoadReport, amazon, load, plain};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Sequences as raw item ids, keyed by position of the user (users in first-appearance order).
fn raw_sequences(d: &perpeft_data::Dataset) -> Vec<Vec<String>> {
    d.sequences
        .iter()
        .map(|s| {
            s.iter()
                .map(|&i| d.item(i).unwrap().raw_id.clone())
                .collect()
        })
        .collect()
}

fn expected() -> Vec<Vec<&'static str>> {
    vec![
        vec!["B001", "B002", "B003"],
        vec!["B002", "B004", "B005", "B006"],
        vec!["B001", "B003"],
        vec!["B006"],
        vec!["B005", "B001", "B002"],
    ]
}

#[test]
fn amazon_layout_loads_unchanged() {
    let d = load(Format::Amazon, &fixtures().join("amazon"), "toy").unwrap();
    assert_eq!(d.user_ids, vec!["1", "2", "3", "4", "5"]);
    assert_eq!(d.n_items(), 6);
    assert_eq!(raw_sequences(&d), expected());
    assert_eq!(
        d.sequences[0],
        vec![1, 2, 3],
        "internal ids are the file's ids"
    );
    assert_eq!(d.item(1).unwrap().title, "Red tent");
    assert_eq!(d.item(6).unwrap().title, amazon::NO_TITLE);
    assert_eq!(
        d.report,
        LoadReport {
            missing_images: 2,
            missing_titles: 1
        }
    );
    let s = d.stats();
    assert_eq!((s.users, s.items, s.interactions), (5, 6, 13));
    assert!((s.avg_len - 2.6).abs() < 1e-12);
    assert!((s.density - 13.0 / 30.0).abs() < 1e-12);
}

#[test]
fn images_decode_lazily() {
    let d = load(Format::Amazon, &fixtures().join("amazon"), "toy").unwrap();
    let img = d.image(1).unwrap().expect("B001 has an image");
    assert_eq!(img.dimensions(), (16, 16));
    for (got, want) in img.get_pixel(7, 9).0.iter().zip([200u8, 30, 30]) {
        assert!(
            (*got as i32 - want as i32).abs() <= 4,
            "pixel {:?}",
            img.get_pixel(7, 9)
        );
    }
    assert!(d.image(5).unwrap().is_none(), "B005 has no image");
    assert!(d.image(0).unwrap().is_none());
}

#[test]
fn plain_csv_and_jsonl_load_the_same_dataset() {
    let csv = load(Format::Plain, &fixtures().join("plain-csv"), "toy").unwrap();
    let jsonl = load(Format::Plain, &fixtures().join("plain-jsonl"), "toy").unwrap();
    let amazon = load(Format::Amazon, &fixtures().join("amazon"), "toy").unwrap();
    assert_eq!(raw_sequences(&csv), expected());
    assert_eq!(raw_sequences(&jsonl), expected());
    assert_eq!(csv.sequences, amazon.sequences);
    // the plain formats carry their timestamps; Amazon's line order is no time
    assert!(csv.times.is_some());
    assert_eq!(csv.times, jsonl.times);
    assert_eq!(amazon.times, None);
    assert_eq!(csv.user_ids[0], "u1");
    assert_eq!(csv.report, LoadReport::default());
    assert!(csv.item(1).unwrap().image.is_some());
    assert!(csv.item(5).unwrap().image.is_none());
    assert!(jsonl.item(1).unwrap().image.is_none());
    assert_eq!(csv.image(3).unwrap().unwrap().dimensions(), (16, 16));
}

fn amazon_with(final_txt: &str, item2id: &[u8], texts: &[u8]) -> String {
    amazon::parse(
        Path::new("d"),
        "toy",
        final_txt,
        item2id,
        texts,
        |_| None,
        false,
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn amazon_errors_name_file_and_line_or_key() {
    let dir = fixtures().join("amazon");
    let ids = std::fs::read(dir.join("toy_item2id_final.pickle")).unwrap();
    let texts = std::fs::read(dir.join("toy_texts_final.pickle")).unwrap();
    let good = std::fs::read_to_string(dir.join("toy_final.txt")).unwrap();

    let e = amazon_with(&good, &ids[..ids.len() / 2], &texts);
    assert!(
        e.starts_with("d/toy_item2id_final.pickle: not a readable pickle"),
        "{e}"
    );
    let e = amazon_with(&good, &ids, &texts[..10]);
    assert!(
        e.starts_with("d/toy_texts_final.pickle: not a readable pickle"),
        "{e}"
    );
    assert_eq!(
        amazon_with("1 1\n1 7\n", &ids, &texts),
        "d/toy_final.txt:2: unknown item id 7: d/toy_item2id_final.pickle maps ids 1..=6"
    );
    assert_eq!(
        amazon_with("1 1\n1\n", &ids, &texts),
        "d/toy_final.txt:2: expected `user item`, got \"1\""
    );
    assert_eq!(
        amazon_with("1 1 1\n", &ids, &texts),
        "d/toy_final.txt:1: expected `user item`, got \"1 1 1\""
    );
    assert_eq!(
        amazon_with("x 1\n", &ids, &texts),
        "d/toy_final.txt:1: user id \"x\" is not a positive integer"
    );
    assert_eq!(
        amazon_with("1 0\n", &ids, &texts),
        "d/toy_final.txt:1: item id \"0\" is not a positive integer"
    );
    assert_eq!(
        amazon_with("\n", &ids, &texts),
        "d/toy_final.txt: no interactions"
    );

    // pickles of the wrong shape (protocol 2, written by hand: `pickle.dumps([1], 2)` etc.)
    let list = b"\x80\x02]q\x00K\x01a.";
    assert_eq!(
        amazon_with(&good, list, &texts),
        "d/toy_item2id_final.pickle: expected a pickled dict, found a list"
    );
    let zero_key = b"\x80\x02}q\x00K\x00X\x01\x00\x00\x00aq\x01s.";
    assert_eq!(
        amazon_with(&good, zero_key, &texts),
        "d/toy_item2id_final.pickle: key \"0\": item ids must be the integers 1..=1"
    );
    let int_title = b"\x80\x02}q\x00X\x04\x00\x00\x00B001q\x01K\x05s.";
    assert_eq!(
        amazon_with(&good, &ids, int_title),
        "d/toy_texts_final.pickle: key \"B001\": title must be a string, found an int"
    );

    let e = load(Format::Amazon, &dir, "nope").unwrap_err().to_string();
    assert!(e.contains("nope_final.txt: cannot read"), "{e}");
}

fn plain_err(inter: (Syntax, &str), items: (Syntax, &str)) -> String {
    plain::parse(
        "t",
        Path::new("d"),
        (Path::new("d/interactions"), inter.0, inter.1),
        (Path::new("d/items"), items.0, items.1),
        |_| false,
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn plain_errors_name_file_and_line() {
    let items = (Syntax::Csv, "id,title\nA,Alpha\nB,Beta\n");
    let e = plain_err((Syntax::Csv, "user,item,timestamp\nu,A,1\nu,C,2\n"), items);
    assert_eq!(e, "d/interactions:3: unknown item id \"C\": not in d/items");
    let e = plain_err((Syntax::Csv, "user,item\nu,A\n"), items);
    assert_eq!(
        e,
        "d/interactions:1: header has no timestamp column (has user,item)"
    );
    let e = plain_err((Syntax::Csv, "user,item,timestamp\nu,A,1,9\n"), items);
    assert!(e.starts_with("d/interactions:2: bad CSV record"), "{e}");
    let e = plain_err((Syntax::Csv, "user,item,timestamp\nu,A,later\n"), items);
    assert_eq!(e, "d/interactions:2: timestamp \"later\" is not a number");
    let e = plain_err(
        (
            Syntax::Jsonl,
            "{\"user\":\"u\",\"item\":\"A\",\"timestamp\":1}\n{\"user\":\"u\",\n",
        ),
        items,
    );
    assert!(e.starts_with("d/interactions:2: bad JSON"), "{e}");
    let e = plain_err((Syntax::Jsonl, "{\"user\":\"u\",\"item\":\"A\"}\n"), items);
    assert_eq!(e, "d/interactions:1: missing field \"timestamp\"");
    let e = plain_err((Syntax::Jsonl, "[1,2]\n"), items);
    assert_eq!(e, "d/interactions:1: expected a JSON object");
    let e = plain_err(
        (Syntax::Csv, "user,item,timestamp\n"),
        (Syntax::Csv, "id,title\nA,x\nA,y\n"),
    );
    assert_eq!(e, "d/items:3: duplicate item id \"A\"");
    let e = plain_err((Syntax::Csv, "user,item,timestamp\n"), items);
    assert_eq!(e, "d/interactions: no interactions");
}

#[test]
fn plain_counts_listed_but_missing_images() {
    let d = plain::parse(
        "t",
        Path::new("d"),
        (
            Path::new("d/i"),
            Syntax::Csv,
            "user,item,timestamp\nu,A,2\nu,B,1\n",
        ),
        (
            Path::new("d/t"),
            Syntax::Csv,
            "id,title,image\nA,Alpha,a.jpg\nB,Beta,b.jpg\n",
        ),
        |p| p.ends_with("a.jpg"),
    )
    .unwrap();
    assert_eq!(d.report.missing_images, 1);
    assert_eq!(d.sequences, vec![vec![2, 1]]);
}

#[test]
fn ambiguous_plain_directory_is_an_error() {
    let dir = std::env::temp_dir().join(format!("perpeft-plain-both-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("interactions.csv"), "user,item,timestamp\n").unwrap();
    std::fs::write(dir.join("interactions.jsonl"), "").unwrap();
    let e = load(Format::Plain, &dir, "t").unwrap_err().to_string();
    assert!(
        e.contains("both interactions.csv and interactions.jsonl exist"),
        "{e}"
    );
}

#[test]
fn plain_categories_are_split_on_vertical_bars() {
    let inter = "user,item,timestamp\nu,A,1\nu,B,2\n";
    let items = "id,title,categories\nA,Alpha,Comedy| Drama\nB,Beta,\n";
    let d = plain::parse(
        "t",
        Path::new("d"),
        (Path::new("d/interactions"), Syntax::Csv, inter),
        (Path::new("d/items"), Syntax::Csv, items),
        |_| false,
    )
    .unwrap();
    assert_eq!(d.item(1).unwrap().categories, ["Comedy", "Drama"]);
    assert!(d.item(2).unwrap().categories.is_empty());
}
