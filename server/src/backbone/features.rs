//! Item feature tables: a dataset's items through a backbone's encoder, one row per internal id
//! with row 0 (padding) the zero vector, as the reference builds its feature buffer. The
//! frozen baseline computes the table once and caches it on disk, keyed by backbone and dataset
//! checksum; PEFT training encodes only a batch's unique items, with gradients
//! ([`encode_items`]).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use burn::prelude::*;
use indicatif::{ProgressBar, ProgressStyle};

use super::{Backbone, BackboneSpec, Encoder};
use crate::data::Dataset;
use crate::store::tables::{load_table, read_metadata, save_tables_with};

/// Items per call when computing a whole catalogue's IISAN hidden states (`peft`).
pub const ENCODE_BATCH: usize = 64;

/// Whether any item of the dataset has an image (decides whether the image tower is used).
pub fn has_images(dataset: &Dataset) -> bool {
    dataset.items.iter().any(|m| m.image.is_some())
}

/// Items per encoder call inside [`encode_items`]. Items are sorted by token count first, so a
/// call pads only to the longest text of its bucket: on MovieLens titles the longest of ~200
/// items is ~2.2x the mean, and the linears' cost is proportional to the padded length.
pub const BUCKET: usize = 32;

/// Features `[ids.len(), D]` of items `ids` through `encoder` (with `backbone`'s tokenizer and
/// preprocessing) on `device`; id 0 gets the zero row. Gradients flow when `device` is an
/// autodiff device and the encoder has trainable adapters. Encoded in buckets of [`BUCKET`]
/// items of similar text length; the attention mask makes the result independent of the
/// bucketing (up to float rounding).
pub fn encode_items(
    backbone: &Backbone,
    encoder: &Encoder,
    dataset: &Dataset,
    ids: &[u32],
    device: &Device,
) -> Result<Tensor<2>> {
    encode_in_buckets(backbone, encoder, dataset, ids, device, |_| {})
}

/// [`encode_items`], calling `done(items)` after each bucket. Images are decoded a bucket at
/// a time, so a whole catalogue never sits decoded in memory.
fn encode_in_buckets(
    backbone: &Backbone,
    encoder: &Encoder,
    dataset: &Dataset,
    ids: &[u32],
    device: &Device,
    mut done: impl FnMut(usize),
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
    let lengths = backbone.tokenizer.lengths(&texts)?;
    let mut order: Vec<usize> = (0..real.len()).collect();
    order.sort_by_key(|&k| lengths[k]);
    let mut parts = Vec::with_capacity(order.len().div_ceil(BUCKET) + 1);
    parts.push(Tensor::zeros([1, d], device));
    for bucket in order.chunks(BUCKET) {
        let t: Vec<&str> = bucket.iter().map(|&k| texts[k]).collect();
        let images = if encoder.image.is_some() {
            bucket
                .iter()
                .map(|&k| {
                    dataset
                        .image(real[k])
                        .map(|o| o.map(image::DynamicImage::ImageRgb8))
                        .map_err(Error::from)
                })
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let inputs = backbone.inputs(&t, &images, device)?;
        parts.push(encoder.forward(&inputs, device));
        done(bucket.len());
    }
    // row 1 + r of `encoded` is real item order[r]; gather back into `ids` order (0 -> row 0)
    let encoded = Tensor::cat(parts, 0);
    let mut row_of = vec![0i64; real.len()];
    for (r, &k) in order.iter().enumerate() {
        row_of[k] = 1 + r as i64;
    }
    let mut rows = row_of.into_iter();
    let index: Vec<i64> = ids
        .iter()
        .map(|&i| {
            if i == 0 {
                0
            } else {
                rows.next().expect("one row per real id")
            }
        })
        .collect();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [ids.len()]), device);
    Ok(encoded.select(0, index))
}

/// The whole table `[n_items + 1, D]` through `encoder` (with `backbone`'s tokenizer and
/// preprocessing): [`encode_items`] over ids 0..=n with a progress bar; row 0 is zero.
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
    let ids: Vec<u32> = (0..=n).collect();
    let table = encode_in_buckets(backbone, encoder, dataset, &ids, device, |k| {
        bar.inc(k as u64)
    })?;
    bar.finish_and_clear();
    Ok(table)
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
        let recompute = |e: Error| Error::format(&path, format!("{e}; delete it to recompute"));
        let table = load_table(&path, device).map_err(recompute)?;
        let shape = table.dims();
        if shape[0] != rows {
            return Err(Error::format(
                &path,
                format!(
                    "{shape:?} does not fit {} items; delete it to recompute",
                    rows - 1
                ),
            ));
        }
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
