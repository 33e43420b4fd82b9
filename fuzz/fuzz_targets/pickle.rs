//! Arbitrary bytes as the item2id pickle and as the texts pickle.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

const IDS: &[u8] = b"\x80\x02}q\x00(K\x01X\x01\x00\x00\x00aq\x01K\x02X\x01\x00\x00\x00bq\x02u.";
const TEXTS: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01X\x01\x00\x00\x00Aq\x02s.";

fuzz_target!(|data: &[u8]| {
    let _ = perpeft_data::amazon::parse(Path::new("f"), "f", "1 1\n1 2\n", data, TEXTS, |_| None, false);
    let _ = perpeft_data::amazon::parse(Path::new("f"), "f", "1 1\n1 2\n", IDS, data, |_| None, false);
});
