//! The adapter seam: every linear map of a tower that a PEFT method may adapt (attention q, k,
//! v, out; the MLP's two linears; a CNN's pointwise convolutions) is a [`Site`]. A site holds
//! the frozen pretrained weight and, optionally, what an adapter attaches to it: a low-rank
//! update (LoRA), a scaling of its input or of its output ((IA)3). Towers expose their sites
//! through [`Adaptable`], so `peft` attaches adapters by mapping over sites, never by copying
//! tower code.

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

/// Which tower a site belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tower {
    Text,
    Image,
}

/// What a site is inside its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SiteKind {
    /// Attention query projection (`q_proj`, BERT `query`).
    Query,
    /// Attention key projection.
    Key,
    /// Attention value projection.
    Value,
    /// Attention output projection (`out_proj`, BERT `attention.output.dense`).
    Out,
    /// First MLP linear (`fc1`, BERT `intermediate.dense`); a CNN block's expansion 1×1 conv.
    Fc1,
    /// Second MLP linear (`fc2`, BERT `output.dense`); a CNN block's projection 1×1 conv.
    Fc2,
}

/// Where a site is: tower, layer (block) index, kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SiteId {
    pub tower: Tower,
    pub layer: usize,
    pub kind: SiteKind,
}

/// A low-rank update `scaling · B·A·dropout(x)`; `a`: `[d_in, r]`, `b`: `[r, d_out]` (burn's
/// row layout, i.e. PyTorch's `lora_A.weight` and `lora_B.weight` transposed).
#[derive(Module, Debug)]
pub struct LowRank {
    pub a: Param<Tensor<2>>,
    pub b: Param<Tensor<2>>,
    pub scaling: f64,
    pub dropout: Dropout,
}

impl LowRank {
    /// A fresh update of rank `r`: `a` kaiming-uniform with a = √5 (bound `1/√d_in`, PyTorch's
    /// `nn.Linear` default, which PEFT uses for `lora_A`), `b` zero, so the site starts exactly
    /// at the pretrained map. `scaling` = alpha / r.
    pub fn new(
        d_in: usize,
        d_out: usize,
        r: usize,
        alpha: f64,
        dropout: f64,
        device: &Device,
    ) -> Self {
        let bound = 1.0 / (d_in as f64).sqrt();
        Self {
            a: Param::from_tensor(Tensor::random(
                [d_in, r],
                burn::tensor::Distribution::Uniform(-bound, bound),
                device,
            )),
            b: Param::from_tensor(Tensor::zeros([r, d_out], device)),
            scaling: alpha / r as f64,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        self.dropout
            .forward(x)
            .matmul(self.a.val().unsqueeze())
            .matmul(self.b.val().unsqueeze())
            .mul_scalar(self.scaling)
    }
}

/// What one adapter attaches to one site: a LoRA update and/or (IA)3 scalings.
#[derive(Module, Debug)]
pub struct SiteAdapter {
    /// LoRA update added to the output.
    pub low_rank: Option<LowRank>,
    /// (IA)3 scaling of the input (`[d_in]`; used on MLP first linears).
    pub scale_in: Option<Param<Tensor<1>>>,
    /// (IA)3 scaling of the output (`[d_out]`; used on k and v).
    pub scale_out: Option<Param<Tensor<1>>>,
}

impl SiteAdapter {
    fn empty() -> Self {
        Self {
            low_rank: None,
            scale_in: None,
            scale_out: None,
        }
    }
}

/// One adaptable linear map: the frozen pretrained weight plus a bank of adapters, of which
/// one (`active`) is applied. A bank of K holds one adapter per user group over one backbone;
/// only the active adapter takes part in a forward pass, so only it gets gradients (and weight
/// decay) in a step.
#[derive(Module, Debug)]
pub struct Site {
    /// The pretrained map (frozen: its parameters do not require gradients).
    pub base: Linear,
    /// The adapters (empty: the pretrained map alone).
    pub adapters: Vec<SiteAdapter>,
    /// Index of the adapter in use.
    pub active: usize,
}

impl Site {
    /// A site with no adapter.
    pub fn new(base: Linear) -> Self {
        Self {
            base,
            adapters: Vec::new(),
            active: 0,
        }
    }

    /// `[d_in, d_out]`.
    pub fn dims(&self) -> [usize; 2] {
        self.base.weight.val().dims()
    }

    /// The adapter in use, if any.
    pub fn adapter(&self) -> Option<&SiteAdapter> {
        self.adapters.get(self.active)
    }

    fn edit_first(mut self, f: impl FnOnce(&mut SiteAdapter)) -> Self {
        if self.adapters.is_empty() {
            self.adapters.push(SiteAdapter::empty());
        }
        f(&mut self.adapters[0]);
        self
    }

