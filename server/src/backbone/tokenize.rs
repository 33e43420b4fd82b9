//! Tokenisation with the `tokenizers` crate from a model's own `tokenizer.json`, configured the
//! way the reference pipelines call it: truncation to the model's maximum (special tokens
//! included) and padding to the longest text of the batch, with an attention mask.

use std::path::Path;

use crate::error::{Error, Result};
use burn::prelude::*;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// A loaded tokenizer.
#[derive(Clone, Debug)]
pub struct TextTokenizer {
    inner: Tokenizer,
    max_len: usize,
}

/// Token ids and attention mask of a batch, row-major `[rows, len]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    pub ids: Vec<i64>,
    pub mask: Vec<i64>,
    pub rows: usize,
    pub len: usize,
}

impl Tokens {
    /// `(ids [rows, len] Int, mask [rows, len] Float)` on `device`.
    pub fn to_tensors(&self, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
        let shape = [self.rows, self.len];
        let ids = Tensor::from_data(TensorData::new(self.ids.clone(), shape), device);
        let mask: Vec<f32> = self.mask.iter().map(|&m| m as f32).collect();
        (ids, Tensor::from_data(TensorData::new(mask, shape), device))
    }

    /// Row `r`'s ids.
    pub fn row(&self, r: usize) -> &[i64] {
        &self.ids[r * self.len..(r + 1) * self.len]
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`, truncating at `max_len` tokens and padding with `pad_token`.
    pub fn from_file(path: &Path, max_len: usize, pad_token: &str) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path)
            .map_err(|e| Error::format(path, format!("not a tokenizer.json: {e}")))?;
        let pad_id = inner.token_to_id(pad_token).ok_or_else(|| {
            Error::format(
                path,
                format!("the vocabulary has no padding token {pad_token}"),
            )
        })?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| Error::format(path, e))?;
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: pad_token.to_string(),
            ..Default::default()
        }));
        Ok(Self { inner, max_len })
    }

    /// The longest sequence this tokenizer produces.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// A token's id.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Each text's token count (special tokens included, after truncation, before padding).
    pub fn lengths(&self, texts: &[&str]) -> Result<Vec<usize>> {
        let tokens = self.encode(texts)?;
        Ok((0..tokens.rows)
            .map(|r| {
                tokens.mask[r * tokens.len..(r + 1) * tokens.len]
                    .iter()
                    .filter(|&&m| m != 0)
                    .count()
            })
            .collect())
    }

    /// Tokenises a batch.
    pub fn encode(&self, texts: &[&str]) -> Result<Tokens> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| Error::Compute(format!("tokenising: {e}")))?;
        let len = enc.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(texts.len() * len);
        let mut mask = Vec::with_capacity(texts.len() * len);
        for e in &enc {
            ids.extend(e.get_ids().iter().map(|&i| i as i64));
            mask.extend(e.get_attention_mask().iter().map(|&m| m as i64));
        }
        Ok(Tokens {
            ids,
            mask,
            rows: texts.len(),
            len,
        })
    }
}
