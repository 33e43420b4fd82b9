//! The scorer bundle as the browser decodes it (`shared::bundle::ScorerBundle`, then
//! `table()`): a bundle it accepts must rank a history of its own items without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::bundle::ScorerBundle;
use shared::{ItemTable, top_k};

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = serde_json::from_slice::<ScorerBundle>(data) else {
        return;
    };
    let Ok(table) = bundle.table() else { return };
    let table = ItemTable::new(bundle.scorer.hidden, &table).expect("checked by table()");
    if table.len() < 2 {
        return;
    }
    let history: Vec<u32> = (1..table.len().min(5) as u32).collect();
    let state = bundle.scorer.user_state(&table, &history);
    let _ = top_k(&state, &table, &history, 10);
});
