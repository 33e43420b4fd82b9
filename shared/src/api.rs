//! JSON bodies of the HTTP API (`/api/...`), serialised by the server and read by the app.

use serde::{Deserialize, Serialize};

/// `GET /api/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    /// Always `"ok"` when the server answers.
    pub status: String,
    /// Dataset being served.
    pub dataset: String,
    /// Model being served.
    pub model: ModelInfo,
}

/// What the served model is and how well it did on held-out data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// Method name, e.g. `id-only`.
    pub method: String,
    /// Device the model was trained on, e.g. `flex` or `wgpu`.
    pub trained_on: String,
    /// The selected (best validation) epoch.
    pub epochs: usize,
    /// User groups, each with its own item table (1 for a single-table run).
    pub groups: usize,
    /// Test metrics at the end of training (full ranking).
    pub test: Metrics,
}

/// Full-ranking metrics (fractions, not percentages).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Metrics {
    /// Hit rate at 10.
    pub hr10: f64,
    /// NDCG at 10.
    pub ndcg10: f64,
    /// Hit rate at 20.
    pub hr20: f64,
    /// NDCG at 20.
    pub ndcg20: f64,
    /// Hit rate at 30.
    pub hr30: f64,
    /// NDCG at 30.
    pub ndcg30: f64,
    /// Users evaluated.
    pub users: usize,
}

/// One user in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserSummary {
    /// The dataset's own user id.
    pub id: String,
    /// Number of interactions.
    pub interactions: usize,
}

/// `GET /api/users?offset=&limit=`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UsersPage {
    /// Users in this page.
    pub users: Vec<UserSummary>,
    /// Users in total.
    pub total: usize,
    /// Offset of the first user of the page.
    pub offset: usize,
    /// Page size asked for.
    pub limit: usize,
}

/// An item as shown to people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    /// Internal item id (row of the item tables, 1-based).
    pub id: u32,
    /// The dataset's own item id.
    pub raw_id: String,
    /// Display title.
    pub title: String,
}

/// `GET /api/users/{id}`: the user's interactions, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserDetail {
    /// The dataset's own user id.
    pub id: String,
    /// Interactions in chronological order.
    pub history: Vec<Item>,
}

/// One recommended item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recommendation {
    /// The item.
    pub item: Item,
    /// Model score (inner product of user state and item embedding).
    pub score: f32,
}

/// `GET /api/users/{id}/recommendations?k=`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Recommendations {
    /// The dataset's own user id (empty for a new history).
    pub user: String,
    /// The group whose item table ranked the items.
    pub group: usize,
    /// Best first.
    pub items: Vec<Recommendation>,
}

/// `POST /api/recommendations`: rank for a history the model has not seen (a new user).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryRequest {
    /// Internal item ids, oldest first.
    pub history: Vec<u32>,
    /// How many items (default 20).
    pub k: Option<usize>,
    /// Rank with this group's item table instead of the group the history is assigned to.
    #[serde(default)]
    pub group: Option<usize>,
}

/// `GET /api/users/{id}/state`: what the browser needs to rank for this user itself.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserState {
    /// The dataset's own user id.
    pub user: String,
    /// The user's group: rank with `GET /api/items/table?group=` of it.
    pub group: usize,
    /// SASRec's last hidden state for the user, [`crate::codec`]-encoded `f32`s.
    pub vector_b64: String,
    /// Internal ids the user already interacted with (never recommended).
    pub exclude: Vec<u32>,
}

/// `GET /api/items/table?group=`: one group's item embedding table (group 0 by default).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ItemTableBody {
    /// The group the table belongs to.
    pub group: usize,
    /// Vector dimension.
    pub dim: usize,
    /// Rows, padding row 0 included.
    pub rows: usize,
    /// Row-major [`crate::codec`]-encoded `f32`s.
    pub data_b64: String,
    /// Display data for rows `1..rows` (index `i` is item `i + 1`).
    pub items: Vec<Item>,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}
