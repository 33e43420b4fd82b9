//! Training batches on the device: a sampled batch as tensors with global item ids, or
//! re-indexed onto its unique items (docs/method.md §6.2) so that a step builds the item table
//! of those items only.

use burn::prelude::*;

use crate::data::sampler::Batch;

/// Tensors of a batch on `device`: `(seq, pos, neg)`, each `[B, L]`, with global item ids.
pub fn batch_tensors(
    b: &Batch,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<2, Int>) {
    let shape = [b.users.len(), b.max_len];
    let t = |v: &[u32]| {
        let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        Tensor::<2, Int>::from_data(TensorData::new(v, shape), device)
    };
    (t(&b.seq), t(&b.pos), t(&b.neg))
}

/// A batch re-indexed onto its unique items: `items` are the sorted distinct ids of
/// `seq ∪ pos ∪ neg` (0 first), and `seq`/`pos`/`neg` index into `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalBatch {
    pub items: Vec<u32>,
    pub seq: Vec<i64>,
    pub pos: Vec<i64>,
    pub neg: Vec<i64>,
    pub shape: [usize; 2],
}

/// A local batch's tensors on a device.
pub struct LocalTensors {
    /// The unique global item ids, `[n]`.
    pub items: Tensor<1, Int>,
    /// Inputs, positives and negatives as indices into `items`, each `[B, L]`.
    pub seq: Tensor<2, Int>,
    pub pos: Tensor<2, Int>,
    pub neg: Tensor<2, Int>,
}

impl LocalBatch {
    pub fn new(b: &Batch) -> Self {
        let mut items: Vec<u32> = std::iter::once(0)
            .chain(b.seq.iter().chain(&b.pos).chain(&b.neg).copied())
            .collect();
        items.sort_unstable();
        items.dedup();
        let local = |v: &[u32]| -> Vec<i64> {
            v.iter()
                .map(|x| items.binary_search(x).expect("collected above") as i64)
                .collect()
        };
        Self {
            seq: local(&b.seq),
            pos: local(&b.pos),
            neg: local(&b.neg),
            shape: [b.users.len(), b.max_len],
            items,
        }
    }

    /// The batch's tensors on `device`.
    pub fn tensors(&self, device: &Device) -> LocalTensors {
        let t = |v: &[i64]| {
            Tensor::<2, Int>::from_data(TensorData::new(v.to_vec(), self.shape), device)
        };
        let items: Vec<i64> = self.items.iter().map(|&i| i as i64).collect();
        let n = items.len();
        LocalTensors {
            items: Tensor::from_data(TensorData::new(items, [n]), device),
            seq: t(&self.seq),
            pos: t(&self.pos),
            neg: t(&self.neg),
        }
    }
}

/// The seed of epoch `epoch`'s random draws on the device (dropout; sampling has its own
/// per-epoch seed in the data layer), so a resumed run draws exactly what an uninterrupted one
/// would.
pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64)
}
