//! Assigning a user to a group: the nearest centroid (squared Euclidean distance, ties to the
//! lower group) to the user's state under the run's global model. [`Grouping`] is everything
//! that takes; the server assigns a history it has not seen with it, and serves it
//! (`GET /api/grouping`) so the browser assigns with the same code.

use serde::{Deserialize, Serialize};

use crate::sasrec::SasRec;
use crate::scorer::ItemTable;

/// Squared Euclidean distance of `state` to each centroid (rows of `centroids`, `[k, dim]`).
///
/// Panics when `state` is not `dim` wide.
pub fn distances(centroids: &[f32], dim: usize, state: &[f32]) -> Vec<f32> {
    assert_eq!(state.len(), dim, "state width");
    centroids
        .chunks_exact(dim)
        .map(|c| {
            c.iter()
                .zip(state)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
        })
        .collect()
}

/// The index of the centroid (row of `centroids`, row-major `[k, dim]`) nearest to `state`.
///
/// Panics when `state` is not `dim` wide or there is no centroid.
pub fn nearest(centroids: &[f32], dim: usize, state: &[f32]) -> usize {
    distances(centroids, dim, state)
        .into_iter()
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(g, _)| g)
        .expect("at least one centroid")
}

/// What places a history in a group: the global (stage-1) model and the groups' centroids.
/// Decoding checks it as [`Grouping::new`] does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GroupingParts")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grouping {
    /// The global model's SASRec.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub scorer: SasRec,
    /// The global model's item table, row-major `[n_items + 1, scorer.hidden]` (base64 of
    /// little-endian `f32`).
    #[serde(with = "crate::codec::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub table: Vec<f32>,
    /// Centroids, row-major `[k, scorer.hidden]` (base64 of little-endian `f32`).
    #[serde(with = "crate::codec::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub centroids: Vec<f32>,
}

/// A [`Grouping`] as decoded, before its checks.
#[derive(Deserialize)]
struct GroupingParts {
    scorer: SasRec,
    #[serde(with = "crate::codec::b64")]
    table: Vec<f32>,
    #[serde(with = "crate::codec::b64")]
    centroids: Vec<f32>,
}

impl TryFrom<GroupingParts> for Grouping {
    type Error = String;
    fn try_from(p: GroupingParts) -> Result<Self, String> {
        Grouping::new(p.scorer, p.table, p.centroids)
    }
}

impl Grouping {
    /// Checks that the model's weights are well shaped ([`SasRec::check`]) and that the table
    /// and the centroids are whole rows of its width.
    pub fn new(scorer: SasRec, table: Vec<f32>, centroids: Vec<f32>) -> Result<Self, String> {
        scorer.check()?;
        let d = scorer.hidden;
        ItemTable::new(d, &table)?;
        if centroids.is_empty() || !centroids.len().is_multiple_of(d) {
            return Err(format!(
                "{} centroid values are not whole centroids of width {d}",
                centroids.len()
            ));
        }
        Ok(Self {
            scorer,
            table,
            centroids,
        })
    }

    /// Number of groups.
    pub fn k(&self) -> usize {
        self.centroids.len() / self.scorer.hidden
    }

    /// The global model's state for a history of item ids, oldest first.
    pub fn state(&self, history: &[u32]) -> Vec<f32> {
        let table = ItemTable::new(self.scorer.hidden, &self.table).expect("checked in `new`");
        self.scorer.user_state(&table, history)
    }

    /// The group of a history of item ids, oldest first.
    pub fn assign(&self, history: &[u32]) -> usize {
        nearest(&self.centroids, self.scorer.hidden, &self.state(history))
    }

    /// The squared distance of a history's state to each centroid.
    pub fn distances(&self, history: &[u32]) -> Vec<f32> {
        distances(&self.centroids, self.scorer.hidden, &self.state(history))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_centroid_wins_and_ties_go_to_the_lower_group() {
        let centroids = [0.0, 0.0, 10.0, 0.0, 0.0, 10.0];
        assert_eq!(nearest(&centroids, 2, &[9.0, 1.0]), 1);
        assert_eq!(nearest(&centroids, 2, &[1.0, 8.0]), 2);
        assert_eq!(
            nearest(&centroids, 2, &[6.0, 6.0]),
            1,
            "1 and 2 tie; 0 is farther"
        );
        assert_eq!(nearest(&centroids, 2, &[-1.0, -1.0]), 0);
    }
}
