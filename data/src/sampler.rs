//! Seeded training batches (docs/method.md §6.1): for each user, the last `max_len`
//! (input → next) pairs of the training sequence, right-aligned, with one sampled negative per
//! position that is not among the user's training items (the reference). With
//! [`Sampler::with_all_windows`] every pair is a target: each user's pairs are cut from the end
//! into windows of `max_len`, and every window is a row. [`Sampler::with_negatives_per_position`]
//! sets how many negatives each position gets (0 for a full softmax).
//!
//! Negatives are uniform over all items, or **group-restricted** (docs/method.md §9.2): uniform
//! over the items in the training histories of a group's users, minus the user's own items. This is
//! the intended behaviour; the reference code tests the exclusion on the pool *index* instead of
//! the item (a bug we do not reproduce). A user whose history covers the whole pool gets uniform
//! negatives instead; [`Sampler::pool_fallback_users`] counts them.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// A batch of right-aligned windows, row-major `[rows, max_len]`, 0 = padding.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The user of each row (user indices; a user has several rows with all windows).
    pub users: Vec<usize>,
    /// Window length.
    pub max_len: usize,
    /// Input items.
    pub seq: Vec<u32>,
    /// Next items (positives).
    pub pos: Vec<u32>,
    /// Negatives per position.
    pub negatives: usize,
    /// Sampled negatives, `[rows, max_len, negatives]` (0 where `pos` is 0).
    pub neg: Vec<u32>,
    /// Negatives shared by every position of the batch (a sampled softmax's candidates beside
    /// each position's positive): uniform over all items or the pool, history not excluded.
    pub shared: Vec<u32>,
}

/// Where negatives come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Negatives {
    /// Uniform over `1..=n_items`.
    Uniform,
    /// Uniform over this sorted, distinct pool (see [`group_pool`]).
    Pool(Vec<u32>),
}

/// The negative pool of a group: every item in the training histories of `users`, sorted.
pub fn group_pool(train: &[Vec<u32>], users: &[usize]) -> Vec<u32> {
    let all: Vec<u32> = users
        .iter()
        .flat_map(|&u| train[u].iter().copied())
        .collect();
    crate::sorted_distinct(&all)
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
    users: Option<Vec<usize>>,
    negatives: Negatives,
    /// Per user: does the pool hold an item outside the user's history?
    pool_ok: Vec<bool>,
    /// Every window of each user (true) or only the last (false).
    all_windows: bool,
    /// Negatives per position.
    negatives_per_position: usize,
    /// Negatives shared by a batch.
    shared_negatives: usize,
}

impl<'a> Sampler<'a> {
    /// A sampler over training sequences `train` (per user index) and items `1..=n_items`.
    pub fn new(
        train: &'a [Vec<u32>],
        n_items: usize,
        max_len: usize,
        batch_size: usize,
        seed: u64,
    ) -> Self {
        let seen = train.iter().map(|s| crate::sorted_distinct(s)).collect();
        Self {
            train,
            seen,
            n_items: n_items as u32,
            max_len,
            batch_size,
            seed,
            users: None,
            negatives: Negatives::Uniform,
            pool_ok: Vec::new(),
            all_windows: false,
            negatives_per_position: 1,
            shared_negatives: 0,
        }
    }

    /// Sets how many negatives each batch draws for all its positions together (uniform over
    /// all items, or over the pool; a user's own items are not excluded).
    pub fn with_shared_negatives(mut self, n: usize) -> Self {
        self.shared_negatives = n;
        self
    }

    /// Takes every (input → next) pair of each user as a target, in windows of `max_len` cut
    /// from the end of the sequence (instead of the last window only).
    pub fn with_all_windows(mut self, all: bool) -> Self {
        self.all_windows = all;
        self
    }

    /// Sets how many negatives each target position gets (0: none are drawn).
    pub fn with_negatives_per_position(mut self, n: usize) -> Self {
        self.negatives_per_position = n;
        self
    }

    /// Restricts batches to `users` (e.g. one group).
    pub fn with_users(mut self, users: Vec<usize>) -> Self {
        self.users = Some(users);
        self
    }

