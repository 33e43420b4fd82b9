//! JSON bodies of the HTTP API (`/api/...`), serialised by the server and read by the app. The
//! server's OpenAPI document (`GET /api/openapi.json`) describes them (feature `openapi`).

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// `GET /api/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Health {
    /// Always `"ok"` when the server answers.
    pub status: String,
    /// Version of the server's code.
    pub version: String,
    /// Device runs are loaded and trained on (`flex` or `wgpu`).
    pub device: String,
    /// Finished runs served.
    pub runs: usize,
}

/// Full-ranking metrics (fractions, not percentages).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
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

/// Validation and test metrics of a set of users.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Split {
    pub valid: Metrics,
    pub test: Metrics,
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Being trained now.
    Running,
    /// Trained to its last epoch: served.
    Finished,
    /// Stopped by an error.
    Failed,
    /// Stopped without finishing (the process ended or the job was cancelled); resumable.
    Interrupted,
}

impl RunStatus {
    /// Its name, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// One run in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunSummary {
    /// The run's name (its directory under the runs root).
    pub name: String,
    /// Method label, e.g. `perpeft-iisan+random-groups`.
    pub method: String,
    /// Backbone (`none` for id-only).
    pub backbone: String,
    /// Dataset name.
    pub dataset: String,
    pub seed: u64,
    /// Device it was trained on.
    pub device: String,
    pub status: RunStatus,
    /// Evaluated epochs done, of `epochs`.
    pub epochs_done: usize,
    pub epochs: usize,
    /// The epoch selected by validation NDCG@20.
    pub best_epoch: Option<usize>,
    /// Test metrics at `best_epoch`.
    pub test: Option<Metrics>,
    /// Mean training seconds per epoch.
    pub seconds_per_epoch: Option<f64>,
    /// Version of the code that trained it.
    pub code_version: String,
    /// The adapter of a PEFT method (`lora`, `ia3`, `iisan`); none for id-only and frozen.
    pub adapter: Option<String>,
    /// User groups (1 for a single-table run).
    pub groups: usize,
    /// Validation metrics at `best_epoch` (what the epoch was selected by).
    pub valid: Option<Metrics>,
    /// Seconds of training and evaluation over the evaluated epochs, plus the stages before
    /// them (PerPEFT's global stage and grouping).
    pub total_seconds: Option<f64>,
    /// When the run was registered (UTC, `YYYY-MM-DD HH:MM:SS`).
    pub created_at: String,
}

/// One evaluated epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct EpochPoint {
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f64,
    pub valid: Metrics,
    pub test: Metrics,
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

/// Seconds a stage before the evaluated epochs took (`global`, `grouping`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct StageTime {
    pub stage: String,
    pub seconds: f64,
}

/// `GET /api/runs/{run}`: everything recorded about a finished run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct RunDetail {
    pub summary: RunSummary,
    /// The training configuration (`TrainConfig`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: serde_json::Value,
    /// SASRec's configuration.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub model: serde_json::Value,
    /// SHA-256 of the dataset files.
    pub dataset_checksum: String,
    /// Per-epoch curve: loss and validation/test metrics.
    pub curve: Vec<EpochPoint>,
    /// Per group (validation, test) at the best epoch; one entry for a single-table run.
    pub groups: Vec<Split>,
    /// Users per group.
    pub group_sizes: Vec<usize>,
    pub stages: Vec<StageTime>,
    /// Trainable parameters of one adapter (PEFT methods).
    pub adapter_params: Option<usize>,
}

/// An item as shown to people.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Item {
    /// Internal item id (row of the item tables, 1-based).
    pub id: u32,
    /// The dataset's own item id.
    pub raw_id: String,
    /// Display title.
    pub title: String,
    /// The dataset's categories for it (MovieLens: genres).
    pub categories: Vec<String>,
}

