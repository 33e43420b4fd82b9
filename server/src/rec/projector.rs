//! The multimodal projector of the reference (`MMProjector`, docs/method.md §4):
//! `Linear(in → 64) → LayerNorm(64, eps 1e-8) → ReLU → Linear(64 → d) → LayerNorm(d, eps 1e-8)`,
//! PyTorch's default initialisation. It maps raw item features to SASRec's width; it is applied
//! to every row of the feature table, row 0 (the zero padding feature) included, so
//! `proj(0)` is not zero, exactly as the reference.

use burn::nn::{LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;

/// Width of the projector's hidden layer.
pub const PROJECTOR_HIDDEN: usize = 64;

/// The projector.
#[derive(Module, Debug)]
pub struct Projector {
    fc1: Linear,
    norm1: LayerNorm,
    fc2: Linear,
    norm2: LayerNorm,
}

impl Projector {
    /// A fresh projector from `d_in` to `d_out` (burn's default Linear initialisation is
    /// PyTorch's: weights and biases uniform in ±1/√fan_in).
    pub fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        let ln = |d| LayerNormConfig::new(d).with_epsilon(1e-8).init(device);
        Self {
            fc1: LinearConfig::new(d_in, PROJECTOR_HIDDEN).init(device),
            norm1: ln(PROJECTOR_HIDDEN),
            fc2: LinearConfig::new(PROJECTOR_HIDDEN, d_out).init(device),
            norm2: ln(d_out),
        }
    }

    /// `[N, d_in]` → `[N, d_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = relu(self.norm1.forward(self.fc1.forward(x)));
        self.norm2.forward(self.fc2.forward(h))
    }

    /// Input width.
    pub fn d_in(&self) -> usize {
        self.fc1.weight.val().dims()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_counts_match_the_method_doc() {
        let device = Device::flex();
        // §4: 67,872 for a 1024-d input, 117,024 for IISAN's 1792-d input
        assert_eq!(Projector::new(1024, 32, &device).num_params(), 67_872);
        assert_eq!(Projector::new(1792, 32, &device).num_params(), 117_024);
    }

    #[test]
    fn the_zero_feature_is_not_projected_to_zero() {
        let device = Device::flex();
        device.seed(1);
        let p = Projector::new(8, 4, &device);
        let out = p.forward(Tensor::zeros([1, 8], &device));
        let norm: f32 = out.powi_scalar(2).sum().into_scalar();
        assert!(norm > 0.1, "LayerNorm of the bias path: {norm}");
    }
}
