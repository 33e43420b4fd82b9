//! Where item features come from, and the trainable part that makes them. One enum, so a
//! method's feature source and its PEFT module cannot be mismatched: IDs (no features), a
//! frozen feature table, the backbone with LoRA/(IA)3 adapters in its sites, or IISAN over
//! cached hidden states. The recommender turns features into the item table
//! (`rec::Recommender::table_rows`).

use std::path::PathBuf;

use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::Gradients;

use crate::backbone::site::Site;
use crate::backbone::{Backbone, BackboneSpec, features};
use crate::config::{BackboneChoice, Method, Modality, PeftKind, TrainConfig};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::peft::{self, HiddenStates, IisanBank, Peft};

/// Where a batch's item features come from, with the trainable part it owns.
// one value per run, never in bulk: boxing buys nothing
#[allow(clippy::large_enum_variant)]
pub enum ItemSource {
    /// ID-only: no features.
    Ids,
    /// A cached frozen table `[N+1, D]`, on the training (autodiff) device and on the inner one.
    Frozen { train: Tensor<2>, eval: Tensor<2> },
    /// The backbone (tokenizer, preprocessing and the encoder whose sites hold the trainable
    /// LoRA/(IA)3 adapters); `keep: Some(d)` keeps only the first `d` columns (the image half).
    Adapted {
        backbone: Box<Backbone>,
        keep: Option<usize>,
    },
    /// The trainable IISAN bank over cached per-layer hidden states.
    Iisan {
        train: HiddenStates,
        eval: HiddenStates,
        bank: IisanBank,
    },
}

