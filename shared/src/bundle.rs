//! The per-group scorer bundle: everything the browser needs to rank for a user of one group
//! without a round trip: SASRec's inference weights, the group's item table, and the centroids.
//! The table travels in half precision by default (half the bytes; a test measures the rank
//! agreement with `f32`), or bit-exact in `f32` when the browser must rank exactly as the server.

use serde::{Deserialize, Serialize};

use crate::codec::{decode_f16, decode_f32, encode_f16, encode_f32};
use crate::sasrec::SasRec;
use crate::scorer::ItemTable;

/// How a bundle's item table is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// IEEE half precision, little-endian, base64.
    #[default]
    F16,
    /// IEEE single precision, little-endian, base64: bit-exact.
    F32,
}

/// `GET /api/runs/{run}/groups/{g}/scorer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScorerBundle {
    pub run: String,
    pub group: usize,
    /// Groups of the run.
    pub groups: usize,
    /// SASRec's inference weights (`f32`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub scorer: SasRec,
    /// Rows of the item table, padding row 0 included.
    pub rows: usize,
    /// How `table` is encoded.
    pub encoding: Encoding,
    /// The group's item table, row-major `[rows, scorer.hidden]`.
    pub table: String,
    /// The run's centroids, row-major `[groups, scorer.hidden]` (empty for a single-table run).
    #[serde(with = "crate::codec::b64")]
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub centroids: Vec<f32>,
}

impl ScorerBundle {
    /// A bundle of `table` (row-major, `scorer.hidden` wide), encoded as `encoding` says.
    pub fn new(
        run: String,
        (group, groups): (usize, usize),
        scorer: SasRec,
        table: &[f32],
        centroids: Vec<f32>,
        encoding: Encoding,
    ) -> Self {
        Self {
            run,
            group,
            groups,
            rows: table.len() / scorer.hidden.max(1),
            scorer,
            encoding,
            table: match encoding {
                Encoding::F16 => encode_f16(table),
                Encoding::F32 => encode_f32(table),
            },
            centroids,
        }
    }

    /// The item table as `f32`, checked to have `rows` whole rows, and the scorer's weights
    /// checked ([`SasRec::check`]): a bundle this accepts ranks without panicking.
    pub fn table(&self) -> Result<Vec<f32>, String> {
        self.scorer.check()?;
        let table = match self.encoding {
            Encoding::F16 => decode_f16(&self.table)?,
            Encoding::F32 => decode_f32(&self.table)?,
        };
        ItemTable::new(self.scorer.hidden, &table)?;
        if table.len() != self.rows * self.scorer.hidden {
            return Err(format!(
                "{} table values for {} rows of {}",
                table.len(),
                self.rows,
                self.scorer.hidden
            ));
        }
        Ok(table)
    }
}
