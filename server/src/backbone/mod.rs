//! Frozen multimodal foundation models that turn items (title text, image) into feature vectors.
//!
//! Two backbones: `minilm` (the default, fully offline: all-MiniLM-L6-v2 text tower
//! ([`bert`]) + EfficientNet-Lite0 image tower ([`efficientnet`])) and `clip` (the paper's
//! CLIP ViT-B/32, [`clip`], from a user-provided Hugging Face directory). The item feature is
//! `[l2norm(image) ; l2norm(text)]`, image first; a dataset without images gets the text half
//! only (the dimension changes; nothing is filled in). Every tower exposes per-layer hidden
//! states and its adaptable linear maps ([`site`]) for the PEFT methods.

pub mod bert;
pub mod clip;
pub mod efficientnet;
pub mod features;
pub mod preprocess;
pub mod site;
pub mod tokenize;
pub mod transformer;
pub mod weights;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use burn::prelude::*;

use self::bert::Bert;
use self::clip::{Clip, ClipText, ClipVision};
use self::efficientnet::EfficientNet;
pub use self::preprocess::ImagePrep;
use self::site::{Adaptable, Site, SiteId};
use self::tokenize::{TextTokenizer, Tokens};
use self::transformer::l2_normalize;

/// Which backbone, and where its weights are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackboneSpec {
    /// all-MiniLM-L6-v2 from `text_dir` (HF layout) + EfficientNet-Lite0 from `image_weights`.
    MiniLm {
        text_dir: PathBuf,
        image_weights: PathBuf,
    },
    /// CLIP from an HF `openai/clip-vit-base-patch32`-layout directory.
    Clip { dir: PathBuf },
}

impl BackboneSpec {
    /// The default backbone with weights under `weights` (as `scripts/fetch_data.py` lays
    /// them out: `minilm/`, `efficientnet-lite0/efficientnet-lite0-57934424.pth`).
    pub fn minilm(weights: &Path) -> Self {
        Self::MiniLm {
            text_dir: weights.join("minilm"),
            image_weights: weights
                .join("efficientnet-lite0")
                .join("efficientnet-lite0-57934424.pth"),
        }
    }

    /// A short name for records and cache keys.
    pub fn name(&self) -> &'static str {
        match self {
            Self::MiniLm { .. } => "minilm",
            Self::Clip { .. } => "clip",
        }
    }
}

/// The text tower of a backbone.
#[derive(Module, Debug)]
pub enum TextTower {
    MiniLm(Bert),
    Clip(ClipText),
}

/// The image tower of a backbone.
#[derive(Module, Debug)]
// one value per model, never in bulk: boxing buys nothing
#[allow(clippy::large_enum_variant)]
pub enum ImageTower {
    EfficientNet(EfficientNet),
    Clip(ClipVision),
}

impl TextTower {
    /// Normalised text embeddings `[B, d_text]`.
    pub fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<2> {
        match self {
            Self::MiniLm(t) => t.embed(ids, mask),
            Self::Clip(t) => t.embed(ids, mask),
        }
    }

    /// Per-layer hidden states (embedding output first), each `[B, L, d]`.
    pub fn hidden_states(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Vec<Tensor<3>> {
        match self {
            Self::MiniLm(t) => t.hidden_states(ids, mask),
            Self::Clip(t) => t.hidden_states(ids, mask),
        }
    }
}

impl ImageTower {
    /// Normalised image embeddings `[B, d_image]`.
    pub fn embed(&self, pixels: Tensor<4>) -> Tensor<2> {
        match self {
            Self::EfficientNet(t) => l2_normalize(t.features(pixels)),
            Self::Clip(t) => t.embed(pixels),
        }
    }
}

impl Adaptable for TextTower {
    fn site_ids(&self) -> Vec<SiteId> {
        match self {
            Self::MiniLm(t) => t.site_ids(),
            Self::Clip(t) => t.site_ids(),
        }
    }

    fn map_sites(self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        match self {
            Self::MiniLm(t) => Self::MiniLm(t.map_sites(f)),
            Self::Clip(t) => Self::Clip(t.map_sites(f)),
        }
    }
}

impl Adaptable for ImageTower {
    fn site_ids(&self) -> Vec<SiteId> {
        match self {
            Self::EfficientNet(t) => t.site_ids(),
            Self::Clip(t) => t.site_ids(),
        }
    }

    fn map_sites(self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        match self {
            Self::EfficientNet(t) => Self::EfficientNet(t.map_sites(f)),
            Self::Clip(t) => Self::Clip(t.map_sites(f)),
        }
    }
}

/// The item encoder: the towers as one module (what adapters attach to and gradients flow
/// through).
#[derive(Module, Debug)]
pub struct Encoder {
    pub text: TextTower,
    pub image: Option<ImageTower>,
}

impl Adaptable for Encoder {
    fn site_ids(&self) -> Vec<SiteId> {
        let mut ids = self.text.site_ids();
        if let Some(image) = &self.image {
            ids.extend(image.site_ids());
        }
        ids
    }

