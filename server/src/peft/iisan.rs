//! IISAN (docs/method.md §3.4): a decoupled side network over per-layer hidden states of both
//! towers, cached once per item, so training never runs the backbone. Seven layers, bottleneck
//! 32, exact GELU, block weights and biases from N(0, 1e-4), `CombProj` with PyTorch's default
//! initialisation, gate logits `W ∈ R^{3×7}` at 0 (every gate starts at 0.5). Output
//! `[zt ; zi ; zc]` (text, image, inter). Without an image tower (MovieLens) only the text
//! chain exists and the output is `zt`.

use burn::module::Param;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, sigmoid};

/// Hidden states IISAN reads per tower.
pub const IISAN_LAYERS: usize = 7;
/// Bottleneck width of the IISAN blocks.
pub const IISAN_BOTTLENECK: usize = 32;

/// `Linear(d → 32) → GELU → Linear(32 → d)`, all weights and biases N(0, 1e-4).
#[derive(Module, Debug)]
pub struct Bottleneck {
    down: Linear,
    up: Linear,
}

impl Bottleneck {
    fn new(d: usize, device: &Device) -> Self {
        let init = Initializer::Normal {
            mean: 0.0,
            std: 1e-4,
        };
        let linear = |i, o| {
            let mut l = LinearConfig::new(i, o)
                .with_initializer(init.clone())
                .init(device);
            l.bias = Some(init.init_with([o], Some(i), Some(o), device));
            l
        };
        Self {
            down: linear(d, IISAN_BOTTLENECK),
            up: linear(IISAN_BOTTLENECK, d),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.up.forward(gelu(self.down.forward(x)))
    }
}

/// One IISAN module.
#[derive(Module, Debug)]
pub struct Iisan {
    text: Vec<Bottleneck>,
    image: Vec<Bottleneck>,
    inter: Vec<Bottleneck>,
    comb: Vec<Linear>,
    /// Gate logits `[3, 7]`: rows text, image, inter.
    gates: Param<Tensor<2>>,
}

impl Iisan {
    /// A fresh module for text width `dt` and, if present, image width `di`.
    pub fn new(dt: usize, di: Option<usize>, device: &Device) -> Self {
        let n = IISAN_LAYERS;
        let (image, inter, comb) = match di {
            Some(di) => (
                (0..n).map(|_| Bottleneck::new(di, device)).collect(),
                (0..n).map(|_| Bottleneck::new(dt, device)).collect(),
                (0..n)
                    .map(|_| LinearConfig::new(di, dt).init(device))
                    .collect(),
            ),
            None => (Vec::new(), Vec::new(), Vec::new()),
        };
        Self {
            text: (0..n).map(|_| Bottleneck::new(dt, device)).collect(),
            image,
            inter,
            comb,
            gates: Param::from_tensor(Tensor::zeros([3, n], device)),
        }
    }

    /// `text`: `[B, 7, dt]`; `image`: `[B, 7, di]` when the module has an image side.
    /// Returns `[B, dt + di + dt]` (or `[B, dt]` text-only).
    pub fn forward(&self, text: Tensor<3>, image: Option<Tensor<3>>) -> Tensor<2> {
        let [b, n, dt] = text.dims();
        let w = sigmoid(self.gates.val());
        let gate = |row: usize, i: usize| w.clone().slice([row..row + 1, i..i + 1]).reshape([1, 1]);
        let layer = |x: &Tensor<3>, i: usize| {
            let [_, _, d] = x.dims();
            x.clone().narrow(1, i, 1).reshape([b, d])
        };
        let mut zt = layer(&text, 0);
        let with_image = image.filter(|_| !self.image.is_empty());
        let mut zi = with_image.as_ref().map(|im| layer(im, 0));
        let mut zc = with_image.as_ref().map(|im| {
            let g = gate(2, 0);
            layer(&text, 0) * g.clone() + self.comb[0].forward(layer(im, 0)) * (g.neg() + 1.0)
        });
        for i in 0..n {
            if i > 0 {
                let g = gate(0, i);
                zt = zt * g.clone() + layer(&text, i) * (g.neg() + 1.0);
                if let (Some(im), Some(zi_), Some(zc_)) = (&with_image, zi.take(), zc.take()) {
                    let g = gate(1, i);
                    zi = Some(zi_ * g.clone() + layer(im, i) * (g.neg() + 1.0));
                    let g = gate(2, i);
                    zc = Some(
                        layer(&text, i) * g.clone()
                            + self.comb[i].forward(layer(im, i)) * (g.neg() + 1.0)
                            + zc_,
                    );
                }
            }
            zt = self.text[i].forward(zt.clone()) + zt;
            if let (Some(zi_), Some(zc_)) = (zi.take(), zc.take()) {
                zi = Some(self.image[i].forward(zi_.clone()) + zi_);
                zc = Some(self.inter[i].forward(zc_.clone()) + zc_);
            }
        }
        let _ = dt;
        match (zi, zc) {
            (Some(zi), Some(zc)) => Tensor::cat(vec![zt, zi, zc], 1),
            _ => zt,
        }
    }

    /// Output width.
    pub fn output_dim(dt: usize, di: Option<usize>) -> usize {
        di.map_or(dt, |di| dt + di + dt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_count_matches_the_method_doc() {
        // §3.4: 7 × (49,952 + 33,312 + 33,312 + 393,728) + 21 = 3,572,149 for CLIP (512, 768)
        let device = Device::flex();
        assert_eq!(Iisan::new(512, Some(768), &device).num_params(), 3_572_149);
    }

    #[test]
    fn gates_start_at_one_half_and_blocks_near_identity() {
        let device = Device::flex();
        device.seed(1);
        let m = Iisan::new(8, None, &device);
        // tiny blocks: zt ≈ the gated mixture of layers with weights 0.5
        let text = Tensor::<3>::ones([2, IISAN_LAYERS, 8], &device);
        let out: Vec<f32> = m.forward(text, None).into_data().iter::<f32>().collect();
        assert!(out.iter().all(|v| (v - 1.0).abs() < 1e-2), "{out:?}");
    }
}
