//! Synthetic data for the server's integration tests (seeded, no files needed).

use perpeft::data::{Dataset, ItemMeta, Split};
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

/// An in-memory dataset named `name`: items `1..=n_items` titled by their id, one user per
/// sequence (`users[i]` owns `sequences[i]`).
#[allow(dead_code)] // not every test binary that includes `common` uses it
pub fn dataset(name: &str, users: Vec<String>, sequences: Vec<Vec<u32>>, n_items: u32) -> Dataset {
    let items = (1..=n_items)
        .map(|i| ItemMeta {
            raw_id: i.to_string(),
            title: format!("item {i}"),
            text: format!("item {i}"),
            image: None,
        })
        .collect();
    Dataset::new(
        name,
        users,
        items,
        sequences,
        "0".repeat(64),
        Default::default(),
    )
}

/// A dataset of `users` random sequences (train + valid + test of [`synthetic_split`]) over
/// `n_items` items, named `synthetic`.
#[allow(dead_code)]
pub fn synthetic_dataset(users: usize, n_items: u32, seed: u64) -> Dataset {
    let split = synthetic_split(users, n_items, seed);
    let sequences: Vec<Vec<u32>> = (0..users)
        .map(|u| {
            let mut s = split.train[u].clone();
            s.extend(split.valid[u]);
            s.extend(split.test[u]);
            s
        })
        .collect();
    let ids = (0..users).map(|u| format!("u{u}")).collect();
    dataset("synthetic", ids, sequences, n_items)
}
