//! `engine` owns a loaded run, ready to serve: any finished run (id-only, frozen, global PEFT,
//! or PerPEFT with one item table per group), its dataset, SASRec as the plain-Rust
//! `shared::sasrec::SasRec`, every user's group and current state (computed once, with the same
//! code the browser runs), and, for PerPEFT, the centroids and the global model that place a
//! history it has not seen in a group. Ranking is `shared::scorer`.
//!
//! Invariant: after [`Engine::open`] nothing here touches burn or the disk: a request is plain
//! Rust over vectors in memory.

use burn::prelude::*;
use shared::groups::Grouping;
use shared::{ItemTable, Scored, top_k};

use crate::config::RunRecord;
use crate::data::{Dataset, sorted_distinct};
use crate::error::{Error, Result};
use crate::store::RunDir;

/// A loaded run ready to rank for every user of its dataset, and for new histories.
#[derive(Debug)]
pub struct Engine {
    /// The dataset served.
    pub dataset: Dataset,
    /// The run the model came from.
    pub record: RunRecord,
    dim: usize,
    /// One item table per group, row-major, row 0 = padding.
    tables: Vec<Vec<f32>>,
    scorer: shared::sasrec::SasRec,
    /// Each user's group (all 0 for a single-table run).
    assignment: Vec<usize>,
    grouping: Option<Grouping>,
    /// Each user's state under their group's table, row-major `[users, dim]`.
    states: Vec<f32>,
    /// Per user, sorted distinct history items (never recommended).
    seen: Vec<Vec<u32>>,
}

/// Row-major floats of a 2-D tensor.
pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

impl Engine {
    /// Loads the best epoch of the run in `dir` onto `device` and computes every user's state.
    /// `dataset` must be the data the run was trained on (same checksum).
    pub fn open(dir: &RunDir, dataset: Dataset, device: &Device) -> Result<Self> {
        let model = dir.load_model(device)?;
        let record = model.record;
        if record.dataset_checksum != dataset.checksum {
            return Err(Error::Conflict(format!(
                "{} was trained on {} with checksum {}, but the data on disk has checksum {}",
                dir.path().display(),
                record.dataset,
                record.dataset_checksum,
                dataset.checksum
            )));
        }
        let rows = dataset.n_items() + 1;
        let scorer = model.sasrec.to_scorer();
        let dim = scorer.hidden;
        let tables = model
            .tables
            .into_iter()
            .map(|t| table_values(t, rows, dim, dir))
            .collect::<Result<Vec<_>>>()?;
        let (assignment, grouping) = if tables.len() > 1 {
            let groups = dir.read_groups()?;
            let fits = groups.k == tables.len()
                && groups.assignment.len() == dataset.n_users()
                && groups.assignment.iter().all(|&g| g < groups.k)
                && groups.dim == dim
                && groups.centroids.len() == groups.k * dim;
            if !fits {
                return Err(Error::format(
                    &dir.groups_file(),
                    format!(
                        "{} groups of {}-wide centroids ({} values) over {} users do not fit \
                         {} item tables, SASRec's width {dim} and {} users",
                        groups.k,
                        groups.dim,
                        groups.centroids.len(),
                        groups.assignment.len(),
                        tables.len(),
                        dataset.n_users()
                    ),
                ));
            }
            let global = dir.load_global(device)?;
            let table = table_values(global.tables[0].clone(), rows, dim, &dir.global())?;
            let grouping = Grouping::new(global.sasrec.to_scorer(), table, groups.centroids)
                .map_err(|e| Error::format(&dir.groups_file(), e))?;
            (groups.assignment, Some(grouping))
        } else {
            (vec![0; dataset.n_users()], None)
        };
        let states = dataset
            .sequences
            .iter()
            .zip(&assignment)
            .flat_map(|(s, &g)| scorer.user_state(&item_table(dim, &tables[g]), s))
            .collect();
        let seen = dataset
            .sequences
            .iter()
            .map(|s| sorted_distinct(s))
            .collect();
        Ok(Self {
            dim,
            tables,
            scorer,
            assignment,
            grouping,
            states,
            seen,
            dataset,
            record,
        })
    }

