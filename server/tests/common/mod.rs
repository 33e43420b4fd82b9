//! Synthetic data for the server's integration tests (seeded, no files needed).

use perpeft::data::Split;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// `users` random sequences over `1..=n_items`, lengths 1..=25, seeded.
pub fn synthetic_split(users: usize, n_items: u32, seed: u64) -> Split {
    let mut rng = StdRng::seed_from_u64(seed);
    let seqs: Vec<Vec<u32>> = (0..users)
        .map(|_| {
            let n = rng.random_range(1..=25);
            (0..n).map(|_| rng.random_range(1..=n_items)).collect()
        })
        .collect();
    Split::leave_one_out(&seqs)
}
