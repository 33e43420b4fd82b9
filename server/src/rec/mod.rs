//! `rec` owns the sequential recommender: SASRec ([`sasrec`]) and its training loss ([`loss`]).
//!
//! The model reads an *item table* (one row per internal item id, row 0 = padding) so the same
//! code serves ID-only items now and multimodal / per-group item tables later.

pub mod loss;
pub mod sasrec;

pub use sasrec::{SasRec, SasRecConfig};
