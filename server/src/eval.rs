//! `eval` owns full-ranking evaluation: every user's target is ranked against all items minus
//! the user's history, in batches of users on the device (one matrix product per batch).
//!
//! Rank = number of non-excluded items scoring strictly higher than the target (ties go to the
//! target). HR@K = 1[rank < K], NDCG@K = 1/log2(rank + 2) if rank < K, for K = 10, 20, 30.

use burn::prelude::*;
use shared::api::Metrics;

use crate::config::RunRecord;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::rec::SasRec;
use crate::store::RunDir;

/// Which held-out item is the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Target = validation item; input and exclusions = training items.
    Valid,
    /// Target = test item; input and exclusions = training items + validation item.
    Test,
}

/// Users evaluated per device batch.
pub const EVAL_BATCH: usize = 256;

/// One user's evaluation case.
struct Case {
    user: usize,
    history: Vec<u32>,
    target: u32,
}

fn cases(split: &Split, phase: Phase) -> Vec<Case> {
    split
        .evaluated_users()
        .into_iter()
        .map(|u| {
            let mut history = split.train[u].clone();
            let target = match phase {
                Phase::Valid => split.valid[u].unwrap(),
                Phase::Test => {
                    history.push(split.valid[u].unwrap());
                    split.test[u].unwrap()
                }
            };
            Case {
                user: u,
                history,
                target,
            }
        })
        .collect()
}

pub use shared::sasrec::window;

/// Metrics from 0-based ranks.
pub fn metrics_from_ranks(ranks: &[usize]) -> Metrics {
    let n = ranks.len().max(1) as f64;
    let hr = |k: usize| ranks.iter().filter(|&&r| r < k).count() as f64 / n;
    let ndcg = |k: usize| {
        ranks
            .iter()
            .filter(|&&r| r < k)
            .map(|&r| 1.0 / ((r + 2) as f64).log2())
            .sum::<f64>()
            / n
    };
    Metrics {
        hr10: hr(10),
        ndcg10: ndcg(10),
        hr20: hr(20),
        ndcg20: ndcg(20),
        hr30: hr(30),
        ndcg30: ndcg(30),
        users: ranks.len(),
    }
}

/// 0-based full-ranking ranks of each evaluated user's target. `model` must be in inference
/// mode (`valid()`), `table` is `[n_items + 1, d]` on the same device.
pub fn ranks(model: &SasRec, table: &Tensor<2>, split: &Split, phase: Phase) -> Vec<usize> {
    ranks_of(model, table, &cases(split, phase))
}

/// Overall and per-group metrics when each user is scored with their group's item table
/// (`tables[assignment[user]]`, for input sequence and candidates alike). The overall figure is
/// the plain mean over all evaluated users.
pub fn evaluate_grouped(
    model: &SasRec,
    tables: &[Tensor<2>],
    assignment: &[usize],
    split: &Split,
    phase: Phase,
) -> (Metrics, Vec<Metrics>) {
    let mut by_group: Vec<Vec<Case>> = (0..tables.len()).map(|_| Vec::new()).collect();
    for c in cases(split, phase) {
        by_group[assignment[c.user]].push(c);
    }
    let mut all = Vec::new();
    let per_group = by_group
        .iter()
        .zip(tables)
        .map(|(cases, table)| {
            let r = ranks_of(model, table, cases);
            all.extend_from_slice(&r);
            metrics_from_ranks(&r)
        })
        .collect();
    (metrics_from_ranks(&all), per_group)
}

fn ranks_of(model: &SasRec, table: &Tensor<2>, cases: &[Case]) -> Vec<usize> {
    let device = table.device();
    let [rows, _] = table.dims();
    let l = model.max_len();
    let mut out = Vec::with_capacity(cases.len());
    for chunk in cases.chunks(EVAL_BATCH) {
        let b = chunk.len();
        let seq: Vec<i64> = chunk
            .iter()
            .flat_map(|c| window(&c.history, l))
            .map(i64::from)
            .collect();
        let targets: Vec<i64> = chunk.iter().map(|c| c.target as i64).collect();
        let mut excluded = vec![false; b * rows];
        for (i, c) in chunk.iter().enumerate() {
            excluded[i * rows] = true;
            for &h in &c.history {
                if h != c.target {
                    excluded[i * rows + h as usize] = true;
                }
            }
        }
        let seq = Tensor::<2, Int>::from_data(TensorData::new(seq, [b, l]), &device);
        let targets = Tensor::<2, Int>::from_data(TensorData::new(targets, [b, 1]), &device);
        let excluded = Tensor::<2, Bool>::from_data(TensorData::new(excluded, [b, rows]), &device);
        let users = model.user_states(seq, table.clone());
        let scores = users
            .matmul(table.clone().transpose())
            .mask_fill(excluded, f32::NEG_INFINITY);
        let target_scores = scores.clone().gather(1, targets);
        // a NaN target score would beat nothing and rank first: count it as ranked last
        let broken = target_scores.clone().is_nan();
        let rank = scores
            .greater(target_scores.expand([b, rows]))
            .int()
            .sum_dim(1)
            .mask_fill(broken, rows as i64);
        out.extend(rank.into_data().iter::<i64>().map(|r| r as usize));
    }
    out
}

