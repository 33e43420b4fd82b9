//! Shared by the server (native) and the app (WASM): the JSON API types ([`api`]), the compact
//! binary encoding of float vectors ([`codec`]), the per-group scorer ([`scorer`]), SASRec
//! inference in plain Rust ([`sasrec`]), the assignment of a user to a group ([`groups`]) and
//! the per-group scorer bundle the browser ranks with ([`bundle`]), and the runs table's sort and
//! best-run rules ([`runs`]).
//!
//! Invariant: this crate depends on neither burn nor axum, so it compiles to
//! `wasm32-unknown-unknown` and the browser ranks with exactly the code the server ranks with.

pub mod api;
pub mod bundle;
pub mod codec;
pub mod groups;
pub mod runs;
pub mod sasrec;
pub mod scorer;

pub use scorer::{ItemTable, Scored, top_k};