    /// Number of user groups (1 for a single-table run).
    pub fn n_groups(&self) -> usize {
        self.tables.len()
    }

    /// The group of user index `u`.
    pub fn group_of(&self, u: usize) -> usize {
        self.assignment[u]
    }

    /// The item table of group `g`, row-major, row 0 = padding.
    pub fn table(&self, g: usize) -> ItemTable<'_> {
        item_table(self.dim, &self.tables[g])
    }

    /// The state vector of user index `u` (under their group's table).
    pub fn state(&self, u: usize) -> &[f32] {
        &self.states[u * self.dim..(u + 1) * self.dim]
    }

    /// Items user `u` already interacted with (sorted, distinct).
    pub fn seen(&self, u: usize) -> &[u32] {
        &self.seen[u]
    }

    /// SASRec's inference weights (sent to the browser).
    pub fn scorer(&self) -> &shared::sasrec::SasRec {
        &self.scorer
    }

    /// The group a history of item ids (oldest first) belongs to: for PerPEFT, the nearest
    /// centroid to its state under the global model (how the groups were made, docs/method.md
    /// §8); 0 for a single-table run.
    pub fn assign(&self, history: &[u32]) -> usize {
        self.grouping.as_ref().map_or(0, |g| g.assign(history))
    }

    /// What assigns a history to a group (PerPEFT runs): the global model and the centroids,
    /// as the browser gets it.
    pub fn grouping(&self) -> Option<&Grouping> {
        self.grouping.as_ref()
    }

    /// The `k` best items for a history the model has not seen, excluding the history, with
    /// group `group`'s table or, by default, the group the history is assigned to. Returns the
    /// group used and the ranking.
    pub fn recommend_for_history(
        &self,
        history: &[u32],
        k: usize,
        group: Option<usize>,
    ) -> Result<(usize, Vec<Scored>)> {
        let n = self.dataset.n_items() as u32;
        if let Some(bad) = history.iter().find(|&&i| i == 0 || i > n) {
            return Err(Error::Invalid(format!(
                "unknown item id {bad}: ids are 1..={n}"
            )));
        }
        let g = match group {
            Some(g) => self.check_group(g)?,
            None => self.assign(history),
        };
        let table = self.table(g);
        let state = self.scorer.user_state(&table, history);
        Ok((g, top_k(&state, &table, &sorted_distinct(history), k)))
    }

    /// `g` if the run has such a group.
    pub fn check_group(&self, g: usize) -> Result<usize> {
        if g < self.n_groups() {
            Ok(g)
        } else {
            Err(Error::Invalid(format!(
                "group {g} does not exist: the run has {} group(s), 0..{}",
                self.n_groups(),
                self.n_groups()
            )))
        }
    }

    /// The `k` best unseen items for user index `u`, with their group's table.
    pub fn recommend(&self, u: usize, k: usize) -> Vec<Scored> {
        top_k(
            self.state(u),
            &self.table(self.group_of(u)),
            self.seen(u),
            k,
        )
    }
}

fn item_table(dim: usize, data: &[f32]) -> ItemTable<'_> {
    ItemTable::new(dim, data).expect("tables are checked to be whole rows when loaded")
}

/// A table's values, checked to have one row per item of the dataset and SASRec's width.
fn table_values(t: Tensor<2>, rows: usize, dim: usize, dir: &RunDir) -> Result<Vec<f32>> {
    let [r, d] = t.dims();
    if (r, d) != (rows, dim) {
        return Err(Error::format(
            &dir.tables_file(),
            format!(
                "a table of {} items × {d} does not fit {} items × {dim}",
                r.saturating_sub(1),
                rows - 1
            ),
        ));
    }
    Ok(to_vec(t))
}
