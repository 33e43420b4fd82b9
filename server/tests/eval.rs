//! Batched on-device full ranking agrees with a brute-force per-user ranking that uses the
//! shared scorer's dot product.

mod common;

use burn::prelude::*;
use perpeft::engine::to_vec;
use perpeft::eval::{Phase, metrics_from_ranks, ranks, window};
use perpeft::rec::SasRecConfig;
use shared::ItemTable;

#[test]
fn batched_ranks_equal_brute_force() {
    let _rng = common::rng_lock();
    let n_items = 300;
    let split = common::synthetic_split(600, n_items, 5);
    let device = Device::flex();
    device.seed(3);
    let model = SasRecConfig::new(n_items as usize).init(&device);
    let table_t = model.id_table();
    let table_v = to_vec(table_t.clone());
    let table = ItemTable::new(model.hidden(), &table_v).unwrap();
    for phase in [Phase::Valid, Phase::Test] {
        let got = ranks(&model, &table_t, &split, phase);
        let users = split.evaluated_users();
        assert_eq!(got.len(), users.len());
        assert!(
            users.len() > 400 && users.len() < 600,
            "some users are too short to evaluate"
        );
        for (&u, &rank) in users.iter().zip(&got) {
            let mut history = split.train[u].clone();
            let target = match phase {
                Phase::Valid => split.valid[u].unwrap(),
                Phase::Test => {
                    history.push(split.valid[u].unwrap());
                    split.test[u].unwrap()
                }
            };
            let seq: Vec<i64> = window(&history, model.max_len())
                .into_iter()
                .map(i64::from)
                .collect();
            let seq =
                Tensor::<2, Int>::from_data(TensorData::new(seq, [1, model.max_len()]), &device);
            let state = to_vec(model.user_states(seq, table_t.clone()));
            let scores = table.scores(&state);
            let t = scores[target as usize];
            let candidates = (1..=n_items).filter(|i| *i == target || !history.contains(i));
            let eps = 1e-4;
            let (mut lo, mut hi) = (0, 0);
            for i in candidates {
                let s = scores[i as usize];
                if s > t + eps {
                    lo += 1;
                }
                if s > t - eps {
                    hi += 1;
                }
            }
            assert!(
                lo <= rank && rank <= hi,
                "user {u}: rank {rank} outside brute force [{lo}, {hi}]"
            );
        }
        let m = metrics_from_ranks(&got);
        assert_eq!(m.users, users.len());
    }
}

/// A saved run re-evaluates to exactly the metrics its record holds (reproducible from disk).
#[test]
fn a_saved_run_reproduces_its_recorded_metrics() {
    let _rng = common::rng_lock();
    use perpeft::config::TrainConfig;
    use perpeft::device::DeviceChoice;
    use perpeft::eval::{Phase, evaluate};
    use perpeft::train::{Start, train};

    let dataset = common::synthetic_dataset(200, 120, 17);
    let root = std::env::temp_dir().join(format!("perpeft-eval-run-{}", std::process::id()));
    let dir = root.join("run");
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let cfg = TrainConfig {
        epochs: 3,
        ..TrainConfig::default()
    };
    let record = train(
        &dataset,
        &SasRecConfig::new(120),
        &cfg,
        &resolved,
        &dir,
        Start::New,
    )
    .unwrap();
    let loaded = perpeft::store::RunDir::new(&dir)
        .load_model(&resolved.device)
        .unwrap();
    let (model, table) = (&loaded.sasrec, &loaded.tables[0]);
    assert_eq!(loaded.record.best_epoch, record.best_epoch);
    let split = perpeft::data::Split::leave_one_out(&dataset.sequences);
    let valid = evaluate(model, table, &split, Phase::Valid);
    let test = evaluate(model, table, &split, Phase::Test);
    assert_eq!(test, record.test);
    assert_eq!(valid, record.epochs[record.best_epoch - 1].valid);
    std::fs::remove_dir_all(&root).unwrap();
}

/// A user who has trained on every item leaves no negative to sample: training refuses the data
/// and names the user, instead of looping or panicking.
#[test]
fn training_refuses_a_user_without_possible_negatives() {
    let _rng = common::rng_lock();
    use perpeft::config::TrainConfig;
    use perpeft::device::DeviceChoice;
    use perpeft::train::{Start, train};
    // "greedy" trains on items 1..=4 (its last two go to validation and test)
    let sequences = vec![vec![1, 2, 3, 4, 1, 2], vec![1, 2, 3]];
    let users = vec!["greedy".to_string(), "other".to_string()];
    let dataset = common::dataset("tiny", users, sequences, 4);
    let dir = std::env::temp_dir().join(format!("perpeft-no-neg-{}", std::process::id()));
    let resolved = DeviceChoice::Flex.resolve().unwrap();
    let err = train(
        &dataset,
        &SasRecConfig::new(4),
        &TrainConfig::default(),
        &resolved,
        &dir,
        Start::New,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("user \"greedy\" of tiny has interacted with every item"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing is written for refused data");
}

/// A diverged model (NaN item table) must not score as perfect: every rank is last.
#[test]
fn nan_scores_rank_last_instead_of_first() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    let split = common::synthetic_split(30, 20, 4);
    let model = SasRecConfig::new(20).init(&device);
    let table = model.id_table().mul_scalar(f32::NAN);
    let r = ranks(&model, &table, &split, Phase::Test);
    assert!(!r.is_empty());
    assert!(r.iter().all(|&x| x == 21), "{r:?}");
}
