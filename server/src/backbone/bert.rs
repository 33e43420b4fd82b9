//! The text tower all-MiniLM-L6-v2: a BERT encoder (post-LayerNorm, exact GELU) loaded from a
//! Hugging Face directory (`config.json`, `model.safetensors`, `tokenizer.json`), mean-pooled
//! over real tokens and L2-normalised, as sentence-transformers computes it.

use std::path::Path;

use crate::error::{Error, IoContext, Result};
use burn::module::Param;
use burn::nn::LayerNorm;
use burn::prelude::*;
use burn::tensor::activation::gelu;
use burn::tensor::module::embedding;
use serde::Deserialize;

use super::site::{Adaptable, Site, SiteId, SiteKind, Tower};
use super::tokenize::{TextTokenizer, Tokens};
use super::transformer::{SelfAttention, l2_normalize, mean_pool, padding_bias};
use super::weights::WeightFile;

/// The fields of a BERT `config.json` the encoder needs.
#[derive(Clone, Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default = "gelu_name")]
    pub hidden_act: String,
}

fn gelu_name() -> String {
    "gelu".into()
}

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2.
pub const MINILM_MAX_TOKENS: usize = 256;

/// One post-LN encoder layer.
#[derive(Module, Debug)]
pub struct BertLayer {
    pub attention: SelfAttention,
    attn_norm: LayerNorm,
    pub intermediate: Site,
    pub output: Site,
    out_norm: LayerNorm,
}

/// The BERT encoder.
#[derive(Module, Debug)]
pub struct Bert {
    word: Param<Tensor<2>>,
    position: Param<Tensor<2>>,
    token_type: Param<Tensor<2>>,
    emb_norm: LayerNorm,
    pub layers: Vec<BertLayer>,
    hidden: usize,
}

impl BertLayer {
    fn forward(&self, x: Tensor<3>, bias: Tensor<4>) -> Tensor<3> {
        let a = self.attention.forward(x.clone(), Some(bias));
        let x = self.attn_norm.forward(a + x);
        let h = gelu(self.intermediate.forward(x.clone()));
        self.out_norm.forward(self.output.forward(h) + x)
    }
}

