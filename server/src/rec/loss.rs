//! Training losses. The reference (docs/method.md §6): BCE with one sampled negative per
//! position, positives and negatives averaged separately over non-padding positions, plus
//! `l2_emb · ‖E_id‖_F` (the plain, not squared, Frobenius norm). Beside it, for all-data
//! training: BCE and BPR with several negatives, and softmax cross-entropy over a candidate
//! table (every item, or a sampled set). Every loss carries the same `l2_emb` term.

use burn::prelude::*;
use burn::tensor::activation::{log_sigmoid, log_softmax};
use burn::tensor::module::embedding;

use super::SasRec;
use crate::config::Loss;

/// Weight of the ID-embedding norm term.
pub const L2_EMB: f64 = 1e-6;

/// A score low enough that its softmax weight is exactly 0 (finite, so no NaN in gradients).
pub const EXCLUDED: f32 = -1e9;

fn l2(model: &SasRec) -> Tensor<1> {
    model
        .item_emb
        .val()
        .powf_scalar(2.0)
        .sum()
        .sqrt()
        .mul_scalar(L2_EMB)
}

/// The reference loss for one batch: `seq`, `pos` are `[B, L]` item ids (0 = padding), `neg`
/// `[B, L, n]`; `table` is the item table used both for inputs and targets. The negatives'
/// terms are summed over the `n` negatives of a position (with one: the reference exactly).
pub fn bce_loss(
    model: &SasRec,
    table: Tensor<2>,
    seq: Tensor<2, Int>,
    pos: Tensor<2, Int>,
    neg: Tensor<3, Int>,
) -> Tensor<1> {
    let h = model.forward(seq, table.clone());
    let mask = pos.clone().not_equal_elem(0).float();
    let count = mask.clone().sum().clamp_min(1.0);
    let s_pos = item_scores(h.clone(), table.clone(), pos);
    let loss_pos = (log_sigmoid(s_pos).neg() * mask.clone()).sum() / count.clone();
    let [b, l, n] = neg.dims();
    let loss_neg = if n == 1 {
        // the reference's one negative, computed as it always was (bit for bit)
        let s_neg = item_scores(h, table, neg.reshape([b, l]));
        (log_sigmoid(s_neg.neg()).neg() * mask).sum() / count
    } else {
        let s_neg = negative_scores(h, table, neg);
        (log_sigmoid(s_neg.neg()).neg() * mask.unsqueeze_dim::<3>(2)).sum() / count
    };
    loss_pos + loss_neg + l2(model)
}

/// Scores of one item per position (`items`, `[B, L]`) from user states `h` `[B, L, d]`.
fn item_scores(h: Tensor<3>, table: Tensor<2>, items: Tensor<2, Int>) -> Tensor<2> {
    (h * embedding(table, items)).sum_dim(2).squeeze_dim::<2>(2)
}

/// Scores of the negatives, `[B, L, n]`, from user states `h` `[B, L, d]`.
fn negative_scores(h: Tensor<3>, table: Tensor<2>, neg: Tensor<3, Int>) -> Tensor<3> {
    let [b, l, n] = neg.dims();
    let d = h.dims()[2];
    let e = embedding(table, neg.reshape([b, l * n])).reshape([b, l, n, d]);
    (h.unsqueeze_dim::<4>(2) * e).sum_dim(3).squeeze_dim::<3>(3)
}

/// BPR: `-log σ(s⁺ − s⁻)`, averaged over non-padding positions and their `n` negatives.
pub fn bpr_loss(
    model: &SasRec,
    table: Tensor<2>,
    seq: Tensor<2, Int>,
    pos: Tensor<2, Int>,
    neg: Tensor<3, Int>,
) -> Tensor<1> {
    let h = model.forward(seq, table.clone());
    let n = neg.dims()[2];
    let mask = pos.clone().not_equal_elem(0).float().unsqueeze_dim::<3>(2);
    let count = mask.clone().sum().mul_scalar(n as f64).clamp_min(1.0);
    let s_pos = item_scores(h.clone(), table.clone(), pos).unsqueeze_dim::<3>(2);
    let s_neg = negative_scores(h, table, neg);
    let loss = (log_sigmoid(s_pos - s_neg).neg() * mask).sum() / count;
    loss + l2(model)
}

