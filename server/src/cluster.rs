//! `cluster` owns how users are grouped (docs/method.md §8): k-means (linfa, k-means++
//! initialisation, seeded, several restarts, at most 100 iterations) over user representations,
//! and the random-grouping ablation. Both give a [`Groups`] record; assigning a user the model
//! has not seen is [`Groups::nearest`].

use linfa::DatasetBase;
use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng as _;

pub use crate::config::Groups;
use crate::error::{Error, Result};

/// k-means restarts (sklearn's `n_init` of the versions the reference ran with).
pub const RESTARTS: usize = 10;

/// k-means of `points` (`n × dim`, row-major) into `k` groups, seeded.
pub fn kmeans(points: &[f32], dim: usize, k: usize, seed: u64) -> Result<Groups> {
    let n = points.len() / dim;
    if n < k {
        return Err(Error::Invalid(format!("{n} users cannot form {k} groups")));
    }
    let data = Array2::from_shape_vec((n, dim), points.iter().map(|&x| x as f64).collect())
        .map_err(|e| Error::Compute(format!("user representations: {e}")))?;
    let dataset = DatasetBase::from(data);
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .init_method(KMeansInit::KMeansPlusPlus)
        .n_runs(RESTARTS)
        .max_n_iterations(100)
        .tolerance(1e-4)
        .fit(&dataset)
        .map_err(|e| Error::Compute(format!("k-means: {e}")))?;
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