    /// Sets where negatives come from.
    pub fn with_negatives(mut self, negatives: Negatives) -> Self {
        self.pool_ok = match &negatives {
            Negatives::Uniform => Vec::new(),
            Negatives::Pool(pool) => self
                .seen
                .iter()
                .map(|seen| pool.iter().any(|i| seen.binary_search(i).is_err()))
                .collect(),
        };
        self.negatives = negatives;
        self
    }

    /// The pool negatives are drawn from (`None`: uniform over all items).
    pub fn pool(&self) -> Option<&[u32]> {
        match &self.negatives {
            Negatives::Pool(pool) => Some(pool),
            Negatives::Uniform => None,
        }
    }

    /// Trainable users whose training items cover the whole catalogue: no negative exists for
    /// them, so training must refuse the data (see [`Sampler::negative`]).
    pub fn users_without_negatives(&self) -> Vec<usize> {
        self.trainable_users()
            .into_iter()
            .filter(|&u| self.seen[u].len() >= self.n_items as usize)
            .collect()
    }

    /// Users whose history covers the whole pool (they get uniform negatives).
    pub fn pool_fallback_users(&self) -> usize {
        self.trainable_users()
            .into_iter()
            .filter(|&u| self.pool_ok.get(u) == Some(&false))
            .count()
    }

    /// Users that can be trained on (at least one input → next pair).
    pub fn trainable_users(&self) -> Vec<usize> {
        let all: Box<dyn Iterator<Item = usize>> = match &self.users {
            Some(users) => Box::new(users.iter().copied()),
            None => Box::new(0..self.train.len()),
        };
        all.filter(|&u| self.train[u].len() >= 2).collect()
    }

    /// The rows of an epoch, `(user, end)`: the window whose last target is
    /// `train[user][end - 1]`. One per trainable user (its last window), or with all windows
    /// every window of `max_len` targets from the end back to the user's second item.
    pub fn rows(&self) -> Vec<(usize, usize)> {
        let mut rows = Vec::new();
        for u in self.trainable_users() {
            let n = self.train[u].len();
            if !self.all_windows {
                rows.push((u, n));
                continue;
            }
            // targets are positions 1..n; a window holds max_len of them
            let mut end = n;
            while end > 1 {
                rows.push((u, end));
                end = end.saturating_sub(self.max_len).max(1);
            }
        }
        rows
    }