/// The user states at the target positions (`[T, d]`) and their positives (`[T]`).
fn target_states(
    model: &SasRec,
    table: &Tensor<2>,
    seq: Tensor<2, Int>,
    pos: Tensor<2, Int>,
    targets: Tensor<1, Int>,
) -> (Tensor<2>, Tensor<1, Int>) {
    let h = model.forward(seq, table.clone());
    let [b, l, d] = h.dims();
    let h = h.reshape([b * l, d]).select(0, targets.clone());
    (h, pos.reshape([b * l]).select(0, targets))
}

/// Softmax cross-entropy of each target position over the rows of `table` (the candidates),
/// with `bias` (`[rows]`: 0, or [`EXCLUDED`] for rows that are not candidates, row 0 always
/// excluded) added to the scores. `targets` are the flat indices (`row · L + slot`) of the
/// positions with a target; the loss is their mean.
pub fn ce_loss(
    model: &SasRec,
    table: Tensor<2>,
    seq: Tensor<2, Int>,
    pos: Tensor<2, Int>,
    targets: Tensor<1, Int>,
    bias: Tensor<1>,
) -> Tensor<1> {
    let (h, wanted) = target_states(model, &table, seq, pos, targets);
    let t = wanted.dims()[0];
    let wanted = wanted.reshape([t, 1]);
    let logits = h.matmul(table.transpose()) + bias.unsqueeze_dim::<2>(0);
    let logp = log_softmax(logits, 1).gather(1, wanted);
    logp.mean().neg() + l2(model)
}

/// Sampled softmax cross-entropy: each target position's positive against the batch's `shared`
/// negatives (`[n]` rows of `table`), `bias` (`[T, n]`) excluding a shared negative that is the
/// position's own positive. The loss is the mean over target positions.
pub fn sampled_ce_loss(
    model: &SasRec,
    table: Tensor<2>,
    seq: Tensor<2, Int>,
    pos: Tensor<2, Int>,
    targets: Tensor<1, Int>,
    shared: Tensor<1, Int>,
    bias: Tensor<2>,
) -> Tensor<1> {
    let (h, wanted) = target_states(model, &table, seq, pos, targets);
    let s_pos = (h.clone() * table.clone().select(0, wanted)).sum_dim(1);
    let s_neg = h.matmul(table.select(0, shared).transpose()) + bias;
    let logp = log_softmax(Tensor::cat(vec![s_pos, s_neg], 1), 1).narrow(1, 0, 1);
    logp.mean().neg() + l2(model)
}

/// The batch's loss of kind `kind` (`neg` is required by BCE and BPR).
#[allow(clippy::too_many_arguments)]
pub fn loss(
    kind: Loss,
    model: &SasRec,
    table: Tensor<2>,
    seq: Tensor<2, Int>,
    pos: Tensor<2, Int>,
    neg: Option<Tensor<3, Int>>,
    targets: Tensor<1, Int>,
    candidates: Candidates,
) -> Tensor<1> {
    let neg = || neg.expect("BCE and BPR draw negatives (negatives >= 1)");
    match (kind, candidates) {
        (Loss::Bce, _) => bce_loss(model, table, seq, pos, neg()),
        (Loss::Bpr, _) => bpr_loss(model, table, seq, pos, neg()),
        (Loss::Ce, Candidates::All(bias)) => ce_loss(model, table, seq, pos, targets, bias),
        (Loss::Ce, Candidates::Shared(shared, bias)) => {
            sampled_ce_loss(model, table, seq, pos, targets, shared, bias)
        }
    }
}

/// What a softmax runs over.
// one value per step, never in bulk: boxing buys nothing
#[allow(clippy::large_enum_variant)]
pub enum Candidates {
    /// Every row of the table, with a `[rows]` bias ([`EXCLUDED`] for non-candidates).
    All(Tensor<1>),
    /// The position's positive and these shared rows `[n]`, with a `[T, n]` bias.
    Shared(Tensor<1, Int>, Tensor<2>),
}
