//! Parameter-efficient fine-tuning of the frozen backbone: LoRA and (IA)3 attached to the
//! towers' adapter sites ([`crate::backbone::site`]), IISAN as a side network over cached
//! hidden states ([`iisan`]), and adapter *banks* of K copies (one per user group) of which
//! exactly one is active in a step.
//!
//! Defaults follow docs/method.md §3: LoRA r = 4, alpha = 8, dropout 0.1 on q and v of every
//! attention layer of both towers (on a CNN image tower: its pointwise convolutions); (IA)3
//! on k and v outputs and the input of the first MLP linear; IISAN over 7 hidden states.

pub mod iisan;

use std::path::{Path, PathBuf};

use burn::prelude::*;

use crate::backbone::site::{Adaptable, Site, SiteKind, Tower};
use crate::backbone::{Backbone, BackboneSpec, Encoder, ImageTower, TextTower, features};
pub use crate::config::{PeftConfig, PeftKind};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::params::fork;
use iisan::{IISAN_LAYERS, Iisan};

/// Attaches one LoRA or (IA)3 adapter to the encoder's sites (`Iisan` attaches nothing here).
pub fn attach(encoder: Encoder, cfg: &PeftConfig, device: &Device) -> Encoder {
    let cnn_image = matches!(encoder.image, Some(ImageTower::EfficientNet(_)));
    encoder.map_sites(&mut |id, site: Site| {
        let cnn = cnn_image && id.tower == Tower::Image;
        match cfg.kind {
            PeftKind::Lora => {
                let target = if cnn {
                    // pointwise (1×1) convolutions of the CNN
                    matches!(id.kind, SiteKind::Fc1 | SiteKind::Fc2)
                } else {
                    matches!(id.kind, SiteKind::Query | SiteKind::Value)
                };
                if target {
                    site.with_low_rank(cfg.rank, cfg.alpha, cfg.dropout, device)
                } else {
                    site
                }
            }
            PeftKind::Ia3 => match id.kind {
                SiteKind::Key | SiteKind::Value => site.with_scale_out(device),
                SiteKind::Fc1 => site.with_scale_in(device),
                _ => site,
            },
            PeftKind::Iisan => site,
        }
    })
}

/// The IISAN bank: K side networks, one active.
#[derive(Module, Debug)]
pub struct IisanBank {
    pub modules: Vec<Iisan>,
    pub active: usize,
}

/// The trainable item-encoding part of a PEFT model.
#[derive(Module, Debug)]
// one value per model, never in bulk: boxing buys nothing
#[allow(clippy::large_enum_variant)]
pub enum Peft {
    /// LoRA / (IA)3: adapters inside the encoder's sites.
    Encoder(Encoder),
    /// IISAN over cached hidden states.
    Iisan(IisanBank),
}

impl Peft {
    /// Grows every bank to `k` independent copies of adapter 0 (warm start from the global).
    pub fn replicate(self, k: usize) -> Self {
        match self {
            Self::Encoder(e) => Self::Encoder(e.map_sites(&mut |_, s: Site| s.replicate(k))),
            Self::Iisan(mut b) => {
                let first = b.modules.swap_remove(0);
                let copies: Vec<Iisan> = (1..k).map(|_| fork(&first)).collect();
                b.modules = std::iter::once(first).chain(copies).collect();
                Self::Iisan(b)
            }
        }
    }

    /// Makes adapter `g` active everywhere.
    pub fn select(self, g: usize) -> Self {
        match self {
            Self::Encoder(e) => Self::Encoder(e.map_sites(&mut |_, s: Site| s.select(g))),
            Self::Iisan(mut b) => {
                assert!(g < b.modules.len(), "adapter {g} of {}", b.modules.len());
                b.active = g;
                Self::Iisan(b)
            }
        }
    }

    /// Trainable parameters of one adapter (bank size 1), excluding the frozen backbone.
    pub fn adapter_params(&self) -> usize {
        match self {
            Self::Encoder(e) => {
                let mut n = 0;
                let probe = e.clone().map_sites(&mut |_, s: Site| {
                    n += s.adapter().map_or(0, |a| a.num_params());
                    s
                });
                drop(probe);
                n
            }
            Self::Iisan(b) => b.modules.first().map_or(0, |m| m.num_params()),
        }
    }
}

/// Per-item hidden states for IISAN, row 0 zero: text `[N+1, 7, dt]`, image `[N+1, 7, di]`.
#[derive(Clone, Debug)]
pub struct HiddenStates {
    pub text: Tensor<3>,
    pub image: Option<Tensor<3>>,
}

