//! The reference training loss (docs/method.md §6): BCE with one sampled negative per position,
//! positives and negatives averaged separately over non-padding positions, plus
//! `l2_emb · ‖E_id‖_F` (the plain, not squared, Frobenius norm).

use burn::prelude::*;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::module::embedding;

use super::SasRec;

/// Weight of the ID-embedding norm term.
pub const L2_EMB: f64 = 1e-6;

/// Loss for one batch: `seq`, `pos`, `neg` are `[B, L]` item ids (0 = padding); `table` is the
/// item table used both for inputs and targets.
pub fn bce_loss(
    model: &SasRec,
    table: Tensor<2>,
    seq: Tensor<2, Int>,
    pos: Tensor<2, Int>,
    neg: Tensor<2, Int>,
) -> Tensor<1> {
    let h = model.forward(seq, table.clone());
    let mask = pos.clone().not_equal_elem(0).float();
    let count = mask.clone().sum().clamp_min(1.0);
    let s_pos = (h.clone() * embedding(table.clone(), pos))
        .sum_dim(2)
        .squeeze_dim::<2>(2);
    let s_neg = (h * embedding(table, neg)).sum_dim(2).squeeze_dim::<2>(2);
    let loss_pos = (log_sigmoid(s_pos).neg() * mask.clone()).sum() / count.clone();
    let loss_neg = (log_sigmoid(s_neg.neg()).neg() * mask).sum() / count;
    let l2 = model
        .item_emb
        .val()
        .powf_scalar(2.0)
        .sum()
        .sqrt()
        .mul_scalar(L2_EMB);
    loss_pos + loss_neg + l2
}