/// An item much more frequent in a group than in the catalogue.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Distinctive {
    /// The item, or a category when `item` is absent.
    pub item: Option<Item>,
    pub category: Option<String>,
    /// Training interactions of the group's users with it.
    pub count: usize,
    /// Its share of the group's training interactions.
    pub group_share: f64,
    /// Its share of all training interactions.
    pub catalogue_share: f64,
    /// `group_share / catalogue_share`.
    pub lift: f64,
}

/// An item whose rank for a group moves most between the global model and the group's adapter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Shift {
    pub item: Item,
    /// 1-based rank for the group's mean user under the group's table.
    pub group_rank: usize,
    /// 1-based rank for the group's mean user under the global model.
    pub global_rank: usize,
}

/// One user group of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupCard {
    pub group: usize,
    /// Users in the group.
    pub size: usize,
    /// The group's centroid (PerPEFT; empty for a single-table run).
    pub centroid: Vec<f32>,
    /// Metrics of the group's users with the group's own table.
    pub own: Split,
    /// Metrics of the same users under the global (stage-1) model, PerPEFT only.
    pub global: Option<Split>,
    /// Test NDCG@20 own − global: the personalisation gain.
    pub gain_ndcg20: Option<f64>,
    /// Items with the highest lift in the group (at least 5 interactions).
    pub items: Vec<Distinctive>,
    /// Categories with the highest lift.
    pub categories: Vec<Distinctive>,
    /// Items the group's adapter promotes most over the global model.
    pub promoted: Vec<Shift>,
    /// Items it demotes most.
    pub demoted: Vec<Shift>,
}

/// `GET /api/runs/{run}/groups`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct GroupsBody {
    pub run: String,
    pub groups: Vec<GroupCard>,
}

/// One user on the group map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MapPoint {
    pub user: String,
    pub group: usize,
    pub x: f32,
    pub y: f32,
    /// The user's most frequent categories in their training interactions (at most 3, most
    /// frequent first, ties by name).
    pub top: Vec<String>,
}

/// `GET /api/runs/{run}/map`: users projected to 2-D from their grouping representation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct MapBody {
    pub run: String,
    /// `pca` or `tsne`.
    pub method: String,
    /// Variance explained by each axis, as fractions (PCA; empty for t-SNE).
    pub explained: Vec<f64>,
    pub points: Vec<MapPoint>,
}

/// A user in a listing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserSummary {
    /// The dataset's own user id.
    pub id: String,
    /// Number of interactions.
    pub interactions: usize,
    /// The user's group in the run.
    pub group: usize,
}

/// `GET /api/runs/{run}/users?group=&offset=&limit=`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UsersPage {
    pub users: Vec<UserSummary>,
    /// Users in total (in the group, when one is asked for).
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
}

/// One interaction of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Interaction {
    pub item: Item,
    /// Its timestamp as the dataset gives it (MovieLens: Unix seconds); none when the
    /// dataset's format has no times.
    pub time: Option<f64>,
}

/// `GET /api/runs/{run}/users/{id}`: the user's interactions, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct UserDetail {
    pub id: String,
    pub group: usize,
    /// What recommendations are computed from: every interaction but the held-out one.
    pub history: Vec<Interaction>,
    /// The last interaction, held out as the test item (users with 3 or more interactions).
    pub held_out: Option<Interaction>,
}

/// `GET /api/datasets`: a dataset the server can train on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct DatasetInfo {
    /// Its name, as a job's `dataset`.
    pub name: String,
    /// `recbole`, `amazon` or `plain`.
    pub format: String,
}

/// One recommended item.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Recommendation {
    pub item: Item,
    /// Model score (inner product of the user state and the item embedding).
    pub score: f32,
}

/// Where the held-out item landed in a full ranking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct HeldOutRank {
    pub item: Item,
    /// 1-based rank among all candidates (items not in the history).
    pub rank: usize,
    /// Whether it is in the returned list.
    pub in_list: bool,
}

