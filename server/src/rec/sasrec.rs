//! SASRec as the PerPEFT reference implements it (docs/method.md §5), quirks included:
//! no padding mask, attention residual from the layer-normalised query, key/value from the
//! un-normalised input, dropout before the ReLU in the feed-forward block, LayerNorm eps 1e-8,
//! absolute right-aligned positions `1..=L` with position 0 for padding. `Mode::Standard`
//! instead masks padding as the original SASRec does (padded slots zeroed after the embedding
//! and after every block) and also never attends to padded keys.

use burn::module::Param;
use burn::nn::{
    Dropout, DropoutConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig,
};
use burn::prelude::*;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::embedding;

pub use crate::config::SasRecConfig;
pub use shared::sasrec::Mode;

/// Causal multi-head attention with PyTorch `nn.MultiheadAttention` semantics.
#[derive(Module, Debug)]
pub struct CausalAttention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    dropout: Dropout,
    heads: usize,
}

/// One pre-LN transformer block.
#[derive(Module, Debug)]
pub struct Block {
    attn_norm: LayerNorm,
    attn: CausalAttention,
    ffn_norm: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    dropout: Dropout,
}

/// The SASRec sequential recommender.
#[derive(Module, Debug)]
pub struct SasRec {
    /// ID embeddings `E_id`, `[n_items + 1, hidden]`; row 0 is held at zero.
    pub item_emb: Param<Tensor<2>>,
    /// Position embeddings, `[max_len + 1, hidden]`; row 0 (padding) is held at zero.
    pub pos_emb: Param<Tensor<2>>,
    blocks: Vec<Block>,
    last_norm: LayerNorm,
    emb_dropout: Dropout,
    hidden: usize,
    heads: usize,
    max_len: usize,
    ln_eps: f64,
    standard: bool,
}

fn xavier_std(fan_in: usize, fan_out: usize) -> f64 {
    (2.0 / (fan_in + fan_out) as f64).sqrt()
}

fn normal_linear(
    d_in: usize,
    d_out: usize,
    std: f64,
    bias: Option<Initializer>,
    device: &Device,
) -> Linear {
    let mut linear = LinearConfig::new(d_in, d_out)
        .with_initializer(Initializer::Normal { mean: 0.0, std })
        .init(device);
    if let Some(init) = bias {
        linear.bias = Some(init.init_with([d_out], Some(d_in), Some(d_out), device));
    }
    linear
}

impl SasRecConfig {
    /// Builds the model with the reference initialisation: xavier-normal on every matrix
    /// (attention in-projection counted as one `[3d, d]` matrix, as PyTorch stores it),
    /// zero attention biases, PyTorch-default feed-forward biases, zero padding rows.
    pub fn init(&self, device: &Device) -> SasRec {
        assert!(
            self.hidden.is_multiple_of(self.heads),
            "hidden must be divisible by heads"
        );
        let d = self.hidden;
        let zeros = Some(Initializer::Zeros);
        let bound = 1.0 / (d as f64).sqrt();
        let conv_bias = Some(Initializer::Uniform {
            min: -bound,
            max: bound,
        });
        let ln = || {
            LayerNormConfig::new(d)
                .with_epsilon(self.ln_eps)
                .init(device)
        };
        let blocks = (0..self.blocks)
            .map(|_| Block {
                attn_norm: ln(),
                attn: CausalAttention {
                    query: normal_linear(d, d, xavier_std(d, 3 * d), zeros.clone(), device),
                    key: normal_linear(d, d, xavier_std(d, 3 * d), zeros.clone(), device),
                    value: normal_linear(d, d, xavier_std(d, 3 * d), zeros.clone(), device),
                    out: normal_linear(d, d, xavier_std(d, d), zeros.clone(), device),
                    dropout: DropoutConfig::new(self.dropout).init(),
                    heads: self.heads,
                },
                ffn_norm: ln(),
                fc1: normal_linear(d, d, xavier_std(d, d), conv_bias.clone(), device),
                fc2: normal_linear(d, d, xavier_std(d, d), conv_bias.clone(), device),
                dropout: DropoutConfig::new(self.dropout).init(),
            })
            .collect();
        let table = |rows: usize| {
            let t = Tensor::<2>::random(
                [rows, d],
                burn::tensor::Distribution::Normal(0.0, xavier_std(rows, d)),
                device,
            );
            Param::from_tensor(zero_row0(t))
        };
        SasRec {
            item_emb: table(self.n_items + 1),
            pos_emb: table(self.max_len + 1),
            blocks,
            last_norm: ln(),
            emb_dropout: DropoutConfig::new(self.dropout).init(),
            hidden: d,
            heads: self.heads,
            max_len: self.max_len,
            ln_eps: self.ln_eps,
            standard: self.mode == Mode::Standard,
        }
    }
}

