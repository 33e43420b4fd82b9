//! Training batches on the device: a sampled batch as tensors with global item ids, or
//! re-indexed onto its unique items (docs/method.md §6.2) so that a step builds the item table
//! of those items only, or onto every item (a full softmax builds the whole table).

use burn::prelude::*;

use crate::data::sampler::Batch;
use crate::rec::loss::EXCLUDED;

/// Tensors of a batch on `device`: `(seq, pos, neg)`, `[B, L]`, `[B, L]` and
/// `[B, L, negatives]`, with global item ids.
pub fn batch_tensors(
    b: &Batch,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>, Tensor<3, Int>) {
    let shape = [b.users.len(), b.max_len];
    let t = |v: &[u32]| {
        let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
        Tensor::<2, Int>::from_data(TensorData::new(v, shape), device)
    };
    let neg: Vec<i64> = b.neg.iter().map(|&x| x as i64).collect();
    let neg = Tensor::<3, Int>::from_data(
        TensorData::new(neg, [shape[0], shape[1], b.negatives]),
        device,
    );
    (t(&b.seq), t(&b.pos), neg)
}

/// A batch re-indexed onto an item list: `items` are sorted distinct global ids, 0 first (the
/// batch's own `seq ∪ pos ∪ neg`, or every item), and `seq`/`pos`/`neg` index into `items`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalBatch {
    pub items: Vec<u32>,
    pub seq: Vec<i64>,
    pub pos: Vec<i64>,
    pub neg: Vec<i64>,
    /// `[B, L]`.
    pub shape: [usize; 2],
    /// Negatives per position.
    pub negatives: usize,
    /// Flat indices (`row · L + slot`) of the positions with a target.
    pub targets: Vec<i64>,
    /// The batch's shared negatives (indices into `items`).
    pub shared: Vec<i64>,
    /// `[targets, shared]`: [`EXCLUDED`] where a shared negative is the target's own positive,
    /// else 0.
    pub shared_bias: Vec<f32>,
}

/// A local batch's tensors on a device.
pub struct LocalTensors {
    /// The global item ids, `[n]`.
    pub items: Tensor<1, Int>,
    /// Inputs and positives as indices into `items`, each `[B, L]`.
    pub seq: Tensor<2, Int>,
    pub pos: Tensor<2, Int>,
    /// Negatives as indices into `items`, `[B, L, negatives]` (`None` without negatives).
    pub neg: Option<Tensor<3, Int>>,
    /// Flat indices of the positions with a target, `[T]`.
    pub targets: Tensor<1, Int>,
    /// The shared negatives as indices into `items`, `[n]`, and their bias `[T, n]` (`None`
    /// without shared negatives).
    pub shared: Option<(Tensor<1, Int>, Tensor<2>)>,
}

impl LocalBatch {
    /// The batch on its own unique items.
    pub fn new(b: &Batch) -> Self {
        let mut items: Vec<u32> = std::iter::once(0)
            .chain(
                b.seq
                    .iter()
                    .chain(&b.pos)
                    .chain(&b.neg)
                    .chain(&b.shared)
                    .copied(),
            )
            .collect();
        items.sort_unstable();
        items.dedup();
        Self::onto(b, items, |items, x| {
            items.binary_search(&x).expect("collected above") as i64
        })
    }

    /// The batch on every item `0..=n_items` (indices are the global ids).
    pub fn full(b: &Batch, n_items: usize) -> Self {
        Self::onto(b, (0..=n_items as u32).collect(), |_, x| x as i64)
    }

    /// The batch on `items`, each id mapped to its index there by `index`.
    fn onto(b: &Batch, items: Vec<u32>, index: impl Fn(&[u32], u32) -> i64) -> Self {
        let map = |v: &[u32]| -> Vec<i64> { v.iter().map(|&x| index(&items, x)).collect() };
        Self {
            seq: map(&b.seq),
            pos: map(&b.pos),
            neg: map(&b.neg),
            shape: [b.users.len(), b.max_len],
            negatives: b.negatives,
            targets: targets(b),
            shared: map(&b.shared),
            shared_bias: shared_bias(b),
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
        let [b, l] = self.shape;
        let neg = (self.negatives > 0).then(|| {
            Tensor::<3, Int>::from_data(
                TensorData::new(self.neg.clone(), [b, l, self.negatives]),
                device,
            )
        });
        let t_len = self.targets.len();
        let s = self.shared.len();
        let shared = (s > 0).then(|| {
            (
                Tensor::<1, Int>::from_data(TensorData::new(self.shared.clone(), [s]), device),
                Tensor::<2>::from_data(
                    TensorData::new(self.shared_bias.clone(), [t_len, s]),
                    device,
                ),
            )
        });
        LocalTensors {
            shared,
            items: Tensor::from_data(TensorData::new(items, [n]), device),
            seq: t(&self.seq),
            pos: t(&self.pos),
            neg,
            targets: Tensor::from_data(TensorData::new(self.targets.clone(), [t_len]), device),
        }
    }
}

/// `[targets, shared]` bias: excluded where the shared negative is the target's positive.
fn shared_bias(b: &Batch) -> Vec<f32> {
    b.pos
        .iter()
        .filter(|p| **p != 0)
        .flat_map(|p| {
            b.shared
                .iter()
                .map(move |s| if s == p { EXCLUDED } else { 0.0 })
        })
        .collect()
}

fn targets(b: &Batch) -> Vec<i64> {
    b.pos
        .iter()
        .enumerate()
        .filter(|(_, p)| **p != 0)
        .map(|(i, _)| i as i64)
        .collect()
}

/// The seed of epoch `epoch`'s random draws on the device (dropout; sampling has its own
/// per-epoch seed in the data layer), so a resumed run draws exactly what an uninterrupted one
/// would.
pub(crate) fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(epoch as u64)
}
