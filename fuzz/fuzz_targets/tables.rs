//! Safetensors item tables as the server reads them (`perpeft::store::tables::decode_tables`):
//! a file it accepts holds exactly the values its shapes say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(tables) = perpeft::store::tables::decode_tables(Path::new("t.safetensors"), data) {
        for (values, [rows, cols]) in tables {
            assert_eq!(values.len(), rows * cols);
        }
    }
});
