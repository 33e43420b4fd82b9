//! Item feature tables: a dataset's items through a backbone's encoder, one row per internal id
//! with row 0 (padding) the zero vector, as the reference builds its feature buffer. The
//! frozen baseline computes the table once and caches it on disk, keyed by backbone and dataset
//! checksum; PEFT training encodes only a batch's unique items, with gradients
//! ([`encode_items`]).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Backbone, BackboneSpec, Encoder};
use crate::data::Dataset;
use crate::store::{load_table, read_metadata, save_tables_with};

/// Items per encoder call when building a whole table.
pub const ENCODE_BATCH: usize = 64;

/// Whether any item of the dataset has an image (decides whether the image tower is used).
pub fn has_images(dataset: &Dataset) -> bool {
    dataset.items.iter().any(|m| m.image.is_some())
}

/// Features `[ids.len(), D]` of items `ids` through `encoder` (with `backbone`'s tokenizer and
/// preprocessing) on `device`; id 0 gets the zero row. Gradients flow when `device` is an
/// autodiff device and the encoder has trainable adapters.
pub fn encode_items(
    backbone: &Backbone,
    encoder: &Encoder,
    dataset: &Dataset,
    ids: &[u32],
    device: &Device,
) -> Result<Tensor<2>> {
    let real: Vec<u32> = ids.iter().copied().filter(|&i| i != 0).collect();
    let d = backbone.feature_dim();
    if real.is_empty() {
        return Ok(Tensor::zeros([ids.len(), d], device));
    }
    let texts: Vec<&str> = real
        .iter()
        .map(|&i| dataset.item(i).map_or("", |m| m.text.as_str()))
        .collect();
    let images = if encoder.image.is_some() {
        real.iter()
            .map(|&i| {
                dataset
                    .image(i)
                    .map(|o| o.map(image::DynamicImage::ImageRgb8))
                    .map_err(anyhow::Error::from)
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let inputs = backbone.inputs(&texts, &images, device)?;
    let encoded = encoder.forward(&inputs, device);
    // put the zero rows back where the 0 ids were
    if real.len() == ids.len() {
        return Ok(encoded);
    }
    let mut index = Vec::with_capacity(ids.len());
    let mut next = 1i64;
    for &i in ids {
        if i == 0 {
            index.push(0);
        } else {
            index.push(next);
            next += 1;
        }
    }
    let padded = Tensor::cat(vec![Tensor::zeros([1, d], device), encoded], 0);
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [ids.len()]), device);
    Ok(padded.select(0, index))
}

/// The whole table `[n_items + 1, D]` through `encoder` (with `backbone`'s tokenizer and
/// preprocessing), encoded in batches of [`ENCODE_BATCH`] with a progress bar; row 0 is zero.
pub fn item_table(
    backbone: &Backbone,
    encoder: &Encoder,
    dataset: &Dataset,
    device: &Device,
) -> Result<Tensor<2>> {
    let n = dataset.n_items() as u32;
    let bar = ProgressBar::new(n as u64);
    bar.set_style(
        ProgressStyle::with_template("encoding items [{bar:30}] {pos}/{len}, {per_sec}, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut parts = vec![Tensor::zeros([1, backbone.feature_dim()], device)];
    let ids: Vec<u32> = (1..=n).collect();
    for chunk in ids.chunks(ENCODE_BATCH) {
        parts.push(encode_items(backbone, encoder, dataset, chunk, device)?);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(Tensor::cat(parts, 0))
}

/// Where the frozen feature table of `spec` on `dataset` is cached under `cache_dir`.
pub fn cache_path(
    cache_dir: &Path,
    spec: &BackboneSpec,
    dataset: &Dataset,
    with_images: bool,
) -> PathBuf {
    let modality = if with_images { "image-text" } else { "text" };
    cache_dir.join("features").join(format!(
        "{}-{}-{}-{}.safetensors",
        spec.name(),
        modality,
        dataset.name,
        &dataset.checksum[..16.min(dataset.checksum.len())]
    ))
}

/// The frozen feature table of `dataset` through `spec`: read from the cache when present (and
/// matching the dataset), else computed and written atomically. Returns the table, the cache
/// file, and whether it was a cache hit.
pub fn frozen_table(
    spec: &BackboneSpec,
    dataset: &Dataset,
    with_images: bool,
    cache_dir: &Path,
    device: &Device,
) -> Result<(Tensor<2>, PathBuf, bool, usize)> {
    let path = cache_path(cache_dir, spec, dataset, with_images);
    let rows = dataset.n_items() + 1;
    if path.exists() {
        let recompute = || format!("{}: delete it to recompute", path.display());
        let table = load_table(&path, device).with_context(recompute)?;
        let shape = table.dims();
        anyhow::ensure!(
            shape[0] == rows,
            "{}: {shape:?} does not fit {} items; delete it to recompute",
            path.display(),
            rows - 1
        );
        let image_dim = read_metadata(&path)?
            .get("image_dim")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        return Ok((table, path, true, image_dim));
    }
    let backbone = Backbone::load(spec, with_images, device)?;
    tracing::info!(
        backbone = spec.name(),
        items = rows - 1,
        "encoding the item table once"
    );
    let table = item_table(&backbone, &backbone.encoder, dataset, device)?;
    let metadata = std::collections::HashMap::from([
        ("backbone".to_string(), spec.name().to_string()),
        ("dataset".to_string(), dataset.name.clone()),
        ("dataset_checksum".to_string(), dataset.checksum.clone()),
        ("image_dim".to_string(), backbone.dims.0.to_string()),
    ]);
    save_tables_with(&path, std::slice::from_ref(&table), metadata)?;
    Ok((table, path, false, backbone.dims.0))
}