/// The popularity baseline's (validation, test) metrics: every item scored by how often it
/// occurs in the training sequences of all users, ranked with the same protocol as the models
/// (the user's history excluded, ties to the target).
pub fn popularity(split: &Split) -> (Metrics, Metrics) {
    let n = split
        .train
        .iter()
        .flatten()
        .chain(split.valid.iter().flatten())
        .chain(split.test.iter().flatten())
        .max()
        .map_or(0, |&m| m as usize);
    let mut count = vec![0u64; n + 1];
    for &i in split.train.iter().flatten() {
        count[i as usize] += 1;
    }
    // items counted more often than a given count: sorted once, looked up per user
    let mut sorted = count[1..].to_vec();
    sorted.sort_unstable();
    let more_than = |c: u64| sorted.len() - sorted.partition_point(|&x| x <= c);
    let phase = |phase: Phase| {
        let ranks: Vec<usize> = cases(split, phase)
            .iter()
            .map(|c| {
                let target = count[c.target as usize];
                let mut excluded: Vec<u32> = c
                    .history
                    .iter()
                    .copied()
                    .filter(|&h| h != c.target && count[h as usize] > target)
                    .collect();
                excluded.sort_unstable();
                excluded.dedup();
                more_than(target) - excluded.len()
            })
            .collect();
        metrics_from_ranks(&ranks)
    };
    (phase(Phase::Valid), phase(Phase::Test))
}

/// A saved run evaluated again from disk.
pub struct RunEvaluation {
    /// The run's record (what it reported when it was trained).
    pub record: RunRecord,
    /// Validation and test metrics now, over all evaluated users.
    pub valid: Metrics,
    pub test: Metrics,
    /// Per group `(valid, test)` (one entry for a single-table run).
    pub per_group: Vec<(Metrics, Metrics)>,
    /// Users ranked per second (validation and test together).
    pub users_per_s: f64,
}

/// Evaluates the best epoch of the run in `dir` on `dataset` (which must be the data it was
/// trained on), each user with their group's item table, on `device`.
pub fn evaluate_run(dir: &RunDir, dataset: &Dataset, device: &Device) -> Result<RunEvaluation> {
    let model = dir.load_model(device)?;
    let record = model.record;
    if dataset.checksum != record.dataset_checksum {
        return Err(Error::Conflict(format!(
            "{} was trained on data with checksum {}, the data on disk has {}",
            dir.path().display(),
            record.dataset_checksum,
            dataset.checksum
        )));
    }
    let assignment = if model.tables.len() > 1 {
        let groups = dir.read_groups()?;
        let fits = groups.k == model.tables.len()
            && groups.assignment.len() == dataset.n_users()
            && groups.assignment.iter().all(|&g| g < groups.k);
        if !fits {
            return Err(Error::format(
                &dir.groups_file(),
                "the groups do not fit the run's item tables and the dataset's users",
            ));
        }
        groups.assignment
    } else {
        vec![0; dataset.n_users()]
    };
    let split = Split::leave_one_out(&dataset.sequences);
    let clock = std::time::Instant::now();
    let (valid, vg) = evaluate_grouped(
        &model.sasrec,
        &model.tables,
        &assignment,
        &split,
        Phase::Valid,
    );
    let (test, tg) = evaluate_grouped(
        &model.sasrec,
        &model.tables,
        &assignment,
        &split,
        Phase::Test,
    );
    let users_per_s = (valid.users + test.users) as f64 / clock.elapsed().as_secs_f64().max(1e-9);
    Ok(RunEvaluation {
        record,
        valid,
        test,
        per_group: vg.into_iter().zip(tg).collect(),
        users_per_s,
    })
}

/// Metrics of `phase` for every evaluated user.
pub fn evaluate(model: &SasRec, table: &Tensor<2>, split: &Split, phase: Phase) -> Metrics {
    metrics_from_ranks(&ranks(model, table, split, phase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let m = metrics_from_ranks(&[0, 9, 10, 25]);
        assert!((m.hr30 - 1.0).abs() < 1e-12);
        let n30 = (1.0 + 1.0 / 11f64.log2() + 1.0 / 12f64.log2() + 1.0 / 27f64.log2()) / 4.0;
        assert!((m.ndcg30 - n30).abs() < 1e-12);
        assert_eq!(m.users, 4);
        assert!((m.hr10 - 0.5).abs() < 1e-12);
        assert!((m.hr20 - 0.75).abs() < 1e-12);
        let n10 = (1.0 + 1.0 / 11f64.log2()) / 4.0;
        assert!((m.ndcg10 - n10).abs() < 1e-12);
        let n20 = (1.0 + 1.0 / 11f64.log2() + 1.0 / 12f64.log2()) / 4.0;
        assert!((m.ndcg20 - n20).abs() < 1e-12);
    }

    #[test]
    fn windows_are_right_aligned() {
        assert_eq!(window(&[1, 2, 3], 5), vec![0, 0, 1, 2, 3]);
        assert_eq!(window(&[1, 2, 3, 4, 5, 6], 4), vec![3, 4, 5, 6]);
    }
}