/// A file the source was built from, by the kind the registry records it under.
pub type SourceArtifact = (&'static str, PathBuf);

/// The backbone a configuration asks for, if its method uses one.
fn backbone_spec(cfg: &TrainConfig) -> Result<Option<BackboneSpec>> {
    if cfg.method == Method::IdOnly {
        return Ok(None);
    }
    Ok(Some(match cfg.backbone {
        BackboneChoice::Minilm => BackboneSpec::minilm(&cfg.weights_dir),
        BackboneChoice::Clip => BackboneSpec::Clip {
            dir: cfg.clip_dir.clone().ok_or_else(|| {
                Error::Invalid(
                    "--backbone clip needs --clip-dir (a Hugging Face CLIP directory)".into(),
                )
            })?,
        },
    }))
}

impl ItemSource {
    /// The source `cfg` asks for on `dataset`: frozen tables and IISAN states are read from the
    /// cache under `cfg.cache_dir` (computed on `inner` and written there when missing), adapters
    /// are initialised on the autodiff `device` with seed `cfg.seed + 7`. Returns the source and
    /// the cache files it used.
    pub fn build(
        cfg: &TrainConfig,
        dataset: &Dataset,
        inner: &Device,
        device: &Device,
    ) -> Result<(Self, Vec<SourceArtifact>)> {
        let spec = backbone_spec(cfg)?;
        let has_images = features::has_images(dataset);
        if cfg.modality == Modality::Image && !has_images {
            return Err(Error::Invalid(format!(
                "--modality image needs a dataset with images; {} has none",
                dataset.name
            )));
        }
        let with_images = has_images && cfg.modality != Modality::Text;
        let image_only = cfg.modality == Modality::Image;
        let Some(spec) = spec else {
            return Ok((Self::Ids, Vec::new()));
        };
        if cfg.method == Method::Frozen {
            let (table, path, hit, image_dim) =
                features::frozen_table(&spec, dataset, with_images, &cfg.cache_dir, inner)?;
            let eval = if image_only {
                table.narrow(1, 0, image_dim)
            } else {
                table
            };
            tracing::info!(path = %path.display(), cached = hit, dims = ?eval.dims(), "frozen item features");
            let train = Tensor::<2>::from_data(eval.to_data(), device);
            return Ok((Self::Frozen { train, eval }, vec![("features", path)]));
        }
        match cfg.peft.kind {
            PeftKind::Iisan => {
                if image_only {
                    return Err(Error::Invalid(
                        "IISAN has no image-only variant here (its image side needs CLIP hidden states)"
                            .into(),
                    ));
                }
                let (eval, path) = peft::hidden_states(&spec, dataset, &cfg.cache_dir, inner)?;
                let train = HiddenStates {
                    text: Tensor::from_data(eval.text.to_data(), device),
                    image: eval
                        .image
                        .as_ref()
                        .map(|t| Tensor::from_data(t.to_data(), device)),
                };
                device.seed(cfg.seed.wrapping_add(7));
                let bank = IisanBank::new(&train, device);
                Ok((
                    Self::Iisan { train, eval, bank },
                    vec![("hidden_states", path)],
                ))
            }
            PeftKind::Lora | PeftKind::Ia3 => {
                let mut backbone = Backbone::load(&spec, with_images, device)?;
                let mut adapter = cfg.peft.clone();
                if cfg.large_global {
                    // K times the parameters at the same LoRA scaling (alpha / r)
                    adapter.rank *= cfg.groups;
                    adapter.alpha *= cfg.groups as f64;
                }
                device.seed(cfg.seed.wrapping_add(7));
                backbone.encoder = peft::attach(backbone.encoder, &adapter, device);
                let keep = image_only.then_some(backbone.dims.0);
                Ok((
                    Self::Adapted {
                        backbone: Box::new(backbone),
                        keep,
                    },
                    Vec::new(),
                ))
            }
        }
    }

    /// Width of a feature row, `None` for IDs.
    pub fn feature_dim(&self) -> Option<usize> {
        match self {
            Self::Ids => None,
            Self::Frozen { eval, .. } => Some(eval.dims()[1]),
            Self::Adapted { backbone, keep } => Some(keep.unwrap_or(backbone.feature_dim())),
            Self::Iisan { eval, .. } => {
                let [_, _, dt] = eval.text.dims();
                Some(peft::iisan::Iisan::output_dim(
                    dt,
                    eval.image.as_ref().map(|t| t.dims()[2]),
                ))
            }
        }
    }

    /// Features of a batch's unique items (`ids`, 0 first; `ids_t` the same on `device`), with
    /// gradients through the trainable part.
    pub fn batch(
        &self,
        dataset: &Dataset,
        ids: &[u32],
        ids_t: Tensor<1, Int>,
        device: &Device,
    ) -> Result<Option<Tensor<2>>> {
        Ok(match self {
            Self::Ids => None,
            Self::Frozen { train, .. } => Some(train.clone().select(0, ids_t)),
            Self::Adapted { backbone, keep } => {
                let f = features::encode_items(backbone, &backbone.encoder, dataset, ids, device)?;
                Some(narrow(f, *keep))
            }
            Self::Iisan { train, bank, .. } => Some(bank.features(train, ids_t)),
        })
    }

    /// Features of every item (row 0 zero) through adapter `group`, in inference mode on
    /// `inner`, for evaluation and serving.
    pub fn all(
        &self,
        group: usize,
        dataset: &Dataset,
        inner: &Device,
    ) -> Result<Option<Tensor<2>>> {
        Ok(match self {
            Self::Ids => None,
            Self::Frozen { eval, .. } => Some(eval.clone()),
            Self::Adapted { backbone, keep } => {
                let encoder = select_sites(backbone.encoder.valid(), group);
                let f = features::item_table(backbone, &encoder, dataset, inner)?;
                Some(narrow(f, *keep))
            }
            Self::Iisan { eval, bank, .. } => {
                let mut bank = bank.valid();
                bank.active = group;
                let rows = dataset.n_items() + 1;
                let ids = Tensor::<1, Int>::arange(0..rows as i64, inner);
                Some(bank.features(eval, ids))
            }
        })
    }

    /// The trainable part as a module (for checkpoints, `adapters.bpk` and parameter counts).
    pub fn peft(&self) -> Option<Peft> {
        match self {
            Self::Ids | Self::Frozen { .. } => None,
            Self::Adapted { backbone, .. } => Some(Peft::Encoder(backbone.encoder.clone())),
            Self::Iisan { bank, .. } => Some(Peft::Iisan(bank.clone())),
        }
    }

    /// Puts back a trainable part taken with [`ItemSource::peft`] (and loaded from a
    /// checkpoint): it has this source's structure by construction.
    pub fn restore(&mut self, peft: Option<Peft>) {
        match (self, peft) {
            (Self::Ids | Self::Frozen { .. }, None) => {}
            (Self::Adapted { backbone, .. }, Some(Peft::Encoder(e))) => backbone.encoder = e,
            (Self::Iisan { bank, .. }, Some(Peft::Iisan(b))) => *bank = b,
            _ => unreachable!("a trainable part is restored into the source it was taken from"),
        }
    }

    /// One AdamW step of the trainable part with `grads`.
    pub fn step(&mut self, optim: &mut ModuleOptimizer, lr: f64, grads: &mut Gradients) {
        match self {
            Self::Ids | Self::Frozen { .. } => {}
            Self::Adapted { backbone, .. } => {
                let g = GradientsParams::from_module(grads, &backbone.encoder);
                backbone.encoder = optim.step(lr, backbone.encoder.clone(), g);
            }
            Self::Iisan { bank, .. } => {
                let g = GradientsParams::from_module(grads, &*bank);
                *bank = optim.step(lr, bank.clone(), g);
            }
        }
    }

    /// Makes adapter `g` of the bank the active one.
    pub fn select(&mut self, g: usize) {
        if let Some(peft) = self.peft() {
            self.restore(Some(peft.select(g)));
        }
    }

    /// Grows the bank to `k` independent copies of adapter 0 (warm start from the global one).
    pub fn replicate(&mut self, k: usize) {
        if let Some(peft) = self.peft() {
            self.restore(Some(peft.replicate(k)));
        }
    }
}

fn narrow(features: Tensor<2>, keep: Option<usize>) -> Tensor<2> {
    match keep {
        Some(d) => features.narrow(1, 0, d),
        None => features,
    }
}

fn select_sites(encoder: crate::backbone::Encoder, g: usize) -> crate::backbone::Encoder {
    use crate::backbone::site::Adaptable;
    encoder.map_sites(&mut |_, s: Site| s.select(g))
}
