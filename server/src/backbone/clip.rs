//! The paper's backbone, CLIP (ViT-B/32 by default), loaded from a directory in the Hugging Face
//! `openai/clip-vit-base-patch32` layout (`config.json`, `model.safetensors`, `tokenizer.json`).
//! Both towers are pre-LayerNorm transformers with quick-GELU MLPs; the vision tower pools the
//! class token after `post_layernorm`, the text tower the end-of-text token after the final
//! LayerNorm (causal attention plus padding mask); both project (no bias) and L2-normalise, as
//! `CLIPModel.forward` returns `image_embeds` and `text_embeds`.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::{conv2d, embedding};
use burn::tensor::ops::ConvOptions;
use serde::Deserialize;

use super::site::{Adaptable, Site, SiteId, SiteKind, Tower};
use super::tokenize::TextTokenizer;
use super::transformer::{SelfAttention, causal_bias, l2_normalize, padding_bias, take_rows};
use super::weights::WeightFile;

/// `CLIPTextConfig` (fields absent from `config.json` take the transformers defaults).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ClipTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub max_position_embeddings: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    pub eos_token_id: i64,
}

impl Default for ClipTextConfig {
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
            eos_token_id: 49407,
        }
    }
}

/// `CLIPVisionConfig` with the transformers defaults (ViT-B/32).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ClipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
}

impl Default for ClipVisionConfig {
    fn default() -> Self {
        Self {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            image_size: 224,
            patch_size: 32,
            num_channels: 3,
            hidden_act: "quick_gelu".into(),
            layer_norm_eps: 1e-5,
        }
    }
}

/// `CLIPConfig`: the default is openai/clip-vit-base-patch32.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ClipConfig {
    pub text_config: ClipTextConfig,
    pub vision_config: ClipVisionConfig,
    pub projection_dim: usize,
}

impl Default for ClipConfig {
    fn default() -> Self {
        Self {
            text_config: ClipTextConfig::default(),
            vision_config: ClipVisionConfig::default(),
            projection_dim: 512,
        }
    }
}

fn quick_gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone() * sigmoid(x.mul_scalar(1.702))
}

/// One pre-LN encoder layer.
#[derive(Module, Debug)]
pub struct ClipLayer {
    norm1: LayerNorm,
    pub attention: SelfAttention,
    norm2: LayerNorm,
    pub fc1: Site,
    pub fc2: Site,
}

impl ClipLayer {
    #[allow(clippy::too_many_arguments)]
    fn load(
        w: &mut WeightFile,
        prefix: &str,
        d: usize,
        inter: usize,
        heads: usize,
        eps: f64,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            norm1: w.layer_norm(&format!("{prefix}layer_norm1"), d, eps, device)?,
            attention: SelfAttention::load(
                w,
                &format!("{prefix}self_attn."),
                ["q_proj", "k_proj", "v_proj", "out_proj"],
                d,
                heads,
                device,
            )?,
            norm2: w.layer_norm(&format!("{prefix}layer_norm2"), d, eps, device)?,
            fc1: Site::new(w.linear(&format!("{prefix}mlp.fc1"), d, inter, true, device)?),
            fc2: Site::new(w.linear(&format!("{prefix}mlp.fc2"), inter, d, true, device)?),
        })
    }

    /// `{prefix}encoder.layers.{0..n}`; `dims` = [width, MLP width, heads].
    fn load_all(
        w: &mut WeightFile,
        prefix: &str,
        n: usize,
        [d, inter, heads]: [usize; 3],
        eps: f64,
        device: &Device,
    ) -> Result<Vec<Self>> {
        (0..n)
            .map(|i| {
                let p = format!("{prefix}encoder.layers.{i}.");
                Self::load(w, &p, d, inter, heads, eps, device)
            })
            .collect()
    }

    fn forward(&self, x: Tensor<3>, bias: Option<Tensor<4>>) -> Tensor<3> {
        let x = x.clone() + self.attention.forward(self.norm1.forward(x), bias);
        let h = quick_gelu(self.fc1.forward(self.norm2.forward(x.clone())));
        x + self.fc2.forward(h)
    }

    fn map_sites(
        self,
        tower: Tower,
        layer: usize,
        f: &mut dyn FnMut(SiteId, Site) -> Site,
    ) -> Self {
        let id = |kind| SiteId { tower, layer, kind };
        Self {
            norm1: self.norm1,
            attention: self.attention.map_sites(tower, layer, f),
            norm2: self.norm2,
            fc1: f(id(SiteKind::Fc1), self.fc1),
            fc2: f(id(SiteKind::Fc2), self.fc2),
        }
    }
}

fn layer_site_ids(tower: Tower, layers: usize) -> Vec<SiteId> {
    (0..layers)
        .flat_map(|i| {
            let mut ids = SelfAttention::site_ids(tower, i).to_vec();
            ids.extend([SiteKind::Fc1, SiteKind::Fc2].map(|kind| SiteId {
                tower,
                layer: i,
                kind,
            }));
            ids
        })
        .collect()
}

