//! The per-group scorer: score every item of one item table against one user vector and rank.
//!
//! This is the single implementation of "dot product, exclude, top-k" used by the server when it
//! serves recommendations and by the browser when it reranks; the two therefore agree exactly.
//! Row 0 of a table is the padding item and is never recommended.

/// An item table: `n_items` rows of `dim` floats, row-major; row `i` is internal item `i`.
#[derive(Debug, Clone, Copy)]
pub struct ItemTable<'a> {
    dim: usize,
    data: &'a [f32],
}

impl<'a> ItemTable<'a> {
    /// Wraps row-major data; fails when `data` is not a whole number of rows.
    pub fn new(dim: usize, data: &'a [f32]) -> Result<Self, String> {
        if dim == 0 || !data.len().is_multiple_of(dim) {
            return Err(format!(
                "item table of {} floats is not a whole number of rows of dimension {dim}",
                data.len()
            ));
        }
        Ok(Self { dim, data })
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of rows, padding row included.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// All rows, row-major.
    pub fn data(&self) -> &'a [f32] {
        self.data
    }

    /// Row `item`.
    pub fn row(&self, item: usize) -> &'a [f32] {
        &self.data[item * self.dim..(item + 1) * self.dim]
    }

    /// Scores of all rows against `user` (row 0 included).
    pub fn scores(&self, user: &[f32]) -> Vec<f32> {
        assert_eq!(user.len(), self.dim, "user vector dimension");
        self.data
            .chunks_exact(self.dim)
            .map(|row| dot(user, row))
            .collect()
    }
}

/// One ranked item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    /// Internal item id (row of the table).
    pub item: u32,
    /// Inner product with the user vector.
    pub score: f32,
}

/// Inner product, accumulated left to right in `f32` (the same order natively and in WASM).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0f32, |acc, (x, y)| acc + x * y)
}

/// The `k` best items for `user`, excluding row 0 and every id in `exclude`.
///
/// Order: higher score first; equal scores by lower item id, so the ranking is a total order
/// and identical wherever it is computed.
pub fn top_k(user: &[f32], table: &ItemTable<'_>, exclude: &[u32], k: usize) -> Vec<Scored> {
    let mut excluded = vec![false; table.len()];
    if let Some(pad) = excluded.first_mut() {
        *pad = true;
    }
    for &e in exclude {
        if let Some(slot) = excluded.get_mut(e as usize) {
            *slot = true;
        }
    }
    let mut ranked: Vec<Scored> = table
        .scores(user)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !excluded[*i])
        .map(|(i, score)| Scored {
            item: i as u32,
            score,
        })
        .collect();
    let by_rank = |a: &Scored, b: &Scored| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item));
    if k < ranked.len() {
        ranked.select_nth_unstable_by(k, by_rank);
        ranked.truncate(k);
    }
    ranked.sort_by(by_rank);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Vec<f32> {
        // 5 rows of dim 2: padding, then items 1..4
        vec![9.0, 9.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0]
    }

    #[test]
    fn ranks_by_score_and_skips_padding_and_excluded() {
        let data = table();
        let t = ItemTable::new(2, &data).unwrap();
        let got = top_k(&[1.0, 0.5], &t, &[], 10);
        let ids: Vec<u32> = got.iter().map(|s| s.item).collect();
        assert_eq!(ids, vec![3, 1, 2, 4]);
        assert_eq!(got[0].score, 1.5);
        let got = top_k(&[1.0, 0.5], &t, &[3, 99], 2);
        let ids: Vec<u32> = got.iter().map(|s| s.item).collect();
        assert_eq!(ids, vec![1, 2]);
    }

    #[test]
    fn ties_break_by_item_id() {
        let data = vec![0.0, 1.0, 1.0, 1.0, 1.0];
        let t = ItemTable::new(1, &data).unwrap();
        let ids: Vec<u32> = top_k(&[2.0], &t, &[], 3).iter().map(|s| s.item).collect();
        assert_eq!(ids, vec![1, 2, 3]);
    }

    #[test]
    fn top_k_equals_full_sort_prefix() {
        // deterministic pseudo-random table
        let mut x = 12345u64;
        let mut next = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let data: Vec<f32> = (0..101 * 8).map(|_| next()).collect();
        let user: Vec<f32> = (0..8).map(|_| next()).collect();
        let t = ItemTable::new(8, &data).unwrap();
        let full = top_k(&user, &t, &[5, 7], 1000);
        assert_eq!(full.len(), 98);
        for k in [1, 10, 50, 98] {
            assert_eq!(top_k(&user, &t, &[5, 7], k), full[..k].to_vec());
        }
        assert!(full.windows(2).all(|w| w[0].score >= w[1].score));
    }

    #[test]
    fn rejects_ragged_table() {
        assert!(ItemTable::new(3, &[1.0; 7]).is_err());
        assert!(ItemTable::new(0, &[]).is_err());
    }
}