/// Seven pooled hidden states of a text tower for tokenised items: MiniLM's 7 states
/// (embeddings + 6 layers) mean-pooled over real tokens, as its sentence embedding pools;
/// CLIP's embeddings and every second layer (0, 2, …, 12) at the end-of-text token.
/// Which seven states IISAN reads is not recoverable from the reference (docs/method.md §3.4).
fn text_states(tower: &TextTower, ids: Tensor<2, Int>, mask: Tensor<2>) -> Result<Tensor<3>> {
    let states = tower.hidden_states(ids.clone(), mask.clone());
    let picked: Vec<Tensor<2>> = match tower {
        TextTower::MiniLm(_) => states
            .into_iter()
            .map(|h| crate::backbone::transformer::mean_pool(h, mask.clone()))
            .collect(),
        TextTower::Clip(t) => {
            let eos = t.eos_positions(ids);
            let n = states.len();
            // evenly spaced: ViT-B/32's 13 states give 0, 2, …, 12 (repeats for shallower towers)
            (0..IISAN_LAYERS)
                .map(|i| {
                    let at = (i * (n - 1) + (IISAN_LAYERS - 1) / 2) / (IISAN_LAYERS - 1);
                    crate::backbone::transformer::take_rows(states[at].clone(), eos.clone())
                })
                .collect()
        }
    };
    if picked.len() != IISAN_LAYERS {
        return Err(Error::Invalid(format!(
            "IISAN needs {IISAN_LAYERS} hidden states, the text tower has {}",
            picked.len()
        )));
    }
    Ok(Tensor::stack(picked, 1))
}

/// The IISAN hidden-state cache of `dataset` through `spec` (computed once, no gradients).
pub fn hidden_states(
    spec: &BackboneSpec,
    dataset: &Dataset,
    cache_dir: &Path,
    device: &Device,
) -> Result<(HiddenStates, PathBuf)> {
    let with_images = features::has_images(dataset);
    let path = cache_dir.join("features").join(format!(
        "{}-iisan-v1-{}-{}-{}.safetensors",
        spec.name(),
        if with_images { "image-text" } else { "text" },
        dataset.name,
        &dataset.checksum[..16.min(dataset.checksum.len())]
    ));
    let rows = dataset.n_items() + 1;
    if path.exists() {
        let text = crate::store::tables::load_table(&path, device)?;
        let [_, flat] = text.dims();
        let text = text.reshape([rows, IISAN_LAYERS, flat / IISAN_LAYERS]);
        return Ok((HiddenStates { text, image: None }, path));
    }
    if with_images {
        return Err(Error::Invalid(
            "IISAN with images needs equal-width image hidden states (CLIP); not implemented for cached image states yet".into(),
        ));
    }
    let backbone = Backbone::load(spec, false, device)?;
    let mut parts = Vec::new();
    let ids: Vec<u32> = (1..rows as u32).collect();
    for chunk in ids.chunks(features::ENCODE_BATCH) {
        let texts: Vec<&str> = chunk
            .iter()
            .map(|&i| dataset.item(i).map_or("", |m| m.text.as_str()))
            .collect();
        let (t, m) = backbone.tokenizer.encode(&texts)?.to_tensors(device);
        parts.push(text_states(&backbone.encoder.text, t, m)?);
    }
    let first = &parts[0];
    let [_, _, dt] = first.dims();
    parts.insert(0, Tensor::zeros([1, IISAN_LAYERS, dt], device));
    let text = Tensor::cat(parts, 0);
    crate::store::tables::save_table(&path, text.clone().reshape([rows, IISAN_LAYERS * dt]))?;
    Ok((HiddenStates { text, image: None }, path))
}

impl IisanBank {
    /// One fresh module for the given widths.
    pub fn new(states: &HiddenStates, device: &Device) -> Self {
        let [_, _, dt] = states.text.dims();
        let di = states.image.as_ref().map(|t| t.dims()[2]);
        Self {
            modules: vec![Iisan::new(dt, di, device)],
            active: 0,
        }
    }

    /// Features of items `ids` (0 → zero row) from the cached states.
    pub fn features(&self, states: &HiddenStates, ids: Tensor<1, Int>) -> Tensor<2> {
        let [n] = ids.dims();
        let text = states.text.clone().select(0, ids.clone());
        let image = states.image.clone().map(|t| t.select(0, ids.clone()));
        let out = self.modules[self.active].forward(text, image);
        // the padding item's feature is the zero vector (as for LoRA/(IA)3), in training too
        let keep = ids.not_equal_elem(0).float().reshape([n, 1]);
        out * keep
    }
}
