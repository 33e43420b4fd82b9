//! The plain format: the first byte picks CSV or JSONL for each file; the rest is split at the
//! first NUL into interactions and items.
#![no_main]

use libfuzzer_sys::fuzz_target;
use perpeft_data::plain::{Syntax, parse};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let (inter, items) = text.split_once('\0').unwrap_or((text, "id,title\na,A\n"));
    let syntax = |bit: u8| if mode & bit == 0 { Syntax::Csv } else { Syntax::Jsonl };
    let _ = parse(
        "f",
        Path::new("d"),
        (Path::new("d/i"), syntax(1), inter),
        (Path::new("d/t"), syntax(2), items),
        |_| false,
    );
});
