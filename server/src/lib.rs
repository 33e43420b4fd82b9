//! PerPEFT Studio server library. Dependencies point one way, from `api` down to `error`:
//! `api → engine → store → rec → config → error`, and `train → peft → backbone → store`
//! (`tests/architecture.rs` holds every module to its layer). `data` is the `perpeft-data`
//! crate. See ARCHITECTURE.md at the repository root for the map.

pub mod api;
pub mod backbone;
pub mod bench;
pub mod catalog;
pub mod cluster;
pub mod config;
pub use perpeft_data as data;
pub mod device;
pub mod engine;
pub mod error;
pub mod eval;
pub mod export;
pub mod jobs;
pub mod params;
pub mod peft;
pub mod rec;
pub mod store;
pub mod train;

pub use error::{Error, Result};
