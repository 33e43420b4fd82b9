//! The all-data training options, checked against hand computation: every loss (BCE with
//! several negatives, BPR, full and sampled softmax) equals its formula on the model's own
//! scores, the popularity baseline ranks as counted by hand, early stopping stops where its
//! rule says, and PerPEFT's group selection never leaves a group below the global model on
//! its own users' validation, with the shared SASRec untouched.

mod common;

use burn::prelude::*;
use perpeft::config::{
    BackboneChoice, Loss, Method, PeftConfig, PeftKind, SasRecConfig, TrainConfig, Windows,
};
use perpeft::data::Split;
use perpeft::data::sampler::Sampler;
use perpeft::device::DeviceChoice;
use perpeft::eval::{Phase, evaluate_grouped, metrics_from_ranks, popularity};
use perpeft::rec::SasRec;
use perpeft::rec::loss::{Candidates, EXCLUDED, L2_EMB, loss};
use perpeft::store::RunDir;
use perpeft::train::stages::patience_spent;
use perpeft::train::{LocalBatch, Start, train};

fn floats(t: Tensor<2>) -> Vec<Vec<f64>> {
    let [r, c] = t.dims();
    let v: Vec<f32> = t.into_data().iter::<f32>().collect();
    (0..r)
        .map(|i| v[i * c..(i + 1) * c].iter().map(|&x| x as f64).collect())
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn log_sigmoid(x: f64) -> f64 {
    -(1.0 + (-x).exp()).ln()
}

fn log_softmax_at(scores: &[f64], at: usize) -> f64 {
    let m = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let z: f64 = scores.iter().map(|s| (s - m).exp()).sum();
    scores[at] - m - z.ln()
}

/// Each loss of a batch of all windows equals its formula computed here in f64 from the
/// model's user states and item table.
#[test]
fn every_loss_equals_its_formula() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    device.seed(3);
    let split = common::synthetic_split(40, 60, 5);
    let l = 8;
    let model: SasRec = SasRecConfig {
        max_len: l,
        ..SasRecConfig::new(60).with_dropout(0.0)
    }
    .init(&device);
    let table = model.id_table();
    let rows = floats(table.clone());
    let l2 = L2_EMB * rows.iter().flatten().map(|x| x * x).sum::<f64>().sqrt();
    for (kind, per_position, shared) in [
        (Loss::Bce, 1, 0),
        (Loss::Bce, 3, 0),
        (Loss::Bpr, 2, 0),
        (Loss::Ce, 0, 0),
        (Loss::Ce, 0, 7),
    ] {
        let sampler = Sampler::new(&split.train, 60, l, 6, 1)
            .with_all_windows(true)
            .with_negatives_per_position(per_position)
            .with_shared_negatives(shared);
        let batch = sampler.epoch(1).remove(0);
        let local = LocalBatch::full(&batch, 60);
        let t = local.tensors(&device);
        let states = floats(
            model
                .forward(t.seq.clone(), table.clone())
                .reshape([batch.users.len() * l, 32]),
        );
        let candidates = match t.shared.clone() {
            Some((s, b)) => Candidates::Shared(s, b),
            None => {
                let mut bias = vec![0.0f32; 61];
                bias[0] = EXCLUDED;
                Candidates::All(Tensor::from_data(TensorData::new(bias, [61]), &device))
            }
        };
        let got = loss(
            kind,
            &model,
            table.clone(),
            t.seq,
            t.pos,
            t.neg,
            t.targets,
            candidates,
        )
        .into_scalar::<f32>() as f64;
        // the batch re-indexed onto its own items (the trainer's path unless the softmax is
        // full) gives the same loss from the table's rows
        if shared > 0 || per_position > 1 || kind == Loss::Bpr {
            let part = LocalBatch::new(&batch);
            let t = part.tensors(&device);
            let rows_table = table.clone().select(0, t.items.clone());
            let candidates = match t.shared.clone() {
                Some((s, b)) => Candidates::Shared(s, b),
                None => Candidates::All(Tensor::zeros([part.items.len()], &device)),
            };
            let local = loss(
                kind, &model, rows_table, t.seq, t.pos, t.neg, t.targets, candidates,
            )
            .into_scalar::<f32>() as f64;
            assert!(
                (local - got).abs() < 1e-5 * got.abs().max(1.0),
                "{kind:?}: batch-local {local} vs full {got}"
            );
        }
        // by hand
        let targets: Vec<usize> = (0..batch.pos.len())
            .filter(|&i| batch.pos[i] != 0)
            .collect();
        let score = |at: usize, item: u32| dot(&states[at], &rows[item as usize]);
        let n = targets.len() as f64;
        let k = batch.negatives;
        let neg = &batch.neg;
        let want = match kind {
            Loss::Bce => {
                let pos: f64 = targets
                    .iter()
                    .map(|&i| -log_sigmoid(score(i, batch.pos[i])))
                    .sum();
                let neg: f64 = targets
                    .iter()
                    .flat_map(|&i| (0..k).map(move |j| (i, neg[i * k + j])))
                    .map(|(i, item)| -log_sigmoid(-score(i, item)))
                    .sum();
                (pos + neg) / n
            }
            Loss::Bpr => {
                targets
                    .iter()
                    .flat_map(|&i| (0..k).map(move |j| (i, neg[i * k + j])))
                    .map(|(i, item)| -log_sigmoid(score(i, batch.pos[i]) - score(i, item)))
                    .sum::<f64>()
                    / (n * k as f64)
            }
            Loss::Ce if batch.shared.is_empty() => {
                targets
                    .iter()
                    .map(|&i| {
                        let s: Vec<f64> = (1..=60).map(|item| score(i, item)).collect();
                        -log_softmax_at(&s, batch.pos[i] as usize - 1)
                    })
                    .sum::<f64>()
                    / n
            }
            Loss::Ce => {
                targets
                    .iter()
                    .map(|&i| {
                        let p = batch.pos[i];
                        // the positive first, then the shared negatives that are not it
                        let s: Vec<f64> = std::iter::once(score(i, p))
                            .chain(
                                batch
                                    .shared
                                    .iter()
                                    .filter(|&&x| x != p)
                                    .map(|&x| score(i, x)),
                            )
                            .collect();
                        -log_softmax_at(&s, 0)
                    })
                    .sum::<f64>()
                    / n
            }
        } + l2;
        assert!(
            (got - want).abs() < 1e-4 * want.abs().max(1.0),
            "{kind:?} ({per_position} per position, {shared} shared): {got} vs {want}"
        );
    }
}

