//! The runs table's rules, shared so they are tested natively: how runs sort by a column and
//! which run is the best of its method and dataset.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};

use crate::api::{Metrics, RunStatus, RunSummary};

impl Metrics {
    /// The metric by column name (`hr10`, `ndcg10`, `hr20`, `ndcg20`, `hr30`, `ndcg30`).
    pub fn by_name(&self, name: &str) -> Option<f64> {
        Some(match name {
            "hr10" => self.hr10,
            "ndcg10" => self.ndcg10,
            "hr20" => self.hr20,
            "ndcg20" => self.ndcg20,
            "hr30" => self.hr30,
            "ndcg30" => self.ndcg30,
            _ => return None,
        })
    }
}

/// Column `key` of `r` as a number, if it is a numeric column and `r` has it: `seed`,
/// `groups`, `valid` (validation NDCG@20 at the best epoch), `time`, or a test metric.
fn number(r: &RunSummary, key: &str) -> Option<f64> {
    match key {
        "seed" => Some(r.seed as f64),
        "groups" => Some(r.groups as f64),
        "valid" => r.valid.map(|m| m.ndcg20),
        "time" => r.total_seconds,
        k => r.test.and_then(|m| m.by_name(k)),
    }
}

/// Column `key` of `r` as text (`method`, `adapter`, `dataset`, `status`; else the name).
fn text(r: &RunSummary, key: &str) -> String {
    match key {
        "method" => r.method.clone(),
        "adapter" => r.adapter.clone().unwrap_or_default(),
        "dataset" => r.dataset.clone(),
        "status" => r.status.name().into(),
        _ => r.name.clone(),
    }
}

/// Sorts `runs` by column `key`, ascending or descending. A run without the number (still
/// running, failed) goes last either way; ties keep their order (by name for text columns).
pub fn sort_runs(runs: &mut [RunSummary], key: &str, descending: bool) {
    let flip = |o: Ordering| if descending { o.reverse() } else { o };
    runs.sort_by(|a, b| match (number(a, key), number(b, key)) {
        (Some(x), Some(y)) => flip(x.total_cmp(&y)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => flip(text(a, key).cmp(&text(b, key))),
    });
}

/// Names of the best finished run of each (method, dataset) by validation NDCG@20 at its best
/// epoch (ties: the earlier run in `runs`).
pub fn best_runs(runs: &[RunSummary]) -> BTreeSet<String> {
    let mut best: HashMap<(&str, &str), (&RunSummary, f64)> = HashMap::new();
    for r in runs.iter().filter(|r| r.status == RunStatus::Finished) {
        let Some(v) = r.valid.map(|m| m.ndcg20) else {
            continue;
        };
        let slot = best
            .entry((r.method.as_str(), r.dataset.as_str()))
            .or_insert((r, v));
        if v > slot.1 {
            *slot = (r, v);
        }
    }
    best.into_values().map(|(r, _)| r.name.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, method: &str, dataset: &str, valid: Option<f64>) -> RunSummary {
        RunSummary {
            name: name.into(),
            method: method.into(),
            dataset: dataset.into(),
            status: if valid.is_some() {
                RunStatus::Finished
            } else {
                RunStatus::Running
            },
            valid: valid.map(|ndcg20| Metrics {
                ndcg20,
                ..Metrics::default()
            }),
            test: valid.map(|v| Metrics {
                ndcg20: 1.0 - v,
                ..Metrics::default()
            }),
            backbone: String::new(),
            seed: 0,
            device: String::new(),
            epochs_done: 1,
            epochs: 1,
            best_epoch: valid.map(|_| 1),
            seconds_per_epoch: None,
            code_version: String::new(),
            adapter: None,
            groups: 1,
            total_seconds: None,
            created_at: String::new(),
        }
    }

    #[test]
    fn the_best_run_is_per_method_and_dataset_by_validation_only() {
        let runs = vec![
            run("a", "id-only", "ml-100k", Some(0.10)),
            run("b", "id-only", "ml-100k", Some(0.12)),
            run("c", "id-only", "ml-100k", Some(0.12)), // tie: the earlier wins
            run("d", "id-only", "ml-1m", Some(0.05)),
            run("e", "perpeft-lora", "ml-100k", Some(0.01)),
            run("f", "perpeft-lora", "ml-100k", None), // running: never best
        ];
        let best = best_runs(&runs);
        assert_eq!(best, BTreeSet::from(["b".into(), "d".into(), "e".into()]));
        // test metrics play no part (a's test NDCG@20 is the highest)
        assert!(!best.contains("a"));
    }

    #[test]
    fn runs_without_the_number_sort_last_both_ways() {
        let mut runs = vec![
            run("x", "m", "d", None),
            run("lo", "m", "d", Some(0.1)),
            run("hi", "m", "d", Some(0.3)),
            run("mid", "m", "d", Some(0.2)),
        ];
        let names = |r: &[RunSummary]| r.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        sort_runs(&mut runs, "valid", false);
        assert_eq!(names(&runs), ["lo", "mid", "hi", "x"]);
        sort_runs(&mut runs, "valid", true);
        assert_eq!(names(&runs), ["hi", "mid", "lo", "x"]);
        // test NDCG@20 is 1 - valid here
        sort_runs(&mut runs, "ndcg20", true);
        assert_eq!(names(&runs), ["lo", "mid", "hi", "x"]);
        sort_runs(&mut runs, "name", true);
        assert_eq!(names(&runs), ["x", "mid", "lo", "hi"]);
        sort_runs(&mut runs, "name", false);
        assert_eq!(names(&runs), ["hi", "lo", "mid", "x"]);
    }

    #[test]
    fn metrics_by_name() {
        let m = Metrics {
            hr10: 1.0,
            ndcg10: 2.0,
            hr20: 3.0,
            ndcg20: 4.0,
            hr30: 5.0,
            ndcg30: 6.0,
            users: 7,
        };
        let got: Vec<_> = [
            "hr10", "ndcg10", "hr20", "ndcg20", "hr30", "ndcg30", "users",
        ]
        .iter()
        .map(|k| m.by_name(k))
        .collect();
        assert_eq!(
            got,
            [
                Some(1.0),
                Some(2.0),
                Some(3.0),
                Some(4.0),
                Some(5.0),
                Some(6.0),
                None
            ]
        );
    }
}
