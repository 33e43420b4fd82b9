//! `rec` owns the sequential recommender: SASRec ([`sasrec`]), the multimodal projector
//! ([`projector`]), the item table that joins them ([`Recommender`]), and the training loss
//! ([`loss`]).
//!
//! SASRec reads an *item table* (one row per item, row 0 = padding), so ID-only, frozen
//! multimodal, PEFT and per-group tables all run through one model: the table is
//! `MM_WEIGHT · proj(features) + E_id` (docs/method.md §4), or `E_id` alone without
//! features.

pub mod loss;
pub mod projector;
pub mod sasrec;

use burn::prelude::*;

pub use projector::Projector;
pub use sasrec::{SasRec, SasRecConfig};

/// Weight of the projected multimodal feature in an item embedding (the reference's
/// `weight_scalar`).
pub const MM_WEIGHT: f64 = 0.5;

/// SASRec plus, for multimodal methods, a bank of projectors of item features (one for the
/// frozen and global methods, one per user group for PerPEFT), of which `active` is used.
#[derive(Module, Debug)]
pub struct Recommender {
    pub sasrec: SasRec,
    pub projectors: Vec<Projector>,
    pub active: usize,
}

impl Recommender {
    /// A recommender with at most one projector.
    pub fn new(sasrec: SasRec, projector: Option<Projector>) -> Self {
        Self {
            sasrec,
            projectors: projector.into_iter().collect(),
            active: 0,
        }
    }

    /// The projector bank grown to `k` independent copies of projector 0 (warm start).
    pub fn replicate(mut self, k: usize) -> Self {
        if let Some(first) = self.projectors.first().cloned() {
            self.projectors = (0..k)
                .map(|i| {
                    if i == 0 {
                        first.clone()
                    } else {
                        crate::params::fork(&first)
                    }
                })
                .collect();
        }
        self
    }

    /// Makes projector `g` the one in use.
    pub fn select(mut self, g: usize) -> Self {
        assert!(self.projectors.is_empty() || g < self.projectors.len());
        self.active = g;
        self
    }

    /// Item-table rows for item ids `ids` (0 allowed): `MM_WEIGHT · proj(features) + E_id[ids]`
    /// where `features` holds those items' raw features in the same order (row for id 0 = the
    /// zero vector), or `E_id[ids]` for an ID-only model.
    pub fn table_rows(&self, features: Option<Tensor<2>>, ids: Tensor<1, Int>) -> Tensor<2> {
        let id = sasrec::zero_row0(self.sasrec.item_emb.val()).select(0, ids);
        match (self.projectors.get(self.active), features) {
            (Some(p), Some(f)) => id + p.forward(f).mul_scalar(MM_WEIGHT),
            (None, None) => id,
            (Some(_), None) => panic!("a multimodal recommender needs item features"),
            (None, Some(_)) => panic!("an ID-only recommender takes no item features"),
        }
    }

    /// The whole item table `[n_items + 1, d]` from the whole feature table.
    pub fn table(&self, features: Option<Tensor<2>>) -> Tensor<2> {
        let rows = self.sasrec.item_emb.val().dims()[0];
        let device = self.sasrec.item_emb.val().device();
        let ids = Tensor::<1, Int>::arange(0..rows as i64, &device);
        self.table_rows(features, ids)
    }
}
