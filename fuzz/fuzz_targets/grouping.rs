//! The grouping (global model + centroids) as the browser decodes it
//! (`shared::groups::Grouping`, checked on decode): one it accepts must place a history of its
//! own items in a group without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::groups::Grouping;

fuzz_target!(|data: &[u8]| {
    let Ok(grouping) = serde_json::from_slice::<Grouping>(data) else {
        return;
    };
    let rows = grouping.table.len() / grouping.scorer.hidden;
    if rows < 2 {
        return;
    }
    let history: Vec<u32> = (1..rows.min(5) as u32).collect();
    assert!(grouping.assign(&history) < grouping.k());
});
