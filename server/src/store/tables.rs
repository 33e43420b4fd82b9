//! Tensor tables on disk: 2-D `f32` tensors in one safetensors file (`table`, then `group_1`,
//! `group_2`, …), with optional string metadata in the header. Item tables, the frozen feature
//! cache and the IISAN hidden-state cache are all such files.

use std::collections::HashMap;
use std::path::Path;

use burn::prelude::*;

use super::write_atomic;
use crate::error::{Error, IoContext, Result};

/// The tensor name of table `g` (`table` for the first, so a one-table file reads naturally).
fn table_name(g: usize) -> String {
    if g == 0 {
        "table".into()
    } else {
        format!("group_{g}")
    }
}

/// Saves 2-D tables as `path`, atomically.
pub fn save_tables(path: &Path, tables: &[Tensor<2>]) -> Result<()> {
    save_tables_with(path, tables, HashMap::new())
}

/// Saves one 2-D table (tensor `table`).
pub fn save_table(path: &Path, table: Tensor<2>) -> Result<()> {
    save_tables(path, &[table])
}

/// [`save_tables`] with string metadata in the safetensors header.
pub fn save_tables_with(
    path: &Path,
    tables: &[Tensor<2>],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = tables
        .iter()
        .enumerate()
        .map(|(g, t)| {
            let [rows, d] = t.dims();
            let bytes = t
                .clone()
                .into_data()
                .iter::<f32>()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (table_name(g), vec![rows, d], bytes)
        })
        .collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::format(path, e))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = (!metadata.is_empty()).then_some(metadata);
    let serialized = safetensors::serialize(views, metadata).map_err(|e| Error::format(path, e))?;
    write_atomic(path, &serialized)
}

/// The string metadata of a safetensors file's header.
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    let bytes = std::fs::read(path).at(path)?;
    let (_, metadata) =
        safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| Error::format(path, e))?;
    Ok(metadata.metadata().clone().unwrap_or_default())
}

/// Every table written by [`save_tables`], in order, as row-major values and `[rows, cols]`.
pub fn read_tables(path: &Path) -> Result<Vec<(Vec<f32>, [usize; 2])>> {
    decode_tables(path, &std::fs::read(path).at(path)?)
}

/// [`read_tables`] of a file's bytes (`path` names it in errors): every table 2-D `f32`, with
/// the values its shape says.
pub fn decode_tables(path: &Path, bytes: &[u8]) -> Result<Vec<(Vec<f32>, [usize; 2])>> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::format(path, e))?;
    let mut out: Vec<(Vec<f32>, [usize; 2])> = Vec::new();
    while let Ok(t) = st.tensor(&table_name(out.len())) {
        let name = table_name(out.len());
        let &[rows, cols] = t.shape() else {
            return Err(Error::format(path, format!("{name} is not 2-D")));
        };
        if t.dtype() != safetensors::Dtype::F32
            || rows.checked_mul(cols).and_then(|n| n.checked_mul(4)) != Some(t.data().len())
        {
            return Err(Error::format(
                path,
                format!(
                    "{name} is not an f32 table ({:?} {rows}x{cols}, {} bytes)",
                    t.dtype(),
                    t.data().len()
                ),
            ));
        }
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.push((values, [rows, cols]));
    }
    if out.is_empty() {
        return Err(Error::format(path, "no tensor `table`"));
    }
    Ok(out)
}

/// Every table written by [`save_tables`], in order, on `device`.
pub fn load_tables(path: &Path, device: &Device) -> Result<Vec<Tensor<2>>> {
    Ok(read_tables(path)?
        .into_iter()
        .map(|(values, shape)| Tensor::from_data(TensorData::new(values, shape), device))
        .collect())
}

/// The first table written by [`save_tables`].
pub fn load_table(path: &Path, device: &Device) -> Result<Tensor<2>> {
    Ok(load_tables(path, device)?.remove(0))
}
