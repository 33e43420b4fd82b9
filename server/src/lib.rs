//! PerPEFT Studio server library. Dependencies point one way:
//! `api → engine/train → eval/rec/peft/cluster/backbone → data`, with `device`, `store` and
//! `params` beside them.
//! See ARCHITECTURE.md at the repository root for the map.

pub mod api;
pub mod backbone;
pub mod bench;
pub mod cluster;
pub use perpeft_data as data;
pub mod device;
pub mod engine;
pub mod eval;
pub mod params;
pub mod peft;
pub mod rec;
pub mod store;
pub mod train;