    fn map_sites(self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        Self {
            text: self.text.map_sites(f),
            image: self.image.map(|i| i.map_sites(f)),
        }
    }
}

/// Inputs of one batch of items, ready for the device.
pub struct ItemInputs {
    pub tokens: Tokens,
    /// `[B, 3, S, S]` when the encoder has an image tower; items without an image are zero
    /// pixels here and are zeroed in the feature (`has_image`).
    pub pixels: Option<Tensor<4>>,
    pub has_image: Vec<bool>,
}

impl Encoder {
    /// Item features `[B, d_image + d_text]` (`[B, d_text]` without an image tower):
    /// `[l2norm(image) ; l2norm(text)]`. An item without an image gets a zero image half.
    pub fn forward(&self, inputs: &ItemInputs, device: &Device) -> Tensor<2> {
        let (ids, mask) = inputs.tokens.to_tensors(device);
        let text = self.text.embed(ids, mask);
        match (&self.image, &inputs.pixels) {
            (Some(tower), Some(pixels)) => {
                let image = tower.embed(pixels.clone());
                let b = inputs.has_image.len();
                let keep: Vec<f32> = inputs.has_image.iter().map(|&h| h as u8 as f32).collect();
                let keep = Tensor::<1>::from_floats(keep.as_slice(), device).reshape([b, 1]);
                Tensor::cat(vec![image * keep, text], 1)
            }
            _ => text,
        }
    }
}

/// A loaded backbone: the encoder module plus its tokenizer and image preprocessing.
pub struct Backbone {
    pub spec: BackboneSpec,
    pub encoder: Encoder,
    pub tokenizer: TextTokenizer,
    pub image_prep: ImagePrep,
    /// Widths of the image half (0 without images) and the text half.
    pub dims: (usize, usize),
}

impl Backbone {
    /// Loads the towers (the image tower only if `with_images`), frozen, on `device`.
    pub fn load(spec: &BackboneSpec, with_images: bool, device: &Device) -> Result<Self> {
        Ok(match spec {
            BackboneSpec::MiniLm {
                text_dir,
                image_weights,
            } => {
                let text = Bert::load(text_dir, device)?;
                let tokenizer = bert::minilm_tokenizer(text_dir)?;
                let d_text = text.hidden();
                let image = if with_images {
                    Some(ImageTower::EfficientNet(EfficientNet::load(
                        image_weights,
                        device,
                    )?))
                } else {
                    None
                };
                Self {
                    spec: spec.clone(),
                    dims: (
                        if with_images {
                            efficientnet::FEATURES
                        } else {
                            0
                        },
                        d_text,
                    ),
                    encoder: Encoder {
                        text: TextTower::MiniLm(text),
                        image,
                    },
                    tokenizer,
                    image_prep: preprocess::EFFICIENTNET,
                }
            }
            BackboneSpec::Clip { dir } => {
                let config = clip::ClipConfig::read(dir)?;
                let model = Clip::load(dir, device)?;
                let tokenizer =
                    clip::clip_tokenizer(dir, config.text_config.max_position_embeddings)?;
                let p = config.projection_dim;
                Self {
                    spec: spec.clone(),
                    dims: (if with_images { p } else { 0 }, p),
                    encoder: Encoder {
                        text: TextTower::Clip(model.text),
                        image: with_images.then_some(ImageTower::Clip(model.vision)),
                    },
                    tokenizer,
                    image_prep: preprocess::CLIP,
                }
            }
        })
    }

    /// Width of an item feature.
    pub fn feature_dim(&self) -> usize {
        self.dims.0 + self.dims.1
    }

    /// Tokenises texts and preprocesses images for one batch (`images` is ignored without an
    /// image tower; otherwise one entry per text).
    pub fn inputs(
        &self,
        texts: &[&str],
        images: &[Option<image::DynamicImage>],
        device: &Device,
    ) -> Result<ItemInputs> {
        let tokens = self.tokenizer.encode(texts)?;
        let (pixels, has_image) = if self.encoder.image.is_some() {
            if images.len() != texts.len() {
                return Err(Error::Invalid(format!(
                    "{} images for {} items: one image slot per item",
                    images.len(),
                    texts.len()
                )));
            }
            let side = self.image_prep.crop;
            let blank = image::RgbImage::new(side, side);
            let cropped: Vec<image::RgbImage> = images
                .iter()
                .map(|i| {
                    i.as_ref()
                        .map_or_else(|| blank.clone(), |i| self.image_prep.crop(i))
                })
                .collect();
            (
                Some(self.image_prep.tensor(&cropped, device)),
                images.iter().map(Option::is_some).collect(),
            )
        } else {
            (None, vec![false; texts.len()])
        };
        Ok(ItemInputs {
            tokens,
            pixels,
            has_image,
        })
    }
}
