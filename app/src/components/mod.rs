//! Page components, one per file.

pub mod header;
pub mod user_list;
pub mod user_panel;
