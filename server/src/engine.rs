//! `engine` owns what the server serves: the dataset, the trained model's item table, its SASRec
//! as the plain-Rust `shared::sasrec::SasRec`, and every user's current state, computed once at
//! start-up with that same code the browser runs; ranking itself is `shared::scorer`.

use burn::prelude::*;
use shared::{ItemTable, Scored, top_k};

use crate::data::{Dataset, sorted_distinct};
use crate::rec::SasRec;
use crate::store::RunRecord;

/// A loaded model ready to rank for every user of its dataset.
#[derive(Debug)]
pub struct Engine {
    /// The dataset served.
    pub dataset: Dataset,
    /// The run the model came from.
    pub record: RunRecord,
    dim: usize,
    table: Vec<f32>,
    scorer: shared::sasrec::SasRec,
    states: Vec<f32>,
    /// Per user, sorted distinct history items (never recommended).
    seen: Vec<Vec<u32>>,
}

/// Row-major floats of a 2-D tensor.
pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

impl Engine {
    /// Takes the run's item table and computes each user's state (SASRec over the last
    /// `max_len` items of the whole history) with `model`'s weights.
    pub fn new(
        dataset: Dataset,
        model: &SasRec,
        table: Tensor<2>,
        record: RunRecord,
    ) -> anyhow::Result<Self> {
        if record.dataset_checksum != dataset.checksum {
            anyhow::bail!(
                "the model was trained on {} with checksum {}, but the data on disk has checksum {}",
                record.dataset,
                record.dataset_checksum,
                dataset.checksum
            );
        }
        let table_t = table;
        let [rows, dim] = table_t.dims();
        if rows != dataset.n_items() + 1 {
            anyhow::bail!(
                "model has {} item rows, dataset has {} items",
                rows - 1,
                dataset.n_items()
            );
        }
        let table = to_vec(table_t);
        let scorer = model.to_scorer();
        let item_table = ItemTable::new(dim, &table).expect("table rows are whole");
        let states = dataset
            .sequences
            .iter()
            .flat_map(|s| scorer.user_state(&item_table, s))
            .collect();
        let seen = dataset
            .sequences
            .iter()
            .map(|s| sorted_distinct(s))
            .collect();
        Ok(Self {
            dim,
            table,
            scorer,
            states,
            seen,
            dataset,
            record,
        })
    }

    /// The item table, row-major, row 0 = padding.
    pub fn table(&self) -> ItemTable<'_> {
        ItemTable::new(self.dim, &self.table).expect("table rows are whole")
    }

    /// The state vector of user index `u`.
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

    /// The `k` best items for an arbitrary history (a new user), excluding the history.
    pub fn recommend_for_history(&self, history: &[u32], k: usize) -> Vec<Scored> {
        let state = self.scorer.user_state(&self.table(), history);
        top_k(&state, &self.table(), &sorted_distinct(history), k)
    }

    /// The `k` best unseen items for user index `u`.
    pub fn recommend(&self, u: usize, k: usize) -> Vec<Scored> {
        top_k(self.state(u), &self.table(), self.seen(u), k)
    }
}
