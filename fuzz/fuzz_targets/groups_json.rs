//! `groups.json` as the server reads it (`perpeft::store::run_dir::decode_groups`); a file it
//! accepts must split its users into groups without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(groups) = perpeft::store::run_dir::decode_groups(Path::new("groups.json"), data) {
        let members = groups.members();
        assert_eq!(members.len(), groups.k);
        assert_eq!(
            members.iter().map(Vec::len).sum::<usize>(),
            groups.assignment.len()
        );
        let _ = groups.nearest(&vec![0.5; groups.dim]);
    }
});