/// `t` with its first row multiplied by zero (so it also receives no gradient).
pub fn zero_row0(t: Tensor<2>) -> Tensor<2> {
    let [rows, _] = t.dims();
    let device = t.device();
    let mut mask = vec![1.0f32; rows];
    mask[0] = 0.0;
    let mask = Tensor::<1>::from_floats(mask.as_slice(), &device).reshape([rows, 1]);
    t * mask
}

impl CausalAttention {
    /// `query`: `[B, L, d]` (normalised), `kv`: `[B, L, d]`; returns `[B, L, d]`.
    fn forward(&self, query: Tensor<3>, kv: Tensor<3>, pad: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let [b, l, d] = query.dims();
        let h = self.heads;
        let hd = d / h;
        let split = |x: Tensor<3>| x.reshape([b, l, h, hd]).swap_dims(1, 2);
        let q = split(self.query.forward(query));
        let k = split(self.key.forward(kv.clone()));
        let v = split(self.value.forward(kv));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((hd as f64).sqrt());
        // `tril_mask` is *false* on and below the diagonal: true marks the future (s > t)
        let blocked = Tensor::<2, Bool>::tril_mask([l, l], 0, &scores.device())
            .reshape([1, 1, l, l])
            .expand([b, h, l, l]);
        let mut scores = scores.mask_fill(blocked, -1.0e9);
        if let Some(pad) = pad {
            scores = scores.mask_fill(pad.reshape([b, 1, 1, l]).expand([b, h, l, l]), -1.0e9);
        }
        let weights = softmax(scores, 3);
        let ctx = self.dropout.forward(weights).matmul(v);
        self.out.forward(ctx.swap_dims(1, 2).reshape([b, l, d]))
    }
}

impl Block {
    fn forward(&self, x: Tensor<3>, pad: Option<Tensor<2, Bool>>) -> Tensor<3> {
        let q = self.attn_norm.forward(x.clone());
        let x = q.clone() + self.attn.forward(q, x, pad);
        let x2 = self.ffn_norm.forward(x);
        let ff = self.fc1.forward(x2.clone());
        let ff = self.fc2.forward(relu(self.dropout.forward(ff)));
        x2 + self.dropout.forward(ff)
    }
}

impl SasRec {
    /// Window length `L`.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Hidden size `d`.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The inference weights as the plain-Rust [`shared::sasrec::SasRec`] (what the server
    /// serves with and the browser runs).
    pub fn to_scorer(&self) -> shared::sasrec::SasRec {
        let floats = |t: Tensor<1>| t.into_data().iter::<f32>().collect::<Vec<f32>>();
        let dense = |l: &Linear| {
            let [d_in, d_out] = l.weight.val().dims();
            shared::sasrec::Dense {
                d_in,
                d_out,
                weight: l.weight.val().into_data().iter::<f32>().collect(),
                bias: l
                    .bias
                    .as_ref()
                    .map(|b| floats(b.val()))
                    .unwrap_or_else(|| vec![0.0; d_out]),
            }
        };
        let norm = |n: &LayerNorm| shared::sasrec::Norm {
            gamma: floats(n.gamma.val()),
            beta: n
                .beta
                .as_ref()
                .map(|b| floats(b.val()))
                .unwrap_or_else(|| vec![0.0; self.hidden]),
            eps: self.ln_eps as f32,
        };
        shared::sasrec::SasRec {
            mode: if self.standard {
                Mode::Standard
            } else {
                Mode::Reference
            },
            hidden: self.hidden,
            heads: self.heads,
            max_len: self.max_len,
            pos_emb: zero_row0(self.pos_emb.val())
                .into_data()
                .iter::<f32>()
                .collect(),
            blocks: self
                .blocks
                .iter()
                .map(|b| shared::sasrec::Block {
                    attn_norm: norm(&b.attn_norm),
                    query: dense(&b.attn.query),
                    key: dense(&b.attn.key),
                    value: dense(&b.attn.value),
                    out: dense(&b.attn.out),
                    ffn_norm: norm(&b.ffn_norm),
                    fc1: dense(&b.fc1),
                    fc2: dense(&b.fc2),
                })
                .collect(),
            last_norm: norm(&self.last_norm),
        }
    }