/// CLIP's text tower with its projection.
#[derive(Module, Debug)]
pub struct ClipText {
    token: Param<Tensor<2>>,
    position: Param<Tensor<2>>,
    pub layers: Vec<ClipLayer>,
    final_norm: LayerNorm,
    projection: Linear,
    eos_token_id: i64,
}

/// CLIP's vision tower with its projection.
#[derive(Module, Debug)]
pub struct ClipVision {
    class: Param<Tensor<1>>,
    patch: Param<Tensor<4>>,
    position: Param<Tensor<2>>,
    pre_norm: LayerNorm,
    pub layers: Vec<ClipLayer>,
    post_norm: LayerNorm,
    projection: Linear,
    patch_size: usize,
}

/// The CLIP model (both towers; `logit_scale` is loaded and counted but unused).
#[derive(Module, Debug)]
pub struct Clip {
    pub text: ClipText,
    pub vision: ClipVision,
    logit_scale: Param<Tensor<1>>,
}

impl ClipText {
    fn load(w: &mut WeightFile, c: &ClipTextConfig, proj: usize, device: &Device) -> Result<Self> {
        if c.hidden_act != "quick_gelu" {
            return Err(Error::Invalid(format!(
                "CLIP text hidden_act {} is not supported (only quick_gelu)",
                c.hidden_act
            )));
        }
        let d = c.hidden_size;
        let p = "text_model.";
        Ok(Self {
            token: w.param(
                &format!("{p}embeddings.token_embedding.weight"),
                [c.vocab_size, d],
                device,
            )?,
            position: w.param(
                &format!("{p}embeddings.position_embedding.weight"),
                [c.max_position_embeddings, d],
                device,
            )?,
            layers: ClipLayer::load_all(
                w,
                p,
                c.num_hidden_layers,
                [d, c.intermediate_size, c.num_attention_heads],
                c.layer_norm_eps,
                device,
            )?,
            final_norm: w.layer_norm(
                &format!("{p}final_layer_norm"),
                d,
                c.layer_norm_eps,
                device,
            )?,
            projection: w.linear("text_projection", d, proj, false, device)?,
            eos_token_id: c.eos_token_id,
        })
    }

    /// Hidden states (embedding output, then every layer), each `[B, L, d]`, before the final
    /// LayerNorm (as HF's `hidden_states`).
    pub fn hidden_states(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Vec<Tensor<3>> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device)
            .reshape([1, l])
            .expand([b, l]);
        let mut x = embedding(self.token.val(), ids) + embedding(self.position.val(), positions);
        let bias = causal_bias(l, &device) + padding_bias(mask);
        let mut states = vec![x.clone()];
        for layer in &self.layers {
            x = layer.forward(x, Some(bias.clone()));
            states.push(x.clone());
        }
        states
    }

    /// Where each row's end-of-text token is: the first `eos_token_id`, or, for configs with the
    /// legacy `eos_token_id == 2` (as openai/clip-vit-base-patch32 ships), the highest id.
    pub fn eos_positions(&self, ids: Tensor<2, Int>) -> Tensor<1, Int> {
        let [b, _] = ids.dims();
        let pos = if self.eos_token_id == 2 {
            ids.argmax(1)
        } else {
            ids.equal_elem(self.eos_token_id).int().argmax(1)
        };
        pos.reshape([b])
    }

    /// Text embeddings `[B, projection]`, L2-normalised.
    pub fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<2> {
        let eos = self.eos_positions(ids.clone());
        let last = self
            .hidden_states(ids, mask)
            .pop()
            .expect("embedding output");
        let pooled = take_rows(self.final_norm.forward(last), eos);
        l2_normalize(self.projection.forward(pooled))
    }
}

impl ClipVision {
    fn load(
        w: &mut WeightFile,
        c: &ClipVisionConfig,
        proj: usize,
        device: &Device,
    ) -> Result<Self> {
        if c.hidden_act != "quick_gelu" {
            return Err(Error::Invalid(format!(
                "CLIP vision hidden_act {} is not supported (only quick_gelu)",
                c.hidden_act
            )));
        }
        let d = c.hidden_size;
        let p = "vision_model.";
        let grid = c.image_size / c.patch_size;
        Ok(Self {
            class: w.param(&format!("{p}embeddings.class_embedding"), [d], device)?,
            patch: w.param(
                &format!("{p}embeddings.patch_embedding.weight"),
                [d, c.num_channels, c.patch_size, c.patch_size],
                device,
            )?,
            position: w.param(
                &format!("{p}embeddings.position_embedding.weight"),
                [grid * grid + 1, d],
                device,
            )?,
            pre_norm: w.layer_norm(&format!("{p}pre_layrnorm"), d, c.layer_norm_eps, device)?,
            layers: ClipLayer::load_all(
                w,
                p,
                c.num_hidden_layers,
                [d, c.intermediate_size, c.num_attention_heads],
                c.layer_norm_eps,
                device,
            )?,
            post_norm: w.layer_norm(&format!("{p}post_layernorm"), d, c.layer_norm_eps, device)?,
            projection: w.linear("visual_projection", d, proj, false, device)?,
            patch_size: c.patch_size,
        })
    }

