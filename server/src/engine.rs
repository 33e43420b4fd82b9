//! `engine` owns what the server serves: the dataset, the trained model's item table and every
//! user's current state, computed once at start-up; ranking itself is `shared::scorer`.

use burn::prelude::*;
use shared::{ItemTable, Scored, top_k};

use crate::data::{Dataset, sorted_distinct};
use crate::eval::window;
use crate::rec::SasRec;
use crate::store::RunRecord;

/// Users per batch when computing states.
const STATE_BATCH: usize = 512;

/// A loaded model ready to rank for every user of its dataset.
#[derive(Debug)]
pub struct Engine {
    /// The dataset served.
    pub dataset: Dataset,
    /// The run the model came from.
    pub record: RunRecord,
    dim: usize,
    table: Vec<f32>,
    states: Vec<f32>,
    /// Per user, sorted distinct history items (never recommended).
    seen: Vec<Vec<u32>>,
}

/// Row-major floats of a 2-D tensor.
pub fn to_vec(t: Tensor<2>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

impl Engine {
    /// Computes the item table and each user's state (SASRec over the last `max_len` items of
    /// the whole history) with `model` in inference mode.
    pub fn new(dataset: Dataset, model: &SasRec, record: RunRecord) -> anyhow::Result<Self> {
        if record.dataset_checksum != dataset.checksum {
            anyhow::bail!(
                "the model was trained on {} with checksum {}, but the data on disk has checksum {}",
                record.dataset,
                record.dataset_checksum,
                dataset.checksum
            );
        }
        let table_t = model.id_table();
        let [rows, dim] = table_t.dims();
        if rows != dataset.n_items() + 1 {
            anyhow::bail!(
                "model has {} item rows, dataset has {} items",
                rows - 1,
                dataset.n_items()
            );
        }
        let device = table_t.device();
        let l = model.max_len();
        let mut states = Vec::with_capacity(dataset.n_users() * dim);
        for chunk in dataset.sequences.chunks(STATE_BATCH) {
            let seq: Vec<i64> = chunk
                .iter()
                .flat_map(|s| window(s, l))
                .map(i64::from)
                .collect();
            let seq = Tensor::<2, Int>::from_data(TensorData::new(seq, [chunk.len(), l]), &device);
            states.extend(to_vec(model.user_states(seq, table_t.clone())));
        }
        let seen = dataset
            .sequences
            .iter()
            .map(|s| sorted_distinct(s))
            .collect();
        Ok(Self {
            dim,
            table: to_vec(table_t),
            states,
            seen,
            dataset,
            record,
        })
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.dim
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

    /// The `k` best unseen items for user index `u`.
    pub fn recommend(&self, u: usize, k: usize) -> Vec<Scored> {
        top_k(self.state(u), &self.table(), self.seen(u), k)
    }
}
