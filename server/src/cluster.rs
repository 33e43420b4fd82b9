//! User grouping (method doc §8): k-means (linfa, k-means++ initialisation, seeded, several
//! restarts, at most 100 iterations) over user representations, the random-grouping ablation,
//! and the nearest-centroid assignment of a user the model has not seen.

use anyhow::{Context, Result};
use linfa::DatasetBase;
use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng as _;
use serde::{Deserialize, Serialize};

/// k-means restarts (sklearn's `n_init` of the versions the reference ran with).
pub const RESTARTS: usize = 10;

/// A grouping of users.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Groups {
    /// Number of groups.
    pub k: usize,
    /// Width of a user representation.
    pub dim: usize,
    /// Row-major centroids `[k, dim]`.
    pub centroids: Vec<f32>,
    /// Group of each user (dataset user index).
    pub assignment: Vec<usize>,
    /// How the groups were made (`kmeans` or `random`).
    pub how: String,
}

impl Groups {
    /// Users of each group, in increasing user index.
    pub fn members(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.k];
        for (u, &g) in self.assignment.iter().enumerate() {
            out[g].push(u);
        }
        out
    }

    /// The group whose centroid is nearest (squared Euclidean) to `state`: how a user the
    /// model has not seen is assigned, from their global-model state.
    pub fn nearest(&self, state: &[f32]) -> usize {
        assert_eq!(state.len(), self.dim, "state width");
        (0..self.k)
            .map(|g| {
                let c = &self.centroids[g * self.dim..(g + 1) * self.dim];
                let d: f32 = c.iter().zip(state).map(|(a, b)| (a - b) * (a - b)).sum();
                (g, d)
            })
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .map(|(g, _)| g)
            .expect("k > 0")
    }
}

/// k-means of `points` (`n × dim`, row-major) into `k` groups, seeded.
pub fn kmeans(points: &[f32], dim: usize, k: usize, seed: u64) -> Result<Groups> {
    let n = points.len() / dim;
    anyhow::ensure!(n >= k, "{n} users cannot form {k} groups");
    let data = Array2::from_shape_vec((n, dim), points.iter().map(|&x| x as f64).collect())
        .context("user representations")?;
    let dataset = DatasetBase::from(data);
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .init_method(KMeansInit::KMeansPlusPlus)
        .n_runs(RESTARTS)
        .max_n_iterations(100)
        .tolerance(1e-4)
        .fit(&dataset)
        .map_err(|e| anyhow::anyhow!("k-means: {e}"))?;
    let assignment: Vec<usize> = model.predict(&dataset).to_vec();
    Ok(Groups {
        k,
        dim,
        centroids: model.centroids().iter().map(|&x| x as f32).collect(),
        assignment,
        how: "kmeans".into(),
    })
}

/// The random-grouping ablation: each user uniformly in `0..k` (seeded); centroids are the
/// group means so new users can still be assigned.
pub fn random(points: &[f32], dim: usize, k: usize, seed: u64) -> Groups {
    let n = points.len() / dim;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let assignment: Vec<usize> = (0..n).map(|_| rng.random_range(0..k)).collect();
    let mut centroids = vec![0f32; k * dim];
    let mut counts = vec![0usize; k];
    for (u, &g) in assignment.iter().enumerate() {
        counts[g] += 1;
        for j in 0..dim {
            centroids[g * dim + j] += points[u * dim + j];
        }
    }
    for g in 0..k {
        for j in 0..dim {
            centroids[g * dim + j] /= counts[g].max(1) as f32;
        }
    }
    Groups {
        k,
        dim,
        centroids,
        assignment,
        how: "random".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated blobs are recovered exactly, whatever the labels' order.
    #[test]
    fn kmeans_finds_separated_blobs_and_assigns_new_points() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let centres = [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let mut points = Vec::new();
        let mut truth = Vec::new();
        for i in 0..90 {
            let c = centres[i % 3];
            points.push(c[0] + rng.random_range(-1.0..1.0));
            points.push(c[1] + rng.random_range(-1.0..1.0));
            truth.push(i % 3);
        }
        let g = kmeans(&points, 2, 3, 7).unwrap();
        for i in 0..90 {
            for j in 0..90 {
                assert_eq!(truth[i] == truth[j], g.assignment[i] == g.assignment[j]);
            }
        }
        assert_eq!(g.nearest(&[9.5, 0.3]), g.assignment[1]);
        assert_eq!(g.members().iter().map(Vec::len).sum::<usize>(), 90);
        // seeded: the same seed gives the same grouping
        assert_eq!(kmeans(&points, 2, 3, 7).unwrap(), g);
    }

    #[test]
    fn random_groups_are_seeded_and_cover_every_group() {
        let points = vec![0.0f32; 200];
        let a = random(&points, 2, 4, 3);
        assert_eq!(a, random(&points, 2, 4, 3));
        assert!(a.members().iter().all(|m| !m.is_empty()));
    }
}