    /// Hidden states (the pre-LayerNormed embeddings, then every layer), each `[B, 1 + P, d]`.
    /// Input: normalised pixels `[B, 3, S, S]`.
    pub fn hidden_states(&self, pixels: Tensor<4>) -> Vec<Tensor<3>> {
        let [b, _, _, _] = pixels.dims();
        let p = self.patch_size;
        let patches = conv2d(
            pixels,
            self.patch.val(),
            None,
            ConvOptions::new([p, p], [0, 0], [1, 1], 1),
        );
        let [_, d, gh, gw] = patches.dims();
        let patches = patches.reshape([b, d, gh * gw]).swap_dims(1, 2);
        let class = self.class.val().reshape([1, 1, d]).expand([b, 1, d]);
        let x = Tensor::cat(vec![class, patches], 1) + self.position.val().unsqueeze();
        let mut x = self.pre_norm.forward(x);
        let mut states = vec![x.clone()];
        for layer in &self.layers {
            x = layer.forward(x, None);
            states.push(x.clone());
        }
        states
    }

    /// Image embeddings `[B, projection]`, L2-normalised.
    pub fn embed(&self, pixels: Tensor<4>) -> Tensor<2> {
        let last = self.hidden_states(pixels).pop().expect("embedding output");
        let [b, _, d] = last.dims();
        let cls = last.narrow(1, 0, 1).reshape([b, d]);
        l2_normalize(self.projection.forward(self.post_norm.forward(cls)))
    }
}

impl Clip {
    /// Loads `config.json` and `model.safetensors` from an HF CLIP directory.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config = ClipConfig::read(dir)?;
        let mut w = WeightFile::open(&dir.join("model.safetensors"))?;
        let model = Self::from_weights(&mut w, &config, device)?;
        w.finish(|_| false)?;
        Ok(model)
    }

    /// Builds the model from HF CLIP tensor names.
    pub fn from_weights(w: &mut WeightFile, c: &ClipConfig, device: &Device) -> Result<Self> {
        Ok(Self {
            text: ClipText::load(w, &c.text_config, c.projection_dim, device)?,
            vision: ClipVision::load(w, &c.vision_config, c.projection_dim, device)?,
            logit_scale: w.param("logit_scale", [1], device).or_else(|_| {
                // stored as a 0-d tensor
                w.values("logit_scale", &[]).map(|v| {
                    Param::from_tensor(Tensor::from_data(TensorData::new(v, [1]), device))
                        .set_require_grad(false)
                })
            })?,
        })
    }
}

impl ClipConfig {
    /// `dir/config.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        serde_json::from_str(&std::fs::read_to_string(&path).at(&path)?)
            .map_err(|e| Error::format(&path, format!("not a CLIP config: {e}")))
    }
}

/// CLIP's tokenizer from `dir/tokenizer.json` (77 tokens, padded with `<|endoftext|>`).
pub fn clip_tokenizer(dir: &Path, max_len: usize) -> Result<TextTokenizer> {
    TextTokenizer::from_file(&dir.join("tokenizer.json"), max_len, "<|endoftext|>")
}

fn map_layers(
    layers: Vec<ClipLayer>,
    tower: Tower,
    f: &mut dyn FnMut(SiteId, Site) -> Site,
) -> Vec<ClipLayer> {
    layers
        .into_iter()
        .enumerate()
        .map(|(i, l)| l.map_sites(tower, i, f))
        .collect()
}

impl Adaptable for ClipText {
    fn site_ids(&self) -> Vec<SiteId> {
        layer_site_ids(Tower::Text, self.layers.len())
    }

    fn map_sites(mut self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        self.layers = map_layers(std::mem::take(&mut self.layers), Tower::Text, f);
        self
    }
}

impl Adaptable for ClipVision {
    fn site_ids(&self) -> Vec<SiteId> {
        layer_site_ids(Tower::Image, self.layers.len())
    }

    fn map_sites(mut self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        self.layers = map_layers(std::mem::take(&mut self.layers), Tower::Image, f);
        self
    }
}

impl Adaptable for Clip {
    fn site_ids(&self) -> Vec<SiteId> {
        let mut ids = self.text.site_ids();
        ids.extend(self.vision.site_ids());
        ids
    }

    fn map_sites(self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        Self {
            text: self.text.map_sites(f),
            vision: self.vision.map_sites(f),
            logit_scale: self.logit_scale,
        }
    }
}
