//! SASRec inference in plain Rust: a user's state from their recent history over one item
//! table, exactly as the server's burn model computes it in inference mode (no dropout;
//! the reference's quirks included: no padding mask, attention residual from the normalised
//! query, key/value from the un-normalised input). With it the browser recomputes a user's
//! state when their history changes, without a round trip. A server test checks it against
//! burn to 1e-5.

use serde::{Deserialize, Serialize};

// Float vectors travel as base64 (`codec::b64`) so the browser's copy is bit-identical.

use crate::scorer::{ItemTable, dot};

/// A linear layer `y = x W + b`, `W` row-major `[d_in, d_out]` (burn's layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dense {
    /// Input size.
    pub d_in: usize,
    /// Output size.
    pub d_out: usize,
    /// `[d_in, d_out]`, row-major.
    #[serde(with = "crate::codec::b64")]
    pub weight: Vec<f32>,
    /// `[d_out]`.
    #[serde(with = "crate::codec::b64")]
    pub bias: Vec<f32>,
}

impl Dense {
    /// Checks that the weights are `d_in × d_out` and the bias `d_out` long.
    fn check(&self, what: &str, d_in: Option<usize>, d_out: Option<usize>) -> Result<(), String> {
        let fits = |want: Option<usize>, got: usize| want.is_none_or(|w| w == got);
        if self.d_in == 0
            || self.d_out == 0
            || !fits(d_in, self.d_in)
            || !fits(d_out, self.d_out)
            || self.d_in.checked_mul(self.d_out) != Some(self.weight.len())
            || self.bias.len() != self.d_out
        {
            return Err(format!(
                "{what}: a {}x{} layer with {} weights and {} biases (want {}x{})",
                self.d_in,
                self.d_out,
                self.weight.len(),
                self.bias.len(),
                d_in.map_or("?".into(), |d| d.to_string()),
                d_out.map_or("?".into(), |d| d.to_string()),
            ));
        }
        Ok(())
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let mut y = self.bias.clone();
        for (i, &xi) in x.iter().enumerate() {
            let row = &self.weight[i * self.d_out..(i + 1) * self.d_out];
            for (yj, &w) in y.iter_mut().zip(row) {
                *yj += xi * w;
            }
        }
        y
    }
}

/// Layer normalisation with biased variance, as burn and PyTorch compute it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Norm {
    /// Scale.
    #[serde(with = "crate::codec::b64")]
    pub gamma: Vec<f32>,
    /// Shift.
    #[serde(with = "crate::codec::b64")]
    pub beta: Vec<f32>,
    /// Epsilon.
    pub eps: f32,
}

impl Norm {
    fn check(&self, what: &str, d: usize) -> Result<(), String> {
        if self.gamma.len() != d || self.beta.len() != d {
            return Err(format!(
                "{what}: {} scales and {} shifts for width {d}",
                self.gamma.len(),
                self.beta.len()
            ));
        }
        Ok(())
    }

    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() as f32;
        let mean = x.iter().sum::<f32>() / n;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        x.iter()
            .zip(self.gamma.iter().zip(&self.beta))
            .map(|(v, (g, b))| (v - mean) * inv * g + b)
            .collect()
    }
}

/// One transformer block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Block {
    /// LayerNorm before attention.
    pub attn_norm: Norm,
    /// Query projection.
    pub query: Dense,
    /// Key projection.
    pub key: Dense,
    /// Value projection.
    pub value: Dense,
    /// Output projection.
    pub out: Dense,
    /// LayerNorm before the feed-forward block.
    pub ffn_norm: Norm,
    /// First feed-forward layer.
    pub fc1: Dense,
    /// Second feed-forward layer.
    pub fc2: Dense,
}

/// How padding is treated.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// As the PerPEFT reference: padded slots carry the padding row's embedding and are
    /// attended to.
    #[default]
    Reference,
    /// Padded slots are zeroed after the embedding and after every block, and are never
    /// attended to.
    Standard,
}

/// The weights SASRec needs at inference, besides the item table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SasRec {
    /// Padding treatment.
    #[serde(default)]
    pub mode: Mode,
    /// Hidden size `d`.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Window length `L`.
    pub max_len: usize,
    /// Position embeddings `[max_len + 1, hidden]`, row 0 zero.
    #[serde(with = "crate::codec::b64")]
    pub pos_emb: Vec<f32>,
    /// Transformer blocks.
    pub blocks: Vec<Block>,
    /// Final LayerNorm.
    pub last_norm: Norm,
}

/// Right-aligned window of the last `max_len` items of `history`, 0-padded on the left.
pub fn window(history: &[u32], max_len: usize) -> Vec<u32> {
    let mut w = vec![0u32; max_len];
    let take = history.len().min(max_len);
    w[max_len - take..].copy_from_slice(&history[history.len() - take..]);
    w
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "reference" => Ok(Mode::Reference),
            "standard" => Ok(Mode::Standard),
            _ => Err(format!("unknown mode {s:?} (reference or standard)")),
        }
    }
}

