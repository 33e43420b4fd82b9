//! Transformer parts the text and vision towers share: multi-head self-attention whose four
//! projections are adapter [`Site`]s, attention biases (padding, causal), pooling and L2
//! normalisation with PyTorch's conventions.

use crate::error::Result;
use burn::prelude::*;
use burn::tensor::activation::softmax;

use super::site::{Site, SiteId, SiteKind, Tower};
use super::weights::WeightFile;

/// What masked attention logits get. Large enough that `exp` underflows to exactly zero, small
/// enough that adding two of them (padding and causal) stays finite.
const MASKED: f32 = -1.0e9;

/// Multi-head self-attention (PyTorch/HF semantics, biases on all four projections).
#[derive(Module, Debug)]
pub struct SelfAttention {
    pub query: Site,
    pub key: Site,
    pub value: Site,
    pub out: Site,
    heads: usize,
}

impl SelfAttention {
    /// Loads the four projections `{prefix}{names[i]}` of width `d`.
    pub fn load(
        w: &mut WeightFile,
        prefix: &str,
        names: [&str; 4],
        d: usize,
        heads: usize,
        device: &Device,
    ) -> Result<Self> {
        let mut site = |n: &str| -> Result<Site> {
            Ok(Site::new(w.linear(
                &format!("{prefix}{n}"),
                d,
                d,
                true,
                device,
            )?))
        };
        Ok(Self {
            query: site(names[0])?,
            key: site(names[1])?,
            value: site(names[2])?,
            out: site(names[3])?,
            heads,
        })
    }

    /// `x`: `[B, L, d]`; `bias`: additive, broadcastable to `[B, heads, L, L]`.
    pub fn forward(&self, x: Tensor<3>, bias: Option<Tensor<4>>) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let h = self.heads;
        let hd = d / h;
        let split = |t: Tensor<3>| t.reshape([b, l, h, hd]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x));
        let mut scores = q
            .matmul(k.swap_dims(2, 3))
            .mul_scalar(1.0 / (hd as f64).sqrt());
        if let Some(bias) = bias {
            scores = scores + bias;
        }
        let ctx = softmax(scores, 3).matmul(v);
        self.out.forward(ctx.swap_dims(1, 2).reshape([b, l, d]))
    }

    pub fn site_ids(tower: Tower, layer: usize) -> [SiteId; 4] {
        [
            SiteKind::Query,
            SiteKind::Key,
            SiteKind::Value,
            SiteKind::Out,
        ]
        .map(|kind| SiteId { tower, layer, kind })
    }

    pub fn map_sites(
        self,
        tower: Tower,
        layer: usize,
        f: &mut dyn FnMut(SiteId, Site) -> Site,
    ) -> Self {
        let id = |kind| SiteId { tower, layer, kind };
        Self {
            query: f(id(SiteKind::Query), self.query),
            key: f(id(SiteKind::Key), self.key),
            value: f(id(SiteKind::Value), self.value),
            out: f(id(SiteKind::Out), self.out),
            heads: self.heads,
        }
    }
}

/// `[B, 1, 1, L]` additive bias from a 0/1 attention mask `[B, L]` (1 = real token).
pub fn padding_bias(mask: Tensor<2>) -> Tensor<4> {
    let [b, l] = mask.dims();
    (mask.neg() + 1.0).mul_scalar(MASKED).reshape([b, 1, 1, l])
}

/// `[1, 1, L, L]` additive causal bias (position t attends to s ≤ t).
pub fn causal_bias(l: usize, device: &Device) -> Tensor<4> {
    // `tril_mask` is true strictly above the diagonal (the future)
    Tensor::<2>::zeros([l, l], device)
        .mask_fill(Tensor::<2, Bool>::tril_mask([l, l], 0, device), MASKED)
        .reshape([1, 1, l, l])
}

/// Mean over real tokens: `[B, L, d]`, mask `[B, L]` → `[B, d]` (sentence-transformers'
/// mean pooling, with its clamp of the token count at 1e-9).
pub fn mean_pool(x: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
    let [b, l, _] = x.dims();
    let m = mask.reshape([b, l, 1]);
    let summed = (x * m.clone()).sum_dim(1).squeeze_dim::<2>(1);
    let count = m.sum_dim(1).squeeze_dim::<2>(1).clamp_min(1e-9);
    summed / count
}

/// Rows scaled to unit L2 norm (`torch.nn.functional.normalize`, eps 1e-12).
pub fn l2_normalize(x: Tensor<2>) -> Tensor<2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// Row `positions[i]` of each `x[i]`: `[B, L, d]`, `[B]` → `[B, d]`.
pub fn take_rows(x: Tensor<3>, positions: Tensor<1, Int>) -> Tensor<2> {
    let [b, _, d] = x.dims();
    let idx = positions.reshape([b, 1, 1]).expand([b, 1, d]);
    x.gather(1, idx).reshape([b, d])
}
