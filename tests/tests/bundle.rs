//! The scorer bundle on ml-1m (6,040 users, 3,883 items): its size in half precision against
//! `f32`, and how often the browser's ranking with the half-precision table agrees with the
//! server's `f32` ranking (top-20 sets and top-1), over every user.

use std::collections::BTreeSet;
use std::sync::Arc;

use perpeft::config::{SasRecConfig, TrainConfig};
use perpeft::data::Format;
use perpeft::device::DeviceChoice;
use perpeft::engine::Engine;
use perpeft::store::RunDir;
use perpeft::train::{Start, train};
use shared::bundle::Encoding;
use shared::{ItemTable, top_k};

#[test]
fn an_ml1m_bundle_is_half_the_size_and_ranks_like_f32() {
    let dataset = perpeft::data::load(Format::Recbole, &e2e::data_dir().join("ml-1m"), "ml-1m")
        .expect("ml-1m loads (python3 scripts/fetch_data.py ml-1m)");
    let root = std::env::temp_dir().join(format!("perpeft-bundle-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dir = root.join("ml-1m-id-only");
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let cfg = TrainConfig {
        epochs: 2,
        ..TrainConfig::default()
    };
    let model = SasRecConfig::new(dataset.n_items());
    train(&dataset, &model, &cfg, &resolved, &dir, Start::New).unwrap();
    let engine = Engine::open(&RunDir::new(&dir), Arc::new(dataset), &resolved.device).unwrap();
    let size = |e| {
        serde_json::to_vec(&engine.scorer_bundle(0, e).unwrap())
            .unwrap()
            .len()
    };
    let (half, full) = (size(Encoding::F16), size(Encoding::F32));
    let bundle = engine.scorer_bundle(0, Encoding::F16).unwrap();
    assert_eq!(bundle.rows, engine.dataset.n_items() + 1);
    let table = bundle.table().unwrap();
    let t = ItemTable::new(32, &table).unwrap();
    let users = engine.dataset.n_users();
    let (mut overlap, mut top1) = (0usize, 0usize);
    for u in 0..users {
        let served = engine.recommend(u, 20, None).unwrap();
        let history = engine.input(u);
        let mut exclude = history.clone();
        if let Some(h) = engine.held_out(u) {
            exclude.retain(|&i| i != h);
        }
        let local = top_k(&bundle.scorer.user_state(&t, &history), &t, &exclude, 20);
        let a: BTreeSet<u32> = served.items.iter().map(|s| s.item).collect();
        let b: BTreeSet<u32> = local.iter().map(|s| s.item).collect();
        overlap += a.intersection(&b).count();
        top1 += usize::from(served.items[0].item == local[0].item);
    }
    let agreement = overlap as f64 / (20 * users) as f64;
    let top1 = top1 as f64 / users as f64;
    println!(
        "ml-1m scorer bundle: {half} bytes as f16, {full} as f32 ({:.2}x); over {users} users \
         the f16 table's top-20 shares {:.2}% of the f32 top-20, top-1 equal for {:.2}%",
        full as f64 / half as f64,
        100.0 * agreement,
        100.0 * top1
    );
    assert!((half as f64) < 0.6 * full as f64, "{half} vs {full}");
    assert!(agreement > 0.98, "top-20 agreement {agreement}");
    assert!(top1 > 0.95, "top-1 agreement {top1}");
    std::fs::remove_dir_all(&root).unwrap();
}
