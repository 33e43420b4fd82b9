//! `engine` owns a loaded run, ready to serve: any finished run (id-only, frozen, global PEFT,
//! or PerPEFT with one item table per group), its dataset, SASRec as the plain-Rust
//! `shared::sasrec::SasRec`, every user's group and state (computed once, with the same code the
//! browser runs), the global model and centroids that place a history it has not seen in a
//! group, and what describes the groups ([`insights`]). Ranking is `shared::scorer`.
//!
//! A known user is served as evaluation sees them: the state comes from every interaction but
//! the held-out test item (docs/method.md §2.3), and that item's rank is reported, so an analyst
//! sees whether the model would have recommended what the user did next.
//!
//! Invariant: after [`Engine::open`] nothing here touches burn or the disk: a request is plain
//! Rust over vectors in memory.

pub mod insights;

use std::sync::Arc;

use burn::prelude::*;
use shared::bundle::{Encoding, ScorerBundle};
use shared::groups::Grouping;
use shared::{ItemTable, Scored, top_k};

use crate::config::RunRecord;
use crate::data::{Dataset, Split, sorted_distinct};
use crate::error::{Error, Result};
use crate::store::RunDir;
use insights::Insights;

/// A loaded run ready to rank for every user of its dataset, and for new histories.
#[derive(Debug)]
pub struct Engine {
    /// The run's name.
    pub name: String,
    /// The dataset served.
    pub dataset: Arc<Dataset>,
    /// The run the model came from.
    pub record: RunRecord,
    split: Split,
    dim: usize,
    /// One item table per group, row-major, row 0 = padding.
    tables: Vec<Vec<f32>>,
    scorer: shared::sasrec::SasRec,
    /// Each user's group (all 0 for a single-table run).
    assignment: Vec<usize>,
    grouping: Option<Grouping>,
    /// Each user's state under their group's table, row-major `[users, dim]`.
    states: Vec<f32>,
    /// Per user, what is never recommended: the input history, minus the held-out item.
    exclude: Vec<Vec<u32>>,
    insights: Insights,
    /// The t-SNE map, computed on first request.
    tsne: std::sync::OnceLock<insights::Map>,
}

/// A ranked list for one user and group.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    /// The group whose table ranked the items.
    pub group: usize,
    /// Best first.
    pub items: Vec<Scored>,
    /// The held-out item, its 1-based rank among all candidates, and whether it is in `items`.
    pub held_out: Option<(u32, usize, bool)>,
}

/// Row-major floats of a 2-D tensor.
pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

