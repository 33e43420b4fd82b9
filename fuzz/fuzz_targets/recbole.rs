//! RecBole atomic files: the input is split at the first two NUL bytes into `.inter`, `.item`
//! and `.user` contents. Any input must give `Ok` or a `DataError`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\0');
    let inter = parts.next().unwrap_or("");
    let item = parts.next().unwrap_or("item_id:token\ttitle:token\n1\tx\n");
    let user = parts.next();
    let _ = perpeft_data::recbole::parse(Path::new("f"), "f", inter, item, user);
});