    /// Number of batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.rows().len().div_ceil(self.batch_size)
    }

    /// Target positions per epoch (non-padding (input → next) pairs).
    pub fn targets_per_epoch(&self) -> usize {
        self.rows()
            .iter()
            .map(|&(_, end)| (end - 1).min(self.max_len))
            .sum()
    }

    /// The batches of `epoch`: a seeded permutation of the rows, cut into batches.
    pub fn epoch(&self, epoch: usize) -> Vec<Batch> {
        let mut rng =
            StdRng::seed_from_u64(self.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut rows = self.rows();
        rows.shuffle(&mut rng);
        rows.chunks(self.batch_size)
            .map(|chunk| self.batch_of_rows(chunk, &mut rng))
            .collect()
    }

    /// The last windows of `users`, negatives drawn from `rng`.
    pub fn batch(&self, users: &[usize], rng: &mut impl Rng) -> Batch {
        let rows: Vec<(usize, usize)> = users.iter().map(|&u| (u, self.train[u].len())).collect();
        self.batch_of_rows(&rows, rng)
    }

    /// The windows `rows` (see [`Sampler::rows`]), negatives drawn from `rng`.
    pub fn batch_of_rows(&self, rows: &[(usize, usize)], rng: &mut impl Rng) -> Batch {
        let l = self.max_len;
        let k = self.negatives_per_position;
        let mut b = Batch {
            users: rows.iter().map(|&(u, _)| u).collect(),
            max_len: l,
            seq: vec![0; rows.len() * l],
            pos: vec![0; rows.len() * l],
            negatives: k,
            neg: vec![0; rows.len() * l * k],
            shared: Vec::new(),
        };
        for (row, &(u, end)) in rows.iter().enumerate() {
            let Some((&last, inputs)) = self.train[u][..end].split_last() else {
                continue;
            };
            let mut next = last;
            for (slot, &item) in (0..l).rev().zip(inputs.iter().rev()) {
                let at = row * l + slot;
                b.seq[at] = item;
                b.pos[at] = next;
                for j in 0..k {
                    b.neg[at * k + j] = self.negative(u, rng);
                }
                next = item;
            }
        }
        b.shared = (0..self.shared_negatives)
            .map(|_| self.draw(true, rng))
            .collect();
        b
    }

    /// A negative for `user`: uniform over the pool (or all items) minus the user's training
    /// items.
    pub fn negative(&self, user: usize, rng: &mut impl Rng) -> u32 {
        let seen = &self.seen[user];
        // the pool, unless it holds nothing outside the user's history
        let from_pool = matches!(self.negatives, Negatives::Pool(_)) && self.pool_ok[user];
        assert!(
            from_pool || seen.len() < self.n_items as usize,
            "user {user} has interacted with every item: no negative exists"
        );
        loop {
            let item = self.draw(from_pool, rng);
            if seen.binary_search(&item).is_err() {
                return item;
            }
        }
    }

    /// One item uniformly from the pool (`from_pool`, when there is one) or from all items.
    fn draw(&self, from_pool: bool, rng: &mut impl Rng) -> u32 {
        match &self.negatives {
            Negatives::Pool(pool) if from_pool => pool[rng.random_range(0..pool.len())],
            _ => rng.random_range(1..=self.n_items),
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
                assert!(
                    !train[b.users[i / 3]].contains(&n),
                    "negative {n} is a training item"
                );
            }
        }
    }

    #[test]
    fn all_windows_take_every_pair_exactly_once() {
        // user 0: 1..=12 with max_len 5 → windows ending at 12, 7, 2: 5 + 5 + 1 = 11 pairs
        // user 1: 20 21 → one pair; user 2: one item, no pair
        let train = vec![(1..=12).collect::<Vec<u32>>(), vec![20, 21], vec![30]];
        let s = Sampler::new(&train, 40, 5, 2, 3)
            .with_all_windows(true)
            .with_negatives_per_position(3);
        assert_eq!(s.rows(), vec![(0, 12), (0, 7), (0, 2), (1, 2)]);
        assert_eq!(s.targets_per_epoch(), 12);
        assert_eq!(s.batches_per_epoch(), 2);
        let mut pairs = Vec::new();
        for b in s.epoch(4) {
            assert_eq!(b.neg.len(), b.seq.len() * 3);
            for (at, (&x, &y)) in b.seq.iter().zip(&b.pos).enumerate() {
                let negs = &b.neg[at * 3..at * 3 + 3];
                if y == 0 {
                    assert_eq!((x, negs), (0, &[0, 0, 0][..]));
                    continue;
                }
                pairs.push((x, y));
                let user = b.users[at / 5];
                for n in negs {
                    assert!(!train[user].contains(n), "negative {n} is a training item");
                }
            }
        }
        pairs.sort_unstable();
        let mut expected: Vec<(u32, u32)> = (1..12).map(|i| (i, i + 1)).collect();
        expected.push((20, 21));
        assert_eq!(pairs, expected);
        // shared negatives: drawn per batch, from the pool when there is one
        let pool = vec![3, 30, 33];
        let shared = Sampler::new(&train, 40, 5, 2, 3)
            .with_all_windows(true)
            .with_negatives_per_position(0)
            .with_shared_negatives(16)
            .with_negatives(Negatives::Pool(pool.clone()));
        for b in shared.epoch(1) {
            assert!(b.neg.is_empty());
            assert_eq!(b.shared.len(), 16);
            assert!(b.shared.iter().all(|i| pool.contains(i)), "{:?}", b.shared);
        }
        // the last window only: the reference's rows
        let last = Sampler::new(&train, 40, 5, 2, 3);
        assert_eq!(last.rows(), vec![(0, 12), (1, 2)]);
        assert_eq!(last.targets_per_epoch(), 6);
    }

    #[test]
    fn epochs_are_seeded_and_cover_trainable_users() {
        let train: Vec<Vec<u32>> = (0..40)
            .map(|u| vec![1 + u % 5, 6, 7 + u % 3])
            .chain([vec![1]])
            .collect();
        let s = Sampler::new(&train, 20, 10, 16, 7);
        assert_eq!(s.batches_per_epoch(), 3);
        let e1 = s.epoch(1);
        assert_eq!(e1, s.epoch(1));
        assert_ne!(e1, s.epoch(2));
        let mut users: Vec<usize> = e1.iter().flat_map(|b| b.users.clone()).collect();
        users.sort_unstable();
        assert_eq!(
            users,
            (0..40).collect::<Vec<_>>(),
            "user 40 has one item and is skipped"
        );
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
        assert!(
            chi2 < 18.47,
            "chi-square {chi2} says the draw is not uniform"
        );
    }

    #[test]
    fn group_negatives_stay_in_the_pool_avoid_history_and_are_uniform() {
        // group = users 0 and 1; user 2 is outside the group
        let train = vec![vec![1, 2, 3, 4], vec![3, 5, 7, 9, 11], vec![20, 21, 22]];
        let pool = group_pool(&train, &[0, 1]);
        assert_eq!(pool, vec![1, 2, 3, 4, 5, 7, 9, 11]);
        let s = Sampler::new(&train, 30, 10, 2, 9)
            .with_users(vec![0, 1])
            .with_negatives(Negatives::Pool(pool));
        assert_eq!(s.trainable_users(), vec![0, 1]);
        assert_eq!(s.pool_fallback_users(), 0);
        let mut rng = StdRng::seed_from_u64(5);
        let draws = 40_000;
        let mut counts = [0usize; 31];
        for _ in 0..draws {
            counts[s.negative(0, &mut rng) as usize] += 1;
        }
        // user 0's allowed negatives: pool minus {1,2,3,4} = {5,7,9,11}
        let allowed = [5, 7, 9, 11];
        for (item, &c) in counts.iter().enumerate() {
            if !allowed.contains(&item) {
                assert_eq!(c, 0, "item {item} outside pool-minus-history was drawn");
            }
        }
        // chi-square, 3 dof, p = 0.001 cut-off 16.27
        let expected = draws as f64 / 4.0;
        let chi2: f64 = allowed
            .iter()
            .map(|&i| (counts[i] as f64 - expected).powi(2) / expected)
            .sum();
        assert!(
            chi2 < 16.27,
            "chi-square {chi2}: group negatives are not uniform over the pool"
        );
        // every batch of an epoch holds only group users and pool negatives
        for b in s.epoch(3) {
            assert!(b.users.iter().all(|u| *u < 2));
            assert!(
                b.neg
                    .iter()
                    .all(|&n| n == 0 || [1, 2, 3, 4, 5, 7, 9, 11].contains(&n))
            );
        }
    }

    #[test]
    fn users_covering_the_catalogue_are_found() {
        let train = vec![vec![1, 2, 3], vec![1, 2]];
        assert_eq!(
            Sampler::new(&train, 3, 10, 2, 1).users_without_negatives(),
            vec![0]
        );
        assert!(
            Sampler::new(&train, 4, 10, 2, 1)
                .users_without_negatives()
                .is_empty()
        );
    }

    #[test]
    fn a_user_covering_the_pool_falls_back_to_uniform() {
        let train = vec![vec![1, 2, 3], vec![1, 2]];
        let s = Sampler::new(&train, 10, 10, 2, 1)
            .with_negatives(Negatives::Pool(group_pool(&train, &[0, 1])));
        assert_eq!(s.pool_fallback_users(), 1);
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..1000 {
            let n = s.negative(0, &mut rng);
            assert!((4..=10).contains(&n), "{n}");
        }
    }
}