/// Popularity ranks each target by the training counts of all users, the user's history
/// excluded and ties going to the target, as counted here by hand.
#[test]
fn popularity_ranks_as_counted_by_hand() {
    // training items (last two of each sequence are validation and test):
    // u0: 1 2 3 | valid 4 | test 5; u1: 1 1 2 | valid 2 | test 6; u2: 3 | valid 1 | test 4
    let seqs = vec![vec![1, 2, 3, 4, 5], vec![1, 1, 2, 2, 6], vec![3, 1, 4]];
    let split = Split::leave_one_out(&seqs);
    // counts: 1 → 3, 2 → 2, 3 → 2, others 0
    let (valid, test) = popularity(&split);
    // valid: u0 target 4 (count 0): items above it are 1, 2, 3, all in u0's history → rank 0
    //        u1 target 2 (count 2, in history but the target): above it only 1 (history) → 0
    //        u2 target 1 (count 3): nothing above → 0
    assert_eq!(valid, metrics_from_ranks(&[0, 0, 0]));
    // test: u0 target 5 (count 0), history 1 2 3 4 → 0
    //       u1 target 6 (count 0), history 1 1 2 2 → above and not excluded: 3 → rank 1
    //       u2 target 4 (count 0), history 3 1 → above and not excluded: 2 → rank 1
    assert_eq!(test, metrics_from_ranks(&[0, 1, 1]));
}

#[test]
fn patience_counts_epochs_since_the_best() {
    assert!(!patience_spent(0, 100, 1), "0 never stops");
    assert!(!patience_spent(3, 4, 2));
    assert!(patience_spent(3, 5, 2));
    assert!(patience_spent(1, 2, 1));
}

/// With a learning rate too small to change anything, validation never improves after epoch 1:
/// patience 2 stops after epoch 3 of 30, and the run is finished with 3 epochs and a baseline.
#[test]
fn early_stopping_stops_a_run_that_no_longer_improves() {
    let _rng = common::rng_lock();
    let dataset = common::synthetic_dataset(120, 80, 9);
    let root = common::scratch("early-stop");
    let cfg = TrainConfig {
        lr: 1e-30,
        epochs: 30,
        patience: 2,
        max_len: 12,
        ..TrainConfig::recommended()
    };
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let record = train(
        &dataset,
        &cfg.sasrec(80),
        &cfg,
        &resolved,
        &root.join("run"),
        Start::New,
    )
    .unwrap();
    assert_eq!(record.best_epoch, 1);
    assert_eq!(record.epochs.len(), 3, "stopped after epoch 1 + patience 2");
    let (pop_valid, _) = record.popularity.expect("the baseline is recorded");
    assert_eq!(pop_valid.users, record.test.users);
    assert_eq!(
        record.beats_popularity(),
        Some(record.best().unwrap().valid.ndcg20 > pop_valid.ndcg20)
    );
    std::fs::remove_dir_all(&root).unwrap();
}

