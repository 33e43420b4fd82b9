//! Pieces the pages share: charts, loading and error states, the site navigation, item lists
//! and metric formatting, and the in-browser ranking.

pub mod browser_ranking;
pub mod chart;
pub mod items;
pub mod loader;
pub mod metrics;
pub mod nav;
pub mod plots;