impl SasRec {
    /// Checks every weight's shape against the hidden size, heads and window, so that
    /// [`SasRec::user_state`] cannot index out of bounds: a scorer decoded from outside input
    /// (a bundle the browser fetched) is checked before it is used.
    pub fn check(&self) -> Result<(), String> {
        let d = self.hidden;
        if d == 0 || self.heads == 0 || !d.is_multiple_of(self.heads) || self.max_len == 0 {
            return Err(format!(
                "hidden size {d}, {} heads and window {}: want a positive window and a positive hidden size divisible by the heads",
                self.heads, self.max_len
            ));
        }
        let pos = self.max_len.checked_add(1).and_then(|n| n.checked_mul(d));
        if pos != Some(self.pos_emb.len()) {
            return Err(format!(
                "{} position embedding values for window {} and width {d}",
                self.pos_emb.len(),
                self.max_len
            ));
        }
        for (i, b) in self.blocks.iter().enumerate() {
            let at = |part: &str| format!("block {i} {part}");
            b.attn_norm.check(&at("attention norm"), d)?;
            b.ffn_norm.check(&at("feed-forward norm"), d)?;
            for (part, dense) in [
                ("query", &b.query),
                ("key", &b.key),
                ("value", &b.value),
                ("output", &b.out),
            ] {
                dense.check(&at(part), Some(d), Some(d))?;
            }
            b.fc1.check(&at("fc1"), Some(d), None)?;
            b.fc2.check(&at("fc2"), Some(b.fc1.d_out), Some(d))?;
        }
        self.last_norm.check("last norm", d)
    }

    /// The user state: the last slot's hidden state for the right-aligned window of the last
    /// `max_len` items of `history` over `table`.
    ///
    /// Panics when the weights are mis-shaped (see [`SasRec::check`]), or an item of `history`
    /// is not a row of `table`.
    pub fn user_state(&self, table: &ItemTable<'_>, history: &[u32]) -> Vec<f32> {
        let (d, l) = (self.hidden, self.max_len);
        assert_eq!(table.dim(), d, "item table dimension");
        let seq = window(history, l);
        let scale = (d as f32).sqrt();
        let mut x: Vec<Vec<f32>> = seq
            .iter()
            .enumerate()
            .map(|(t, &item)| {
                let pos = if item == 0 { 0 } else { t + 1 };
                let p = &self.pos_emb[pos * d..(pos + 1) * d];
                table
                    .row(item as usize)
                    .iter()
                    .zip(p)
                    .map(|(e, p)| e * scale + p)
                    .collect()
            })
            .collect();
        let standard = self.mode == Mode::Standard;
        let padded: Vec<bool> = seq.iter().map(|&i| standard && i == 0).collect();
        let zero_padded = |x: &mut Vec<Vec<f32>>| {
            for (row, _) in x.iter_mut().zip(&padded).filter(|(_, p)| **p) {
                row.iter_mut().for_each(|v| *v = 0.0);
            }
        };
        zero_padded(&mut x);
        for block in &self.blocks {
            x = self.block(block, &x, &padded);
            zero_padded(&mut x);
        }
        self.last_norm.forward(&x[l - 1])
    }