impl Engine {
    /// Loads the best epoch of the run in `dir` onto `device`, computes every user's state and
    /// the groups' descriptions. `dataset` must be the data the run was trained on (same
    /// checksum).
    pub fn open(dir: &RunDir, dataset: Arc<Dataset>, device: &Device) -> Result<Self> {
        let model = dir.load_model(device)?;
        let record = model.record.clone();
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
            .iter()
            .map(|t| table_values(t.clone(), rows, dim, dir))
            .collect::<Result<Vec<_>>>()?;
        let split = Split::leave_one_out(&dataset.sequences);
        let (assignment, global) = if tables.len() > 1 {
            let groups = dir.read_groups()?;
            // read_groups has checked that every user is in one of k groups and that the
            // centroids are k × dim: here, that they fit this run's tables, model and users
            let fits = groups.k == tables.len()
                && groups.assignment.len() == dataset.n_users()
                && groups.dim == dim;
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
            (groups.assignment, Some((grouping, global)))
        } else {
            (vec![0; dataset.n_users()], None)
        };
        let inputs: Vec<Vec<u32>> = (0..dataset.n_users())
            .map(|u| input_history(&split, &dataset, u))
            .collect();
        let states: Vec<f32> = inputs
            .iter()
            .zip(&assignment)
            .flat_map(|(h, &g)| scorer.user_state(&item_table(dim, &tables[g]), h))
            .collect();
        let exclude = inputs
            .iter()
            .enumerate()
            .map(|(u, h)| {
                let mut e = sorted_distinct(h);
                if let Some(t) = split.test[u] {
                    e.retain(|&i| i != t);
                }
                e
            })
            .collect();
        let insights = Insights::compute(&insights::Inputs {
            dataset: &dataset,
            split: &split,
            model: &model,
            tables: &tables,
            dim,
            assignment: &assignment,
            states: &states,
            inputs: &inputs,
            global: global.as_ref().map(|(g, loaded)| (g, loaded)),
        })?;
        Ok(Self {
            name: dir.name(),
            dim,
            tables,
            scorer,
            assignment,
            grouping: global.map(|(g, _)| g),
            states,
            exclude,
            insights,
            tsne: std::sync::OnceLock::new(),
            split,
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

    /// SASRec's inference weights.
    pub fn scorer(&self) -> &shared::sasrec::SasRec {
        &self.scorer
    }

    /// What assigns a history to a group (PerPEFT runs): the global model and the centroids.
    pub fn grouping(&self) -> Option<&Grouping> {
        self.grouping.as_ref()
    }

    /// What describes the groups and the user map.
    pub fn insights(&self) -> &Insights {
        &self.insights
    }

    /// The t-SNE map of the users (computed on the first call, seconds for thousands of users;
    /// call it off the async runtime).
    pub fn tsne(&self) -> Result<&insights::Map> {
        if let Some(m) = self.tsne.get() {
            return Ok(m);
        }
        let m = self.insights.tsne()?;
        Ok(self.tsne.get_or_init(|| m))
    }

    /// The interactions the model sees for user `u`: all but the held-out test item.
    pub fn input(&self, u: usize) -> Vec<u32> {
        input_history(&self.split, &self.dataset, u)
    }

    /// The leave-one-out split the run was evaluated on.
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// User `u`'s held-out test item (users with 3 or more interactions).
    pub fn held_out(&self, u: usize) -> Option<u32> {
        self.split.test[u]
    }

    /// User `u`'s state under their group's table.
    pub fn state(&self, u: usize) -> &[f32] {
        &self.states[u * self.dim..(u + 1) * self.dim]
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

    /// The `k` best items for user index `u` with their own group's table or group `group`'s,
    /// with where their held-out item ranks (as evaluation ranks it).
    pub fn recommend(&self, u: usize, k: usize, group: Option<usize>) -> Result<Ranking> {
        let own = self.group_of(u);
        let g = match group {
            Some(g) => self.check_group(g)?,
            None => own,
        };
        let table = self.table(g);
        let other;
        let state = if g == own {
            self.state(u)
        } else {
            other = self.scorer.user_state(&table, &self.input(u));
            &other
        };
        let items = top_k(state, &table, &self.exclude[u], k);
        // ranked as evaluation ranks it (`eval`): candidates scoring strictly higher, ties to
        // the target, a NaN target last
        let held_out = self.held_out(u).map(|t| {
            let scores = table.scores(state);
            let target = scores[t as usize];
            let excluded = &self.exclude[u];
            let above = if target.is_nan() {
                scores.len()
            } else {
                (1..scores.len())
                    .filter(|&i| i as u32 != t && excluded.binary_search(&(i as u32)).is_err())
                    .filter(|&i| scores[i] > target)
                    .count()
            };
            (t, above + 1, items.iter().any(|s| s.item == t))
        });
        Ok(Ranking {
            group: g,
            items,
            held_out,
        })
    }

    /// A history the model has not seen: the group it is assigned to (the nearest centroid of
    /// its global-model state, docs/method.md §8; 0 for a single-table run), its distance to
    /// each centroid, and the `k` best items with that group's table or group `group`'s.
    pub fn recommend_for_history(
        &self,
        history: &[u32],
        k: usize,
        group: Option<usize>,
    ) -> Result<(usize, Vec<f32>, Ranking)> {
        let n = self.dataset.n_items() as u32;
        if let Some(bad) = history.iter().find(|&&i| i == 0 || i > n) {
            return Err(Error::Invalid(format!(
                "unknown item id {bad}: ids are 1..={n}"
            )));
        }
        let (assigned, distances) = match &self.grouping {
            Some(g) => {
                let state = g.state(history);
                let d = shared::groups::distances(&g.centroids, self.dim, &state);
                (shared::groups::nearest(&g.centroids, self.dim, &state), d)
            }
            None => (0, Vec::new()),
        };
        let g = match group {
            Some(g) => self.check_group(g)?,
            None => assigned,
        };
        let table = self.table(g);
        let state = self.scorer.user_state(&table, history);
        let items = top_k(&state, &table, &sorted_distinct(history), k);
        Ok((
            assigned,
            distances,
            Ranking {
                group: g,
                items,
                held_out: None,
            },
        ))
    }

    /// The scorer bundle of group `g`: what the browser ranks a user of that group with.
    pub fn scorer_bundle(&self, g: usize, encoding: Encoding) -> Result<ScorerBundle> {
        let g = self.check_group(g)?;
        let centroids = self
            .grouping
            .as_ref()
            .map(|gr| gr.centroids.clone())
            .unwrap_or_default();
        Ok(ScorerBundle::new(
            self.name.clone(),
            (g, self.n_groups()),
            self.scorer.clone(),
            &self.tables[g],
            centroids,
            encoding,
        ))
    }
}

/// What the model sees of user `u`: training + validation items for an evaluated user (the
/// test item is held out), or every interaction of a user too short to evaluate.
fn input_history(split: &Split, dataset: &Dataset, u: usize) -> Vec<u32> {
    match split.test[u] {
        Some(_) => {
            let mut h = split.train[u].clone();
            h.extend(split.valid[u]);
            h
        }
        None => dataset.sequences[u].clone(),
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
