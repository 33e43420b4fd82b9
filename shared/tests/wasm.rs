//! The scorer and codec compiled to WASM (run under node by wasm-bindgen-test-runner), checked
//! against hand-computed results; native `cargo test` skips this file.
#![cfg(target_arch = "wasm32")]

use shared::codec::{decode_f32, encode_f32};
use shared::{ItemTable, top_k};
use wasm_bindgen_test::wasm_bindgen_test;

#[wasm_bindgen_test]
fn ranks_like_the_hand_computation() {
    // padding row, then items 1..4
    let data = [9.0, 9.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0];
    let t = ItemTable::new(2, &data).unwrap();
    let ids: Vec<u32> = top_k(&[1.0, 0.5], &t, &[2], 3)
        .iter()
        .map(|s| s.item)
        .collect();
    assert_eq!(ids, vec![3, 1, 4]);
}

#[wasm_bindgen_test]
fn codec_is_bit_exact_in_wasm() {
    let v = [0.1f32, -3.5e-20, 7.25e12];
    let text = encode_f32(&v);
    // the same bytes Python's struct.pack('<f', ...) gives, base64-encoded
    assert_eq!(text, "zczMPWdIJZ+2ANNU");
    assert_eq!(decode_f32(&text).unwrap(), v);
}
