//! `run.json` as the server reads it (`perpeft::store::run_dir::decode_record`): JSON, the old
//! records' migration, the best-epoch check.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = perpeft::store::run_dir::decode_record(Path::new("run.json"), data);
});
