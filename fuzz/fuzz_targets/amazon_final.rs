//! `{ds}_final.txt` against a fixed, valid item2id/texts pair.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

// pickle.dumps({1: 'a', 2: 'b'}, 2) and pickle.dumps({'a': 'A'}, 2)
const IDS: &[u8] = b"\x80\x02}q\x00(K\x01X\x01\x00\x00\x00aq\x01K\x02X\x01\x00\x00\x00bq\x02u.";
const TEXTS: &[u8] = b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01X\x01\x00\x00\x00Aq\x02s.";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = perpeft_data::amazon::parse(Path::new("f"), "f", text, IDS, TEXTS, |_| None, false);
});
