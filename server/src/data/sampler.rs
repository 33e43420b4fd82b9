//! Seeded training batches (method doc §6.1): for each user, the last `max_len` (input → next)
//! pairs of the training sequence, right-aligned, with one uniformly sampled negative per
//! position that is not among the user's training items.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A batch of right-aligned windows, row-major `[users, max_len]`, 0 = padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Users in the batch (user indices).
    pub users: Vec<usize>,
    /// Window length.
    pub max_len: usize,
    /// Input items.
    pub seq: Vec<u32>,
    /// Next items (positives).
    pub pos: Vec<u32>,
    /// Sampled negatives (0 where `pos` is 0).
    pub neg: Vec<u32>,
}

/// Makes the batches of one epoch; the same `(seed, epoch)` gives the same batches.
#[derive(Debug, Clone)]
pub struct Sampler<'a> {
    train: &'a [Vec<u32>],
    /// Per user, sorted training items (for exclusion).
    seen: Vec<Vec<u32>>,
    n_items: u32,
    max_len: usize,
    batch_size: usize,
    seed: u64,
}

impl<'a> Sampler<'a> {
    /// A sampler over training sequences `train` (per user index) and items `1..=n_items`.
    pub fn new(train: &'a [Vec<u32>], n_items: usize, max_len: usize, batch_size: usize, seed: u64) -> Self {
        let seen = train
            .iter()
            .map(|s| {
                let mut v = s.clone();
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        Self {
            train,
            seen,
            n_items: n_items as u32,
            max_len,
            batch_size,
            seed,
        }
    }

    /// Users that can be trained on (at least one input → next pair).
    pub fn trainable_users(&self) -> Vec<usize> {
        (0..self.train.len()).filter(|&u| self.train[u].len() >= 2).collect()
    }

    /// Number of batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.trainable_users().len().div_ceil(self.batch_size)
    }

    /// The batches of `epoch`: a seeded permutation of the trainable users, cut into batches.
    pub fn epoch(&self, epoch: usize) -> Vec<Batch> {
        let mut rng = StdRng::seed_from_u64(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut users = self.trainable_users();
        users.shuffle(&mut rng);
        users
            .chunks(self.batch_size)
            .map(|chunk| self.batch(chunk, &mut rng))
            .collect()
    }

    /// The windows of `users`, negatives drawn from `rng`.
    pub fn batch(&self, users: &[usize], rng: &mut impl Rng) -> Batch {
        let l = self.max_len;
        let mut b = Batch {
            users: users.to_vec(),
            max_len: l,
            seq: vec![0; users.len() * l],
            pos: vec![0; users.len() * l],
            neg: vec![0; users.len() * l],
        };
        for (row, &u) in users.iter().enumerate() {
            let train = &self.train[u];
            let Some((&last, inputs)) = train.split_last() else {
                continue;
            };
            let mut next = last;
            for (slot, &item) in (0..l).rev().zip(inputs.iter().rev()) {
                let at = row * l + slot;
                b.seq[at] = item;
                b.pos[at] = next;
                b.neg[at] = self.negative(u, rng);
                next = item;
            }
        }
        b
    }

    /// A uniform item in `1..=n_items` that `user` has not interacted with in training.
    pub fn negative(&self, user: usize, rng: &mut impl Rng) -> u32 {
        let seen = &self.seen[user];
        assert!(
            seen.len() < self.n_items as usize,
            "user {user} has interacted with every item: no negative exists"
        );
        loop {
            let item = rng.random_range(1..=self.n_items);
            if seen.binary_search(&item).is_err() {
                return item;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn right_aligned_windows_match_hand_computation() {
        // user 0: 1 2 3 4 5 with max_len 3 → inputs [2,3,4], next [3,4,5]
        // user 1: 7 8 → inputs [0,0,7], next [0,0,8]
        let train = vec![vec![1, 2, 3, 4, 5], vec![7, 8]];
        let s = Sampler::new(&train, 10, 3, 16, 1);
        let b = s.batch(&[0, 1], &mut StdRng::seed_from_u64(0));
        assert_eq!(b.seq, vec![2, 3, 4, 0, 0, 7]);
        assert_eq!(b.pos, vec![3, 4, 5, 0, 0, 8]);
        for (i, &n) in b.neg.iter().enumerate() {
            if b.pos[i] == 0 {
                assert_eq!(n, 0);
            } else {
                assert!((1..=10).contains(&n));
                assert!(!train[b.users[i / 3]].contains(&n), "negative {n} is a training item");
            }
        }
    }

    #[test]
    fn epochs_are_seeded_and_cover_trainable_users() {
        let train: Vec<Vec<u32>> = (0..40).map(|u| vec![1 + u % 5, 6, 7 + u % 3]).chain([vec![1]]).collect();
        let s = Sampler::new(&train, 20, 10, 16, 7);
        assert_eq!(s.batches_per_epoch(), 3);
        let e1 = s.epoch(1);
        assert_eq!(e1, s.epoch(1));
        assert_ne!(e1, s.epoch(2));
        let mut users: Vec<usize> = e1.iter().flat_map(|b| b.users.clone()).collect();
        users.sort_unstable();
        assert_eq!(users, (0..40).collect::<Vec<_>>(), "user 40 has one item and is skipped");
    }

    #[test]
    fn negatives_avoid_history_and_are_uniform() {
        let train = vec![vec![2, 4, 6, 8, 10]];
        let s = Sampler::new(&train, 10, 10, 1, 3);
        let mut rng = StdRng::seed_from_u64(42);
        let mut counts = [0usize; 11];
        let draws = 50_000;
        for _ in 0..draws {
            counts[s.negative(0, &mut rng) as usize] += 1;
        }
        for (item, &c) in counts.iter().enumerate() {
            if item == 0 || item % 2 == 0 {
                assert_eq!(c, 0, "item {item} must never be drawn");
            }
        }
        // 5 allowed items, expected 10,000 each; chi-square with 4 dof, p=0.001 cut-off 18.47
        let expected = draws as f64 / 5.0;
        let chi2: f64 = [1, 3, 5, 7, 9]
            .iter()
            .map(|&i| (counts[i] as f64 - expected).powi(2) / expected)
            .sum();
        assert!(chi2 < 18.47, "chi-square {chi2} says the draw is not uniform");
    }
}
