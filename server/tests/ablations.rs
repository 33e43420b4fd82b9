//! The ablations change what they name, asserted on the mechanism: random groups, group-pool
//! versus uniform negatives in `train()`'s per-group stage, the large global LoRA, and which
//! half of the item feature each modality keeps.

mod common;

use std::path::Path;

use common::{Watch, clip_dir, perpeft_config as config};
use perpeft::config::{BackboneChoice, Method, SasRecConfig, TrainConfig};
use perpeft::device::DeviceChoice;
use perpeft::peft::{PeftConfig, PeftKind};
use perpeft::store::RunDir;
use perpeft::train::{ItemSource, Start, train, train_with};

#[test]
fn ablation_flags_change_what_they_name() {
    let _rng = common::rng_lock();
    let root = common::scratch("perpeft-ablations");
    let dataset = common::synthetic_dataset(80, 40, 2);
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let model_cfg = SasRecConfig::new(40);
    let base = config(PeftKind::Iisan, &root);
    let kmeans = common::new_run(&dataset, &model_cfg, &base, &root.join("k"));
    let random = TrainConfig {
        random_groups: true,
        ..base.clone()
    };
    let r = common::new_run(&dataset, &model_cfg, &random, &root.join("r"));
    assert_eq!(r.method, "perpeft-iisan+random-groups");
    assert_eq!(
        RunDir::new(root.join("r")).read_groups().unwrap().how,
        "random"
    );
    assert_ne!(
        common::epoch_metrics(&r.epochs),
        common::epoch_metrics(&kmeans.epochs)
    );
    let uniform = TrainConfig {
        uniform_negatives: true,
        ..base.clone()
    };
    let u = common::new_run(&dataset, &model_cfg, &uniform, &root.join("u"));
    assert_eq!(u.method, "perpeft-iisan+uniform-negatives");
    assert_ne!(
        common::epoch_metrics(&u.epochs),
        common::epoch_metrics(&kmeans.epochs),
        "negatives drawn from elsewhere"
    );
    // large global PEFT: one LoRA of rank K·r, and only as global-peft
    let large = TrainConfig {
        method: Method::GlobalPeft,
        large_global: true,
        peft: PeftConfig::default(),
        ..base.clone()
    };
    let l = common::new_run(&dataset, &model_cfg, &large, &root.join("l"));
    let small = TrainConfig {
        large_global: false,
        ..large.clone()
    };
    let s = common::new_run(&dataset, &model_cfg, &small, &root.join("s"));
    assert_eq!(l.adapter_params.unwrap(), 3 * s.adapter_params.unwrap());
    let bad = TrainConfig {
        large_global: true,
        ..base
    };
    let err = train(
        &dataset,
        &model_cfg,
        &bad,
        &resolved,
        &root.join("x"),
        Start::New,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("the large-global ablation is a global-peft run with LoRA"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn modality_ablations_use_the_named_feature_half() {
    let _rng = common::rng_lock();
    use perpeft::config::Modality;
    let root = common::scratch("modality");
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/tests/fixtures/amazon");
    let dataset = perpeft::data::load(perpeft::data::Format::Amazon, &data, "toy").unwrap();
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let model_cfg = SasRecConfig::new(dataset.n_items());
    let frozen = |modality| TrainConfig {
        method: Method::Frozen,
        backbone: BackboneChoice::Clip,
        clip_dir: Some(clip_dir()),
        cache_dir: root.join("cache"),
        epochs: 2,
        modality,
        ..TrainConfig::default()
    };
    let mut tables = Vec::new();
    for (m, label) in [
        (Modality::Both, "frozen"),
        (Modality::Text, "frozen+text-only"),
        (Modality::Image, "frozen+image-only"),
    ] {
        let dir = root.join(label);
        let r = common::new_run(&dataset, &model_cfg, &frozen(m), &dir);
        assert_eq!(r.method, label);
        let t = RunDir::new(&dir)
            .load_model(&resolved.device)
            .unwrap()
            .tables;
        tables.push(t[0].clone().into_data().iter::<f32>().collect::<Vec<f32>>());
    }
    // the image+text and text-only caches are separate files (keyed by modality)
    let mut cached: Vec<String> = std::fs::read_dir(root.join("cache/features"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cached.sort();
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert!(cached[0].starts_with("clip-image-text-toy") && cached[1].starts_with("clip-text-toy"));
    assert!(tables[0] != tables[1] && tables[1] != tables[2] && tables[0] != tables[2]);
    // the mechanism, through the item source `train()` builds: image-only keeps the first
    // (image) columns of the image+text feature, text-only the last (text) columns; and the
    // same for a LoRA-adapted encoder
    for method in [Method::Frozen, Method::GlobalPeft] {
        let features = |modality| {
            let cfg = TrainConfig {
                method,
                ..frozen(modality)
            };
            let (source, _) = ItemSource::build(
                &cfg,
                &dataset,
                &resolved.device,
                &resolved.device.clone().autodiff(),
            )
            .unwrap();
            let f = source.all(0, &dataset, &resolved.device).unwrap().unwrap();
            let [rows, d] = f.dims();
            (rows, d, f.into_data().iter::<f32>().collect::<Vec<f32>>())
        };
        let (rows, d, both) = features(Modality::Both);
        let (_, dt, text) = features(Modality::Text);
        let (_, di, image) = features(Modality::Image);
        assert_eq!(
            (di + dt, di),
            (d, 16),
            "{method:?}: CLIP-small halves are 16 wide"
        );
        for r in 0..rows {
            let row = &both[r * d..(r + 1) * d];
            assert_eq!(
                &image[r * di..(r + 1) * di],
                &row[..di],
                "{method:?} row {r}"
            );
            let diff = text[r * dt..(r + 1) * dt]
                .iter()
                .zip(&row[di..])
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            // the text half is encoded without the image tower: equal up to rounding
            assert!(
                diff <= 1e-6,
                "{method:?} row {r}: text half differs by {diff}"
            );
        }
    }
    // a dataset without images has no image half to keep
    let text_only_data = common::synthetic_dataset(40, 20, 1);
    let err = train(
        &text_only_data,
        &SasRecConfig::new(20),
        &frozen(Modality::Image),
        &resolved,
        &root.join("x"),
        Start::New,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("needs a dataset with images"),
        "{err}"
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// In `train()`'s per-group stage every batch holds one group's users, and its negatives are
/// drawn from that group's pool (the items of its users' training histories) minus the user's
/// own items; with the uniform-negatives ablation they are drawn from the whole catalogue.
#[test]
fn per_group_negatives_come_from_the_groups_pool() {
    let _rng = common::rng_lock();
    use perpeft::data::sampler::group_pool;
    use perpeft::data::sorted_distinct;
    let root = common::scratch("perpeft-negatives");
    // 300 items, ~20 users a group with ~11 training items each: pools are partial
    let dataset = common::synthetic_dataset(60, 300, 6);
    let split = perpeft::data::Split::leave_one_out(&dataset.sequences);
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let model_cfg = SasRecConfig::new(300);
    let mut outside = Vec::new();
    for uniform in [false, true] {
        let cfg = TrainConfig {
            uniform_negatives: uniform,
            epochs: 1,
            ..config(PeftKind::Iisan, &root)
        };
        let dir = root.join(if uniform { "uniform" } else { "pool" });
        let mut watch = Watch::all();
        train_with(
            &dataset,
            &model_cfg,
            &cfg,
            &resolved,
            &dir,
            Start::New,
            &mut watch,
        )
        .unwrap();
        let groups = RunDir::new(&dir).read_groups().unwrap();
        let pools: Vec<Vec<u32>> = groups
            .members()
            .iter()
            .map(|users| group_pool(&split.train, users))
            .collect();
        assert!(pools.iter().all(|p| p.len() < 250), "pools must be partial");
        let (mut drawn, mut out_of_pool) = (0, 0);
        assert!(!watch.per_group.is_empty());
        for (g, batch) in &watch.per_group {
            for (row, &u) in batch.users.iter().enumerate() {
                assert_eq!(groups.assignment[u], *g, "user {u} in a batch of group {g}");
                let seen = sorted_distinct(&split.train[u]);
                let cells = row * batch.max_len..(row + 1) * batch.max_len;
                for (&pos, &neg) in batch.pos[cells.clone()].iter().zip(&batch.neg[cells]) {
                    if pos == 0 {
                        continue;
                    }
                    drawn += 1;
                    assert!(
                        seen.binary_search(&neg).is_err(),
                        "user {u} saw negative {neg}"
                    );
                    // (no user here has trained on their whole group pool, so the sampler's
                    // fallback to uniform negatives for such a user never applies)
                    let in_pool = pools[*g].binary_search(&neg).is_ok();
                    assert!(
                        uniform || in_pool,
                        "group {g}: negative {neg} outside the pool"
                    );
                    out_of_pool += usize::from(!in_pool);
                }
            }
        }
        outside.push((out_of_pool, drawn));
    }
    assert_eq!(outside[0].0, 0, "group negatives stay in the pool");
    let (out, drawn) = outside[1];
    assert!(
        out * 10 > drawn,
        "uniform negatives: only {out} of {drawn} outside the group's pool"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
