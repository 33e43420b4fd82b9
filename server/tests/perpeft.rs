//! PerPEFT end to end on a synthetic dataset with the small CLIP fixture as backbone (fast):
//! every adapter type through all three stages, groups and per-group tables saved and
//! re-evaluated from disk, resume inside the per-group stage, new-user assignment, the
//! ablation flags, and the adapter bank's isolation of groups.

mod common;

use burn::prelude::*;
use common::{Watch, clip_dir, perpeft_config as config};
use perpeft::backbone::clip::{Clip, ClipConfig};
use perpeft::backbone::weights::WeightFile;
use perpeft::backbone::{Encoder, ImageTower, TextTower};
use perpeft::config::{Method, RunRecord, SasRecConfig, TrainConfig};
use perpeft::device::DeviceChoice;
use perpeft::engine::Engine;
use perpeft::eval::{Phase, evaluate_grouped};
use perpeft::peft::{self, Peft, PeftConfig, PeftKind};
use perpeft::store::RunDir;
use perpeft::train::{Event, Stage, Start, train, train_with};

#[test]
fn every_adapter_trains_through_all_three_stages_and_reevaluates_from_disk() {
    let _rng = common::rng_lock();
    let root = common::scratch("perpeft-stages");
    let dataset = common::synthetic_dataset(90, 40, 5);
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let model_cfg = SasRecConfig::new(40);
    for kind in [PeftKind::Iisan, PeftKind::Lora, PeftKind::Ia3] {
        let dir = root.join(kind.name());
        let cfg = config(kind, &root);
        let record = common::new_run(&dataset, &model_cfg, &cfg, &dir);
        assert_eq!(record.method, format!("perpeft-{}", kind.name()));
        assert_eq!(record.epochs.len(), 2);
        let sizes = record.groups.clone().expect("group sizes recorded");
        assert_eq!((sizes.len(), sizes.iter().sum::<usize>()), (3, 90));
        assert_eq!(
            record.best_groups.len(),
            3,
            "per-group metrics at the best epoch"
        );
        assert!(record.adapter_params.unwrap() > 0);
        assert_eq!(record.stages.len(), 2, "global and grouping timed");

        // groups and one item table per group are on disk and re-evaluate to the record
        let run = RunDir::new(&dir);
        let groups = run.read_groups().unwrap();
        let loaded = run.load_model(&resolved.device).unwrap();
        let (sasrec, tables) = (loaded.sasrec, loaded.tables);
        assert_eq!(tables.len(), 3);
        let split = perpeft::data::Split::leave_one_out(&dataset.sequences);
        let (test, per_group) =
            evaluate_grouped(&sasrec, &tables, &groups.assignment, &split, Phase::Test);
        assert_eq!(test, record.test, "{kind:?}");
        for (g, (_, t)) in record.best_groups.iter().enumerate() {
            assert_eq!(per_group[g], *t);
        }
        // group tables differ: the adapters and projectors were trained apart
        let a: Vec<f32> = tables[0].clone().into_data().iter::<f32>().collect();
        let b: Vec<f32> = tables[1].clone().into_data().iter::<f32>().collect();
        assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-6));

        // the best epoch's PEFT parameters are kept, without the frozen backbone
        let adapters = std::fs::metadata(run.adapters_file()).unwrap().len();
        let per_adapter_bytes = 4 * record.adapter_params.unwrap() as u64;
        assert!(
            adapters >= 3 * per_adapter_bytes && adapters < 3 * per_adapter_bytes + 200_000,
            "{kind:?}: {adapters} bytes for 3 adapters of {per_adapter_bytes}"
        );

        // independently of `evaluate_grouped`: each user ranked by hand with their group's table
        ranks_by_hand_match_the_record(&sasrec, &tables, &groups.assignment, &split, &record);

        // a known user's train + validation history (what grouping clustered) is assigned, as a
        // new history, to the group recorded for that user: by the engine, in plain Rust over
        // the saved global model and centroids
        let engine = Engine::open(&run, dataset.clone().into(), &resolved.device).unwrap();
        assert_eq!(engine.n_groups(), 3);
        for (u, &recorded) in groups.assignment.iter().enumerate() {
            let mut history = split.train[u].clone();
            history.extend(split.valid[u]);
            let grouping = engine.grouping().unwrap();
            assert_eq!(grouping.assign(&history), recorded, "{kind:?}: user {u}");
            let (assigned, _, _) = engine.recommend_for_history(&history, 5, None).unwrap();
            assert_eq!(assigned, recorded);
            assert_eq!(engine.group_of(u), recorded);
        }
        assert!(
            groups.members().iter().all(|m| !m.is_empty()),
            "every group has users, so the check above saw every group"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// Ranks every evaluated user's test item by brute force with the plain-Rust SASRec and their
/// group's item table, checks each against the batched device ranking, and checks the recorded
/// overall and per-group test metrics against metrics computed from the ranks by hand (where a
/// near-tie within 1e-4 makes the hand rank ambiguous, from the device's rank inside its
/// bracket; such users must be rare).
fn ranks_by_hand_match_the_record(
    sasrec: &perpeft::rec::SasRec,
    tables: &[Tensor<2>],
    assignment: &[usize],
    split: &perpeft::data::Split,
    record: &RunRecord,
) {
    use perpeft::eval::{metrics_from_ranks, ranks};
    use shared::ItemTable;
    let scorer = sasrec.to_scorer();
    let users = split.evaluated_users();
    let device_ranks: Vec<Vec<usize>> = tables
        .iter()
        .map(|t| ranks(sasrec, t, split, Phase::Test))
        .collect();
    let mut all = Vec::new();
    let mut per_group = vec![Vec::new(); tables.len()];
    let mut ambiguous = 0;
    for (i, &u) in users.iter().enumerate() {
        let g = assignment[u];
        let data: Vec<f32> = tables[g].clone().into_data().iter::<f32>().collect();
        let table = ItemTable::new(sasrec.hidden(), &data).unwrap();
        let mut history = split.train[u].clone();
        history.push(split.valid[u].unwrap());
        let target = split.test[u].unwrap();
        let scores = table.scores(&scorer.user_state(&table, &history));
        let t = scores[target as usize];
        let (mut lo, mut hi) = (0, 0);
        for item in 1..table.len() as u32 {
            if item != target && history.contains(&item) {
                continue;
            }
            let s = scores[item as usize];
            lo += usize::from(s > t + 1e-4);
            hi += usize::from(s > t - 1e-4) - usize::from(item == target);
        }
        let rank = device_ranks[g][i];
        assert!(
            lo <= rank && rank <= hi,
            "user {u} in group {g}: rank {rank}, by hand [{lo}, {hi}]"
        );
        let by_hand = if lo == hi {
            lo
        } else {
            ambiguous += 1;
            rank
        };
        all.push(by_hand);
        per_group[g].push(by_hand);
    }
    assert!(
        ambiguous * 20 <= users.len(),
        "{ambiguous} of {} users have near-ties",
        users.len()
    );
    // the same ranks, summed in user order rather than group by group: equal up to rounding
    let (m, r) = (metrics_from_ranks(&all), record.test);
    assert_eq!(m.users, r.users);
    for (x, y) in [
        (m.hr10, r.hr10),
        (m.ndcg10, r.ndcg10),
        (m.hr20, r.hr20),
        (m.ndcg20, r.ndcg20),
        (m.hr30, r.hr30),
        (m.ndcg30, r.ndcg30),
    ] {
        assert!((x - y).abs() < 1e-12, "{m:?} vs {r:?}");
    }
    for (g, ranks) in per_group.iter().enumerate() {
        assert_eq!(
            metrics_from_ranks(ranks),
            record.best_groups[g].1,
            "group {g}"
        );
    }
}

#[test]
fn a_perpeft_run_resumes_inside_the_per_group_stage() {
    let _rng = common::rng_lock();
    let root = common::scratch("perpeft-resume");
    let dataset = common::synthetic_dataset(80, 40, 9);
    let model_cfg = SasRecConfig::new(40);
    let cfg = TrainConfig {
        epochs: 3,
        ..config(PeftKind::Iisan, &root)
    };
    let straight = common::new_run(&dataset, &model_cfg, &cfg, &root.join("a"));
    common::assert_resume_matches(&dataset, &model_cfg, &cfg, &root.join("b"), &straight);
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_finished_global_peft_run_is_the_global_stage_of_a_perpeft_run() {
    let _rng = common::rng_lock();
    let root = common::scratch("perpeft-global-from");
    let dataset = common::synthetic_dataset(80, 40, 4);
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let model_cfg = SasRecConfig::new(40);
    let perpeft = TrainConfig {
        global_epochs: 2,
        epochs: 1,
        ..config(PeftKind::Lora, &root)
    };
    let global = TrainConfig {
        method: Method::GlobalPeft,
        epochs: 2,
        ..perpeft.clone()
    };
    common::new_run(&dataset, &model_cfg, &global, &root.join("global"));
    let straight = common::new_run(&dataset, &model_cfg, &perpeft, &root.join("straight"));
    let from = TrainConfig {
        global_from: Some(root.join("global")),
        ..perpeft.clone()
    };
    let reused = common::new_run(&dataset, &model_cfg, &from, &root.join("reused"));
    // same groups, same per-group training: the global-peft run was stage 1. (The training
    // loss has been seen to differ in its last bits, 2.5e-8 relative; the metrics do not.)
    let groups = |d: &str| RunDir::new(root.join(d)).read_groups().unwrap().assignment;
    assert_eq!(groups("straight"), groups("reused"));
    let metrics = |r: &RunRecord| {
        r.epochs
            .iter()
            .map(|e| (e.epoch, e.valid, e.test))
            .collect::<Vec<_>>()
    };
    assert_eq!(metrics(&straight), metrics(&reused));
    for (a, b) in straight.epochs.iter().zip(&reused.epochs) {
        assert!(
            (a.loss - b.loss).abs() <= 1e-6 * a.loss.abs(),
            "{} vs {}",
            a.loss,
            b.loss
        );
    }
    let global_seconds = |r: &RunRecord| r.stages[0].1;
    assert!(
        global_seconds(&reused) > 0.0,
        "the reused stage's time is reported"
    );

    // a source that does not fit is refused, naming it and the fix
    let fails = |cfg: &TrainConfig, dir: &str| {
        format!(
            "{:#}",
            train(
                &dataset,
                &model_cfg,
                cfg,
                &resolved,
                &root.join(dir),
                Start::New
            )
            .unwrap_err()
        )
    };
    let short = TrainConfig {
        global_epochs: 1,
        ..from.clone()
    };
    let err = fails(&short, "short");
    assert!(err.contains("--global-epochs 2"), "{err}");
    let not_global = TrainConfig {
        global_from: Some(root.join("straight")),
        ..perpeft.clone()
    };
    let err = fails(&not_global, "not-global");
    assert!(err.contains("needs a global-peft run"), "{err}");
    let ia3 = TrainConfig {
        peft: PeftConfig {
            kind: PeftKind::Ia3,
            ..PeftConfig::default()
        },
        ..from.clone()
    };
    let err = fails(&ia3, "ia3");
    assert!(err.contains("different model, backbone, adapter"), "{err}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn adapter_counts_on_full_clip_match_the_paper() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    let clip = Clip::from_weights(
        &mut WeightFile::synthetic(1),
        &ClipConfig::default(),
        &device,
    )
    .unwrap();
    let encoder = Encoder {
        text: TextTower::Clip(clip.text),
        image: Some(ImageTower::Clip(clip.vision)),
    };
    let count = |kind| {
        let cfg = PeftConfig {
            kind,
            ..PeftConfig::default()
        };
        Peft::Encoder(peft::attach(encoder.clone(), &cfg, &device)).adapter_params()
    };
    assert_eq!(count(PeftKind::Lora), 245_760, "docs/method.md §3.2");
    assert_eq!(count(PeftKind::Ia3), 46_080, "docs/method.md §3.3");
}

#[test]
fn only_the_active_adapter_of_a_bank_learns() {
    let _rng = common::rng_lock();
    let ad = Device::flex().autodiff();
    let clip = Clip::load(&clip_dir(), &ad).unwrap();
    let encoder = Encoder {
        text: TextTower::Clip(clip.text),
        image: None,
    };
    let cfg = PeftConfig::default();
    let bank = Peft::Encoder(peft::attach(encoder, &cfg, &ad)).replicate(3);
    let Peft::Encoder(e) = bank.select(1) else {
        unreachable!()
    };
    let ids =
        Tensor::<2, Int>::from_data(TensorData::new(vec![1512i64, 40, 41, 1513], [1, 4]), &ad);
    let mask = Tensor::<2>::ones([1, 4], &ad);
    let grads = e.text.embed(ids, mask).sum().backward();
    let TextTower::Clip(t) = &e.text else {
        unreachable!()
    };
    let site = &t.layers[0].attention.query;
    assert_eq!(site.adapters.len(), 3);
    let has_grad = |g: usize| {
        let lr = site.adapters[g].low_rank.as_ref().unwrap();
        lr.a.val().grad(&grads).is_some()
    };
    assert!(has_grad(1), "the active adapter learns");
    assert!(
        !has_grad(0) && !has_grad(2),
        "inactive adapters get nothing"
    );
}

/// A PerPEFT run stopped in its global stage, or between grouping and its first per-group
/// epoch, resumes to the run an uninterrupted one gives: the same groups, global model,
/// adapters, best-epoch files and per-epoch figures.
#[test]
fn a_perpeft_run_stopped_in_any_stage_resumes_to_the_same_run() {
    let _rng = common::rng_lock();
    let root = common::scratch("perpeft-stops");
    let dataset = common::synthetic_dataset(80, 40, 12);
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let model_cfg = SasRecConfig::new(40);
    let cfg = TrainConfig {
        global_epochs: 2,
        epochs: 2,
        ..config(PeftKind::Lora, &root)
    };
    let straight = common::new_run(&dataset, &model_cfg, &cfg, &root.join("straight"));
    let in_global: fn(&Event<'_>) -> bool = |e| {
        matches!(
            e,
            Event::Step {
                stage: Stage::Global,
                epoch: 2,
                step: 2,
                ..
            }
        )
    };
    let after_grouping: fn(&Event<'_>) -> bool = |e| matches!(e, Event::Grouped(_));
    for (name, stop) in [("in-global", in_global), ("after-grouping", after_grouping)] {
        let dir = root.join(name);
        let mut watch = Watch::stopping_at(stop);
        let err = train_with(
            &dataset,
            &model_cfg,
            &cfg,
            &resolved,
            &dir,
            Start::New,
            &mut watch,
        )
        .unwrap_err();
        assert!(
            matches!(err, perpeft::Error::Stopped { .. }),
            "{name}: {err}"
        );
        let run = RunDir::new(&dir);
        assert!(run.read_record().unwrap().epochs.is_empty());
        assert_eq!(run.groups_file().exists(), name == "after-grouping");
        // the global stage goes on after its last checkpointed epoch: epoch 2 when stopped
        // inside it, nothing once it is done
        let last = run.last_global_checkpoint().unwrap().map(|(e, _)| e);
        let first = if name == "in-global" { 2 } else { 3 };
        assert_eq!(last, Some(first - 1), "{name}");
        let mut watch = Watch::all();
        let resumed = train_with(
            &dataset,
            &model_cfg,
            &cfg,
            &resolved,
            &dir,
            Start::Resume,
            &mut watch,
        )
        .unwrap();
        // a stage with nothing left does not start
        let global: Vec<_> = watch
            .stages
            .iter()
            .filter(|(s, _)| *s == Stage::Global)
            .collect();
        if name == "in-global" {
            assert_eq!(global, [&(Stage::Global, first)], "{name}");
        } else {
            assert!(global.is_empty(), "{name}: {global:?}");
        }
        // only epoch 2's steps ran again
        assert!(
            watch.global_steps.iter().all(|&e| e == 2),
            "{name}: {:?}",
            watch.global_steps
        );
        assert_eq!(
            watch.global_steps.is_empty(),
            name == "after-grouping",
            "{name}"
        );
        // global-stage checkpoints go once the first evaluated epoch is recorded
        assert_eq!(run.last_global_checkpoint().unwrap(), None, "{name}");
        assert_eq!(
            common::epoch_metrics(&resumed.epochs),
            common::epoch_metrics(&straight.epochs),
            "{name}"
        );
        assert_eq!(
            (resumed.best_epoch, resumed.test),
            (straight.best_epoch, straight.test)
        );
        let want = RunDir::new(root.join("straight"));
        assert_eq!(
            run.read_groups().unwrap(),
            want.read_groups().unwrap(),
            "{name}"
        );
        for (a, b) in [
            (run.global().model_file(), want.global().model_file()),
            (run.global().tables_file(), want.global().tables_file()),
            (run.model_file(), want.model_file()),
            (run.tables_file(), want.tables_file()),
        ] {
            assert_eq!(
                common::safetensors_tensors(&a),
                common::safetensors_tensors(&b),
                "{}",
                a.display()
            );
        }
        let adapters = common::pack_tensors(&run.adapters_file());
        assert!(!adapters.is_empty());
        assert_eq!(
            adapters,
            common::pack_tensors(&want.adapters_file()),
            "{name}: adapters.bpk"
        );
    }
    std::fs::remove_dir_all(&root).unwrap();
}

/// `perpeft export` (the library behind it): a group's LoRA and (IA)3 adapters in the Hugging
/// Face PEFT layout hold exactly that group's trained values, in PyTorch's layouts and with
/// `peft`'s names and config; IISAN has no such layout.
#[test]
fn a_groups_adapter_exports_in_the_peft_layout_with_its_trained_values() {
    let _rng = common::rng_lock();
    let root = common::scratch("perpeft-export");
    let dataset = common::synthetic_dataset(60, 40, 8);
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let model_cfg = SasRecConfig::new(40);
    for kind in [PeftKind::Lora, PeftKind::Ia3, PeftKind::Iisan] {
        let dir = RunDir::new(root.join(kind.name()));
        common::new_run(&dataset, &model_cfg, &config(kind, &root), dir.path());
        let exported = perpeft::export::hf_adapter(&dir, &dataset, 2, &resolved.device);
        if kind == PeftKind::Iisan {
            let err = exported
                .err()
                .expect("IISAN has no PEFT layout")
                .to_string();
            assert!(err.contains("no Hugging Face PEFT layout"), "{err}");
            continue;
        }
        let out = root.join(format!("{}-export", kind.name()));
        perpeft::export::write(&exported.unwrap(), &out).unwrap();
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap())
                .unwrap();
        let tensors = common::safetensors_tensors(&out.join("adapter_model.safetensors"));
        let saved = common::pack_tensors(&dir.adapters_file());
        // the bank's tensor for site `path` (`layers.{l}.attention.query`), adapter 2
        let bank = |path: &str, leaf: &str| -> Vec<f32> {
            let (_, bytes) = saved
                .iter()
                .find(|(n, _)| n.contains(path) && n.ends_with(&format!("adapters.2.{leaf}")))
                .unwrap_or_else(|| panic!("no {path} .. adapters.2.{leaf} in {:?}", saved.keys()));
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect()
        };
        let floats = |n: &str| -> (Vec<usize>, Vec<f32>) {
            let (shape, bytes) = &tensors[n];
            let v = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (shape.clone(), v)
        };
        let p = "base_model.model.text_model.encoder.layers";
        match kind {
            PeftKind::Lora => {
                assert_eq!(config["peft_type"], "LORA");
                assert_eq!(
                    config["target_modules"],
                    serde_json::json!(["q_proj", "v_proj"])
                );
                assert_eq!(tensors.len(), 2 * 2 * 2, "A and B of q and v in 2 layers");
                let (shape, a) = floats(&format!("{p}.1.self_attn.v_proj.lora_A.weight"));
                assert_eq!(shape, [4, 32]);
                // burn keeps A as [d_in, r]: PyTorch's weight is its transpose
                let ours = bank("layers.1.attention.value", "low_rank.a");
                let transposed: Vec<f32> = (0..4)
                    .flat_map(|r| (0..32).map(move |i| (r, i)))
                    .map(|(r, i)| ours[i * 4 + r])
                    .collect();
                assert_eq!(a, transposed);
                let (shape, _) = floats(&format!("{p}.0.self_attn.q_proj.lora_B.weight"));
                assert_eq!(shape, [32, 4]);
            }
            _ => {
                assert_eq!(config["peft_type"], "IA3");
                assert_eq!(config["feedforward_modules"], serde_json::json!(["fc1"]));
                let (shape, k) = floats(&format!("{p}.0.self_attn.k_proj.ia3_l"));
                assert_eq!(shape, [32, 1]);
                assert_eq!(k, bank("layers.0.attention.key", "scale_out"));
                let (shape, fc1) = floats(&format!("{p}.1.mlp.fc1.ia3_l"));
                assert_eq!(shape, [1, 32]);
                assert_eq!(fc1, bank("layers.1.fc1", "scale_in"));
                assert!(
                    k.iter().any(|&v| v != 1.0),
                    "trained away from the ones it starts at"
                );
            }
        }
        // group 3 of 3 does not exist
        let err = perpeft::export::hf_adapter(&dir, &dataset, 3, &resolved.device)
            .err()
            .unwrap();
        assert!(err.to_string().contains("group 3 does not exist"), "{err}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