impl Bert {
    /// Loads `config.json` and `model.safetensors` from `dir`.
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let config_path = dir.join("config.json");
        let config: BertConfig =
            serde_json::from_str(&std::fs::read_to_string(&config_path).at(&config_path)?)
                .map_err(|e| Error::format(&config_path, format!("not a BERT config: {e}")))?;
        if config.hidden_act != "gelu" {
            return Err(Error::format(
                &config_path,
                format!(
                    "hidden_act {} is not supported (only exact gelu)",
                    config.hidden_act
                ),
            ));
        }
        let mut w = WeightFile::open(&dir.join("model.safetensors"))?;
        let model = Self::from_weights(&mut w, &config, device)?;
        w.finish(|k| k.starts_with("pooler.") || k.starts_with("bert.pooler."))?;
        Ok(model)
    }

    /// Builds the encoder from HF BERT tensor names (with or without a `bert.` prefix).
    pub fn from_weights(w: &mut WeightFile, c: &BertConfig, device: &Device) -> Result<Self> {
        let p = if w.has("bert.embeddings.word_embeddings.weight") {
            "bert."
        } else {
            ""
        };
        let d = c.hidden_size;
        let eps = c.layer_norm_eps;
        let emb = |w: &mut WeightFile, name: &str, rows: usize| {
            w.param(&format!("{p}embeddings.{name}.weight"), [rows, d], device)
        };
        let word = emb(w, "word_embeddings", c.vocab_size)?;
        let position = emb(w, "position_embeddings", c.max_position_embeddings)?;
        let token_type = emb(w, "token_type_embeddings", c.type_vocab_size)?;
        let emb_norm = w.layer_norm(&format!("{p}embeddings.LayerNorm"), d, eps, device)?;
        let layers = (0..c.num_hidden_layers)
            .map(|i| -> Result<BertLayer> {
                let l = format!("{p}encoder.layer.{i}.");
                Ok(BertLayer {
                    attention: SelfAttention::load(
                        w,
                        &l,
                        [
                            "attention.self.query",
                            "attention.self.key",
                            "attention.self.value",
                            "attention.output.dense",
                        ],
                        d,
                        c.num_attention_heads,
                        device,
                    )?,
                    attn_norm: w.layer_norm(
                        &format!("{l}attention.output.LayerNorm"),
                        d,
                        eps,
                        device,
                    )?,
                    intermediate: Site::new(w.linear(
                        &format!("{l}intermediate.dense"),
                        d,
                        c.intermediate_size,
                        true,
                        device,
                    )?),
                    output: Site::new(w.linear(
                        &format!("{l}output.dense"),
                        c.intermediate_size,
                        d,
                        true,
                        device,
                    )?),
                    out_norm: w.layer_norm(&format!("{l}output.LayerNorm"), d, eps, device)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            word,
            position,
            token_type,
            emb_norm,
            layers,
            hidden: d,
        })
    }

    /// Output width.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Hidden states: the embedding output and the output of every layer, each `[B, L, d]`.
    pub fn hidden_states(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Vec<Tensor<3>> {
        let [b, l] = ids.dims();
        let device = ids.device();
        let positions = Tensor::<1, Int>::arange(0..l as i64, &device)
            .reshape([1, l])
            .expand([b, l]);
        let x = embedding(self.word.val(), ids)
            + embedding(self.position.val(), positions)
            + embedding(self.token_type.val(), Tensor::zeros([b, l], &device));
        let mut x = self.emb_norm.forward(x);
        let bias = padding_bias(mask);
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        for layer in &self.layers {
            states.push(x.clone());
            x = layer.forward(x, bias.clone());
        }
        states.push(x);
        states
    }

    /// Sentence embeddings `[B, d]`: mean over real tokens of the last layer, L2-normalised.
    pub fn embed(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<2> {
        let last = self
            .hidden_states(ids, mask.clone())
            .pop()
            .expect("at least the embedding output");
        l2_normalize(mean_pool(last, mask))
    }

    /// Embeds tokenised texts.
    pub fn embed_tokens(&self, tokens: &Tokens, device: &Device) -> Tensor<2> {
        let (ids, mask) = tokens.to_tensors(device);
        self.embed(ids, mask)
    }
}

/// MiniLM's tokenizer from its `tokenizer.json`, as sentence-transformers configures it.
pub fn minilm_tokenizer(dir: &Path) -> Result<TextTokenizer> {
    TextTokenizer::from_file(&dir.join("tokenizer.json"), MINILM_MAX_TOKENS, "[PAD]")
}

impl Adaptable for Bert {
    fn site_ids(&self) -> Vec<SiteId> {
        (0..self.layers.len())
            .flat_map(|i| {
                let mut ids = SelfAttention::site_ids(Tower::Text, i).to_vec();
                for kind in [SiteKind::Fc1, SiteKind::Fc2] {
                    ids.push(SiteId {
                        tower: Tower::Text,
                        layer: i,
                        kind,
                    });
                }
                ids
            })
            .collect()
    }

    fn map_sites(mut self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        let id = |layer, kind| SiteId {
            tower: Tower::Text,
            layer,
            kind,
        };
        self.layers = std::mem::take(&mut self.layers)
            .into_iter()
            .enumerate()
            .map(|(i, l)| BertLayer {
                attention: l.attention.map_sites(Tower::Text, i, f),
                attn_norm: l.attn_norm,
                intermediate: f(id(i, SiteKind::Fc1), l.intermediate),
                output: f(id(i, SiteKind::Fc2), l.output),
                out_norm: l.out_norm,
            })
            .collect();
        self
    }
}