    /// The ID-only item table `E_id` (row 0 zero), `[n_items + 1, d]`.
    pub fn id_table(&self) -> Tensor<2> {
        zero_row0(self.item_emb.val())
    }

    /// Hidden states for right-aligned windows `seq` (`[B, L]`, 0 = padding) over `table`.
    /// Returns `[B, L, d]`.
    pub fn forward(&self, seq: Tensor<2, Int>, table: Tensor<2>) -> Tensor<3> {
        let [b, l] = seq.dims();
        let device = seq.device();
        let x = embedding(table, seq.clone()).mul_scalar((self.hidden as f64).sqrt());
        let slots = Tensor::<1, Int>::arange(1..(l as i64 + 1), &device)
            .reshape([1, l])
            .expand([b, l]);
        let positions = slots * seq.clone().not_equal_elem(0).int();
        let x = x + embedding(zero_row0(self.pos_emb.val()), positions);
        let mut x = self.emb_dropout.forward(x);
        let pad = self.standard.then(|| seq.clone().equal_elem(0));
        let keep = self
            .standard
            .then(|| seq.not_equal_elem(0).float().reshape([b, l, 1]));
        if let Some(keep) = &keep {
            x = x * keep.clone();
        }
        for block in &self.blocks {
            x = block.forward(x, pad.clone());
            if let Some(keep) = &keep {
                x = x * keep.clone();
            }
        }
        self.last_norm.forward(x)
    }

    /// The user state: the hidden state of the last slot, `[B, d]`.
    pub fn user_states(&self, seq: Tensor<2, Int>, table: Tensor<2>) -> Tensor<2> {
        let [b, l] = seq.dims();
        let d = self.hidden;
        self.forward(seq, table)
            .slice([0..b, l - 1..l, 0..d])
            .reshape([b, d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In standard mode the padding row's content cannot reach the user state.
    #[test]
    fn standard_mode_ignores_the_padding_row() {
        let device = Device::flex();
        device.seed(2);
        let model = SasRecConfig::new(20)
            .with_dropout(0.0)
            .with_mode(Mode::Standard)
            .init(&device);
        let seq = || {
            Tensor::<2, Int>::from_data(
                TensorData::new(vec![0i64, 0, 0, 0, 0, 0, 0, 3, 4, 5], [1, 10]),
                &device,
            )
        };
        let table = model.id_table();
        let a: Vec<f32> = model
            .user_states(seq(), table.clone())
            .into_data()
            .iter::<f32>()
            .collect();
        let bumped = table
            .clone()
            .slice_assign([0..1, 0..32], Tensor::<2>::ones([1, 32], &device));
        let b: Vec<f32> = model
            .user_states(seq(), bumped)
            .into_data()
            .iter::<f32>()
            .collect();
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(max < 1e-6, "padding row leaked into the state: {max}");
    }

    /// Slot t must not see slots after t: changing the last input leaves earlier slots unchanged.
    #[test]
    fn attention_is_causal() {
        let device = Device::flex();
        device.seed(1);
        let model = SasRecConfig::new(20).with_dropout(0.0).init(&device);
        let run = |last: i64| {
            let seq = Tensor::<2, Int>::from_data(
                TensorData::new(vec![0, 0, 3, 4, 5, 6, 7, 8, 9, last], [1, 10]),
                &device,
            );
            model
                .forward(seq, model.id_table())
                .into_data()
                .iter::<f32>()
                .collect::<Vec<f32>>()
        };
        let (a, b) = (run(10), run(11));
        let d = model.hidden();
        assert_eq!(
            a[..9 * d],
            b[..9 * d],
            "earlier slots changed when only the last input did"
        );
        assert_ne!(
            a[9 * d..],
            b[9 * d..],
            "the last slot must see its own input"
        );
    }
}
