//! Model selection, the one rule: validation NDCG@20, higher is better, and on a tie the earlier
//! candidate stays. Training uses it to keep the best epoch's artifacts, resume to re-derive
//! the best epoch from the registry, and the registry to pick the best run of a dataset. Test
//! metrics never take part.

use shared::api::Metrics;

use super::EpochRecord;

/// The metric selection maximises.
pub fn score(valid: &Metrics) -> f64 {
    valid.ndcg20
}

/// Whether a candidate with validation metrics `candidate` replaces the current best
/// (`None`: nothing selected yet).
pub fn improves(candidate: &Metrics, best: Option<&Metrics>) -> bool {
    best.is_none_or(|b| score(candidate) > score(b))
}

/// The best of `candidates` by their validation metrics, the earliest among equals.
pub fn best<T>(
    candidates: impl IntoIterator<Item = T>,
    valid: impl Fn(&T) -> Metrics,
) -> Option<T> {
    let mut best: Option<(T, Metrics)> = None;
    for c in candidates {
        let m = valid(&c);
        if improves(&m, best.as_ref().map(|(_, b)| b)) {
            best = Some((c, m));
        }
    }
    best.map(|(c, _)| c)
}

/// The best epoch of a run's history.
pub fn best_epoch(epochs: &[EpochRecord]) -> Option<&EpochRecord> {
    best(epochs, |e| e.valid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ndcg20: f64, hr10: f64) -> Metrics {
        Metrics {
            ndcg20,
            hr10,
            ..Metrics::default()
        }
    }

    #[test]
    fn the_highest_validation_ndcg20_wins_and_ties_keep_the_first() {
        let valid = [m(0.1, 0.9), m(0.3, 0.0), m(0.2, 0.0), m(0.3, 1.0)];
        assert_eq!(best(0..4, |&i| valid[i]), Some(1));
        assert_eq!(best(std::iter::empty::<usize>(), |&i| valid[i]), None);
        assert!(improves(&m(0.0, 0.0), None));
        assert!(!improves(&m(0.3, 1.0), Some(&m(0.3, 0.0))));
    }
}