/// All windows train on every pair of every user: the recommended preset's epoch covers as
/// many target positions as the training sequences hold pairs, the reference's one window each.
#[test]
fn all_windows_cover_every_training_pair() {
    let split = common::synthetic_split(300, 90, 4);
    let pairs: usize = split.train.iter().map(|s| s.len().saturating_sub(1)).sum();
    let rec = TrainConfig::recommended();
    assert_eq!(rec.windows, Windows::All);
    let s = Sampler::new(&split.train, 90, 5, 16, 1).with_all_windows(true);
    assert_eq!(s.targets_per_epoch(), pairs);
    let mut seen = 0;
    for b in s.epoch(2) {
        seen += b.pos.iter().filter(|&&p| p != 0).count();
    }
    assert_eq!(seen, pairs);
    let last = Sampler::new(&split.train, 90, 5, 16, 1);
    let want: usize = split
        .train
        .iter()
        .map(|s| s.len().saturating_sub(1).min(5))
        .sum();
    assert_eq!(last.targets_per_epoch(), want);
    assert!(want < pairs);
}

/// PerPEFT-IISAN with the shared SASRec frozen and group selection: every group ends at least
/// as good as the global model on its own users' validation, the validation curve never falls,
/// and SASRec is the global stage's. (`NO_GROUP_SELECT=1` runs the same without selection, to
/// see the test fail.)
#[test]
fn group_selection_never_leaves_a_group_below_the_global_model() {
    let _rng = common::rng_lock();
    // three tastes, each walking its own 50 items in order: a signal groups can learn
    let sequences: Vec<Vec<u32>> = (0..300u32)
        .map(|u| {
            let (taste, start, len) = (u % 3, u * 7 % 50, 8 + u % 13);
            (0..len)
                .map(|t| taste * 50 + (start + t) % 50 + 1)
                .collect()
        })
        .collect();
    let users = (0..300).map(|u| format!("u{u}")).collect();
    let dataset = common::dataset("walks", users, sequences, 150);
    let root = common::scratch("group-select");
    let cfg = TrainConfig {
        method: Method::Perpeft,
        backbone: BackboneChoice::Clip,
        clip_dir: Some(common::clip_dir()),
        cache_dir: root.join("cache"),
        peft: PeftConfig {
            kind: PeftKind::Iisan,
            ..PeftConfig::default()
        },
        groups: 3,
        global_epochs: 2,
        epochs: 4,
        max_len: 12,
        // far too high: per-group epochs make some groups worse, which selection must undo
        lr: 0.5,
        peft_lr: 0.5,
        freeze_shared: true,
        group_select: std::env::var_os("NO_GROUP_SELECT").is_none(),
        ..TrainConfig::recommended()
    };
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let dir = root.join("run");
    let record = train(
        &dataset,
        &cfg.sasrec(150),
        &cfg,
        &resolved,
        &dir,
        Start::New,
    )
    .unwrap();
    let run = RunDir::new(&dir);
    let global = run.load_global(&resolved.device).unwrap();
    let groups = run.read_groups().unwrap();
    let split = Split::leave_one_out(&dataset.sequences);
    let tables = vec![global.tables[0].clone(); groups.k];
    let (overall, global_valid) = evaluate_grouped(
        &global.sasrec,
        &tables,
        &groups.assignment,
        &split,
        Phase::Valid,
    );
    assert_eq!(record.best_groups.len(), groups.k);
    eprintln!(
        "valid NDCG@20: global {:?} per group, {} overall; selected {:?}; epochs {:?}",
        global_valid.iter().map(|m| m.ndcg20).collect::<Vec<_>>(),
        overall.ndcg20,
        record
            .best_groups
            .iter()
            .map(|(v, _)| v.ndcg20)
            .collect::<Vec<_>>(),
        record
            .epochs
            .iter()
            .map(|e| e.valid.ndcg20)
            .collect::<Vec<_>>()
    );
    // every group at least as good after every epoch as before it, so the whole too: the
    // validation curve never falls (without selection it does, in this configuration)
    for w in record.epochs.windows(2) {
        assert!(
            w[1].valid.ndcg20 >= w[0].valid.ndcg20 - 1e-12,
            "epoch {} fell from {} to {}",
            w[1].epoch,
            w[0].valid.ndcg20,
            w[1].valid.ndcg20
        );
    }
    for e in &record.epochs {
        assert!(
            e.valid.ndcg20 >= overall.ndcg20 - 1e-12,
            "epoch {}: {} below the global model's {}",
            e.epoch,
            e.valid.ndcg20,
            overall.ndcg20
        );
    }
    for (g, ((valid, _), global)) in record.best_groups.iter().zip(&global_valid).enumerate() {
        assert!(
            valid.ndcg20 >= global.ndcg20,
            "group {g}: {} below the global model's {}",
            valid.ndcg20,
            global.ndcg20
        );
    }
    assert_eq!(
        common::safetensors_tensors(&run.model_file()),
        common::safetensors_tensors(&run.global().model_file()),
        "the shared SASRec stays the global stage's"
    );
    std::fs::remove_dir_all(&root).unwrap();
}