/// `GET /api/runs/{run}/users/{id}/recommendations?k=&group=`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Recommendations {
    pub run: String,
    /// The user's id (empty for a new history).
    pub user: String,
    /// The group whose item table ranked the items.
    pub group: usize,
    /// Whether that is the user's own group.
    pub own_group: bool,
    /// Best first.
    pub items: Vec<Recommendation>,
    /// The held-out test item's rank, for a known user who has one.
    pub held_out: Option<HeldOutRank>,
}

/// Overlap of two runs' lists in a comparison.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Overlap {
    pub a: String,
    pub b: String,
    /// Items in both lists.
    pub shared: usize,
}

/// `GET /api/compare?user=&runs=a,b&k=`: one user's lists side by side.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Comparison {
    pub user: String,
    pub k: usize,
    /// One list per run, in the order asked, each with the user's own group.
    pub lists: Vec<Recommendations>,
    /// Every pair of lists.
    pub overlaps: Vec<Overlap>,
}

/// `POST /api/runs/{run}/assign`: a history the model has not seen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct AssignRequest {
    /// Internal item ids, oldest first.
    pub history: Vec<u32>,
    /// How many items (default 20).
    pub k: Option<usize>,
    /// Rank with this group's table instead of the group the history is assigned to.
    #[serde(default)]
    pub group: Option<usize>,
}

/// The answer to [`AssignRequest`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Assignment {
    /// The nearest centroid's group (0 for a single-table run).
    pub assigned: usize,
    /// Squared distance of the history's global-model state to each centroid.
    pub distances: Vec<f32>,
    /// Recommendations (with `assigned`'s table, or the group asked for).
    pub recommendations: Recommendations,
}

/// An error body: every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct ApiError {
    /// What went wrong, for a person.
    pub error: String,
}

/// What a training job is asked to train (server-side paths are the server's own).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct JobRequest {
    /// Name of the run to create (letters, digits, `.`, `_`, `-`; at most 64).
    pub run: String,
    /// Dataset name in the server's data directory.
    pub dataset: String,
    /// `TrainConfig` fields (method, epochs, peft, groups, seed, …) over a preset
    /// (`"preset": "recommended"`, the default, or `"reference"`); server paths are refused.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: serde_json::Value,
    /// Continue the run of that name from its last checkpoint instead of starting it.
    #[serde(default)]
    pub resume: bool,
}

/// Where a job is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Finished,
    Failed,
    Cancelled,
    /// The server stopped while it ran; resume its run with a new job.
    Interrupted,
}

impl JobStatus {
    /// Its name, as serialised.
    pub fn name(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Finished => "finished",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// Whether the job may still change (queued or running).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

/// Training progress of a running job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Progress {
    /// `global stage` or `training`.
    pub stage: String,
    pub epoch: usize,
    /// Last epoch of the stage.
    pub last_epoch: usize,
    /// Steps done and to do in the stage.
    pub step: usize,
    pub steps: usize,
    /// Mean loss of the epoch so far.
    pub loss: f64,
    /// Seconds to the end of the stage, extrapolated.
    pub eta_seconds: Option<f64>,
}

/// `GET /api/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
pub struct Job {
    pub id: u64,
    pub run: String,
    pub dataset: String,
    pub status: JobStatus,
    /// `TrainConfig` as the job trains it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: serde_json::Value,
    pub resume: bool,
    pub created_at: String,
    pub error: Option<String>,
    /// While running.
    pub progress: Option<Progress>,
    /// Evaluated epochs so far.
    pub epochs: Vec<EpochPoint>,
}

/// One Server-Sent Event of `GET /api/jobs/{id}/events` (its `event:` is `kind`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum JobEvent {
    /// The job's status changed (the first event is the status when the stream opened).
    Status {
        status: JobStatus,
        error: Option<String>,
    },
    /// Steps were made (at most a few per second).
    Progress(Progress),
    /// An epoch was evaluated and recorded.
    Epoch(EpochPoint),
}

impl JobEvent {
    /// The SSE event name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status { .. } => "status",
            Self::Progress(_) => "progress",
            Self::Epoch(_) => "epoch",
        }
    }
}