    /// One block; `padded[s]` marks keys no query may attend to (standard mode). A padded
    /// query's own output is zeroed by the caller, so it is not computed here.
    fn block(&self, b: &Block, x: &[Vec<f32>], padded: &[bool]) -> Vec<Vec<f32>> {
        let d = self.hidden;
        let hd = d / self.heads;
        let q: Vec<Vec<f32>> = x.iter().map(|v| b.attn_norm.forward(v)).collect();
        let qp: Vec<Vec<f32>> = q.iter().map(|v| b.query.forward(v)).collect();
        let kp: Vec<Vec<f32>> = x.iter().map(|v| b.key.forward(v)).collect();
        let vp: Vec<Vec<f32>> = x.iter().map(|v| b.value.forward(v)).collect();
        let inv = 1.0 / (hd as f32).sqrt();
        x.iter()
            .enumerate()
            .map(|(t, _)| {
                if padded[t] {
                    return vec![0.0f32; d];
                }
                let mut ctx = vec![0.0f32; d];
                for h in 0..self.heads {
                    let r = h * hd..(h + 1) * hd;
                    // causal: slot t attends to slots 0..=t, padded ones excepted
                    let keys: Vec<usize> = (0..=t).filter(|&s| !padded[s]).collect();
                    let scores: Vec<f32> = keys
                        .iter()
                        .map(|&s| dot(&qp[t][r.clone()], &kp[s][r.clone()]) * inv)
                        .collect();
                    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let exps: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
                    let sum: f32 = exps.iter().sum();
                    for (&s, e) in keys.iter().zip(&exps) {
                        let w = e / sum;
                        for (c, v) in ctx[r.clone()].iter_mut().zip(&vp[s][r.clone()]) {
                            *c += w * v;
                        }
                    }
                }
                let attn = b.out.forward(&ctx);
                let y: Vec<f32> = q[t].iter().zip(&attn).map(|(a, b)| a + b).collect();
                let y2 = b.ffn_norm.forward(&y);
                let hidden: Vec<f32> = b.fc1.forward(&y2).into_iter().map(|v| v.max(0.0)).collect();
                y2.iter()
                    .zip(b.fc2.forward(&hidden))
                    .map(|(a, b)| a + b)
                    .collect()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity_dense(d: usize) -> Dense {
        let mut weight = vec![0.0; d * d];
        for i in 0..d {
            weight[i * d + i] = 1.0;
        }
        Dense {
            d_in: d,
            d_out: d,
            weight,
            bias: vec![0.0; d],
        }
    }

    #[test]
    fn dense_and_norm_by_hand() {
        let dense = Dense {
            d_in: 2,
            d_out: 3,
            weight: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            bias: vec![0.5, 0.0, -0.5],
        };
        assert_eq!(dense.forward(&[1.0, -1.0]), vec![-2.5, -3.0, -3.5]);
        let norm = Norm {
            gamma: vec![2.0, 2.0],
            beta: vec![1.0, 1.0],
            eps: 0.0,
        };
        assert_eq!(norm.forward(&[1.0, 3.0]), vec![-1.0, 3.0]);
    }

    fn small_model() -> SasRec {
        let d = 4;
        let norm = Norm {
            gamma: vec![1.0; d],
            beta: vec![0.0; d],
            eps: 1e-8,
        };
        let block = Block {
            attn_norm: norm.clone(),
            query: identity_dense(d),
            key: identity_dense(d),
            value: identity_dense(d),
            out: identity_dense(d),
            ffn_norm: norm.clone(),
            fc1: identity_dense(d),
            fc2: identity_dense(d),
        };
        SasRec {
            mode: Mode::Reference,
            hidden: d,
            heads: 2,
            max_len: 3,
            pos_emb: (0..16)
                .map(|i| if i < 4 { 0.0 } else { i as f32 * 0.01 })
                .collect(),
            blocks: vec![block],
            last_norm: norm,
        }
    }

    #[test]
    fn only_the_window_matters_and_the_state_is_finite() {
        let d = 4;
        let model = small_model();
        let data: Vec<f32> = (0..6 * d)
            .map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.1)
            .collect();
        let table = ItemTable::new(d, &data).unwrap();
        let a = model.user_state(&table, &[5, 1, 2, 3]);
        let b = model.user_state(&table, &[4, 1, 2, 3]);
        assert_eq!(a, b, "items before the window must not matter");
        assert!(a.iter().all(|v| v.is_finite()));
        assert_ne!(a, model.user_state(&table, &[1, 2, 4]));
    }

    #[test]
    fn check_accepts_a_well_shaped_model_and_names_each_misshapen_part() {
        let good = small_model();
        assert_eq!(good.check(), Ok(()));
        type Spoil = fn(&mut SasRec);
        let bad: [(&str, Spoil); 9] = [
            ("0 heads", |m| m.heads = 0),
            ("3 heads", |m| m.heads = 3),
            ("window 0", |m| m.max_len = 0),
            ("position", |m| {
                m.pos_emb.pop();
            }),
            ("block 0 query", |m| m.blocks[0].query.d_out = 5),
            ("block 0 fc2", |m| m.blocks[0].fc2.d_in = 3),
            ("block 0 attention norm", |m| {
                m.blocks[0].attn_norm.beta.push(0.0);
            }),
            ("block 0 output", |m| {
                m.blocks[0].out.bias.clear();
            }),
            ("last norm", |m| m.last_norm.gamma.clear()),
        ];
        for (want, spoil) in bad {
            let mut m = good.clone();
            spoil(&mut m);
            let err = m.check().unwrap_err();
            assert!(err.contains(want), "{want}: {err}");
        }
        // huge declared sizes do not overflow into a pass
        let mut m = good.clone();
        m.max_len = usize::MAX;
        assert!(m.check().unwrap_err().contains("position"));
        let mut m = good.clone();
        m.blocks[0].fc1.d_out = usize::MAX / 2 + 1;
        m.blocks[0].fc2.d_in = m.blocks[0].fc1.d_out;
        assert!(m.check().unwrap_err().contains("fc1"));
    }
}