    /// This site with a fresh LoRA update of rank `r` ([`LowRank::new`]) in its first adapter.
    pub fn with_low_rank(self, r: usize, alpha: f64, dropout: f64, device: &Device) -> Self {
        let [d_in, d_out] = self.dims();
        self.edit_first(|a| a.low_rank = Some(LowRank::new(d_in, d_out, r, alpha, dropout, device)))
    }

    /// This site with an (IA)3 input scaling (initialised to ones) in its first adapter.
    pub fn with_scale_in(self, device: &Device) -> Self {
        let [d_in, _] = self.dims();
        self.edit_first(|a| a.scale_in = Some(Param::from_tensor(Tensor::ones([d_in], device))))
    }

    /// This site with an (IA)3 output scaling (initialised to ones) in its first adapter.
    pub fn with_scale_out(self, device: &Device) -> Self {
        let [_, d_out] = self.dims();
        self.edit_first(|a| a.scale_out = Some(Param::from_tensor(Tensor::ones([d_out], device))))
    }

    /// The bank grown to `k` adapters, each an independent copy of adapter 0 (warm start).
    pub fn replicate(mut self, k: usize) -> Self {
        if let Some(first) = self.adapters.first() {
            let copies: Vec<SiteAdapter> = (1..k).map(|_| crate::params::fork(first)).collect();
            self.adapters.truncate(1);
            self.adapters.extend(copies);
        }
        self
    }

    /// Makes adapter `g` the one in use.
    pub fn select(mut self, g: usize) -> Self {
        assert!(
            self.adapters.is_empty() || g < self.adapters.len(),
            "adapter {g} of {}",
            self.adapters.len()
        );
        self.active = g;
        self
    }

    /// Applies the site to `[..., d_in]`. The leading dimensions are folded into one, so the
    /// maps are single `[rows, d_in] @ [d_in, d_out]` products (a batched product of many small
    /// ones is several times slower on the CPU backend; docs/PERFORMANCE.md).
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if D > 2 {
            let dims = x.dims();
            let rows = dims[..D - 1].iter().product();
            let y = self.forward_rows(x.reshape([rows, dims[D - 1]]));
            let mut out = dims;
            out[D - 1] = y.dims()[1];
            return y.reshape(out);
        }
        self.forward_rows(x)
    }

    fn forward_rows<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let Some(ad) = self.adapter() else {
            return self.base.forward(x);
        };
        let x = match &ad.scale_in {
            Some(s) => x * s.val().unsqueeze(),
            None => x,
        };
        let mut y = match &ad.low_rank {
            Some(lr) => self.base.forward(x.clone()) + lr.forward(x),
            None => self.base.forward(x),
        };
        if let Some(s) = &ad.scale_out {
            y = y * s.val().unsqueeze();
        }
        y
    }

    /// Applies the site as a 1×1 convolution to `[B, d_in, H, W]`.
    pub fn forward_pointwise(&self, x: Tensor<4>) -> Tensor<4> {
        let [d_in, d_out] = self.dims();
        let as_kernel = |w: Tensor<2>| {
            let [i, o] = w.dims();
            w.transpose().reshape([o, i, 1, 1])
        };
        let channels = |v: Tensor<1>, n: usize| v.reshape([1, n, 1, 1]);
        let opts = || ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
        let bias = self.base.bias.as_ref().map(|b| b.val());
        let Some(ad) = self.adapter() else {
            return conv2d(x, as_kernel(self.base.weight.val()), bias, opts());
        };
        let x = match &ad.scale_in {
            Some(s) => x * channels(s.val(), d_in),
            None => x,
        };
        let mut y = conv2d(x.clone(), as_kernel(self.base.weight.val()), bias, opts());
        if let Some(lr) = &ad.low_rank {
            let h = conv2d(lr.dropout.forward(x), as_kernel(lr.a.val()), None, opts());
            y = y + conv2d(h, as_kernel(lr.b.val()), None, opts()).mul_scalar(lr.scaling);
        }
        if let Some(s) = &ad.scale_out {
            y = y * channels(s.val(), d_out);
        }
        y
    }
}

/// A tower whose adaptable linear maps can be enumerated and replaced.
pub trait Adaptable: Sized {
    /// Every site, in a fixed order.
    fn site_ids(&self) -> Vec<SiteId>;
    /// Rebuilds the tower with each site passed through `f`.
    fn map_sites(self, f: &mut dyn FnMut(SiteId, Site) -> Site) -> Self;
}

/// Passes the sites that `select` picks through `adapt`; returns the model and how many sites
/// were adapted.
pub fn attach<M: Adaptable>(
    model: M,
    select: impl Fn(SiteId) -> bool,
    mut adapt: impl FnMut(Site) -> Site,
) -> (M, usize) {
    let mut count = 0;
    let model = model.map_sites(&mut |id, site| {
        if select(id) {
            count += 1;
            adapt(site)
        } else {
            site
        }
    });
    (model, count)
}
