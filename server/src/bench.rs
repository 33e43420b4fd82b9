//! Speed benchmarks behind `perpeft bench`: how many items per second the backbone encodes,
//! forward only (inference) and forward + backward + AdamW step through an adapter (the training
//! hot path), on every device asked for. The shapes follow the PyTorch reference benchmark that
//! is run beside it (224×224 images, 32 title tokens, loss = mean of the squared features), so
//! the two tables can be read side by side. Weights are synthetic where speed does not depend
//! on them.

use std::time::Instant;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;

use crate::backbone::bert::{Bert, BertConfig};
use crate::backbone::clip::{Clip, ClipConfig};
use crate::backbone::efficientnet::EfficientNet;
use crate::backbone::site::{Adaptable, Site, SiteKind};
use crate::backbone::tokenize::Tokens;
use crate::backbone::weights::WeightFile;
use crate::backbone::{Encoder, ImageTower, ItemInputs, TextTower};
use crate::device::DeviceChoice;
use crate::error::Result;

/// One measured configuration.
#[derive(Clone, Debug)]
pub struct Row {
    pub device: String,
    pub case: &'static str,
    pub batch: usize,
    pub trainable: usize,
    pub infer_items_s: f64,
    pub train_items_s: f64,
}

/// An adapter to train in the benchmark.
#[derive(Clone, Copy, Debug)]
enum Adapter {
    /// LoRA r = 4, alpha 8 on the given kinds.
    Lora(&'static [SiteKind]),
    /// (IA)3 on k, v (output) and fc1 (input).
    Ia3,
}

fn attach(
    encoder: Encoder,
    adapter: Adapter,
    lora_dropout: f64,
    device: &Device,
    text_only: bool,
) -> Encoder {
    encoder.map_sites(&mut |id, site: Site| {
        if text_only && id.tower != crate::backbone::site::Tower::Text {
            return site;
        }
        match adapter {
            Adapter::Lora(kinds) if kinds.contains(&id.kind) => {
                site.with_low_rank(4, 8.0, lora_dropout, device)
            }
            Adapter::Ia3 => match id.kind {
                SiteKind::Key | SiteKind::Value => site.with_scale_out(device),
                SiteKind::Fc1 => site.with_scale_in(device),
                _ => site,
            },
            _ => site,
        }
    })
}

fn minilm_config() -> BertConfig {
    BertConfig {
        vocab_size: 30522,
        hidden_size: 384,
        num_hidden_layers: 6,
        num_attention_heads: 12,
        intermediate_size: 1536,
        max_position_embeddings: 512,
        type_vocab_size: 2,
        layer_norm_eps: 1e-12,
        hidden_act: "gelu".into(),
    }
}

/// The benchmark cases: name, encoder builder, adapter, adapter on the text tower only.
type Build = fn(&Device) -> Result<Encoder>;

fn cases() -> Vec<(&'static str, Build, Adapter, bool)> {
    const QV: &[SiteKind] = &[SiteKind::Query, SiteKind::Value];
    fn minilm(device: &Device) -> Result<Encoder> {
        Ok(Encoder {
            text: TextTower::MiniLm(Bert::from_weights(
                &mut WeightFile::synthetic(1),
                &minilm_config(),
                device,
            )?),
            image: None,
        })
    }
    fn dual(device: &Device) -> Result<Encoder> {
        let mut e = minilm(device)?;
        e.image = Some(ImageTower::EfficientNet(EfficientNet::from_weights(
            &mut WeightFile::synthetic(2),
            device,
        )?));
        Ok(e)
    }
    fn clip(device: &Device) -> Result<Encoder> {
        let m = Clip::from_weights(
            &mut WeightFile::synthetic(3),
            &ClipConfig::default(),
            device,
        )?;
        Ok(Encoder {
            text: TextTower::Clip(m.text),
            image: Some(ImageTower::Clip(m.vision)),
        })
    }
    vec![
        (
            "minilm text +lora(q,v)",
            minilm as Build,
            Adapter::Lora(QV),
            true,
        ),
        (
            "minilm text +ia3(k,v,fc1)",
            minilm as Build,
            Adapter::Ia3,
            true,
        ),
        (
            "minilm+effnet-lite0 +lora(text q,v)",
            dual,
            Adapter::Lora(QV),
            true,
        ),
        ("clip-b32 +lora(q,v)", clip, Adapter::Lora(QV), false),
        ("clip-b32 +ia3(k,v,fc1)", clip, Adapter::Ia3, false),
    ]
}

fn inputs(encoder: &Encoder, batch: usize, tokens: usize, device: &Device) -> ItemInputs {
    let vocab = match &encoder.text {
        TextTower::MiniLm(_) => 30000,
        TextTower::Clip(_) => 49408,
    };
    // deterministic pseudo-random ids, full mask (as the reference: no padding)
    let ids: Vec<i64> = (0..batch * tokens)
        .map(|i| 1 + ((i as i64).wrapping_mul(2_654_435_761) % (vocab - 1)).abs())
        .collect();
    let pixels = encoder.image.as_ref().map(|_| {
        Tensor::<4>::random(
            [batch, 3, 224, 224],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            device,
        )
    });
    ItemInputs {
        tokens: Tokens {
            ids,
            mask: vec![1; batch * tokens],
            rows: batch,
            len: tokens,
        },
        pixels,
        has_image: vec![true; batch],
    }
}

/// Median seconds of `reps` runs after one warm-up.
fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Runs every case on every device; `filter` keeps cases whose name contains it; LoRA's dropout
/// on its input is `lora_dropout` (the reference's default is 0.1).
pub fn encode(
    devices: &[DeviceChoice],
    batch: usize,
    tokens: usize,
    reps: usize,
    filter: Option<&str>,
    lora_dropout: f64,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for choice in devices {
        let resolved = choice.resolve()?;
        let device = resolved.device;
        for (case, build, adapter, text_only) in cases() {
            if filter.is_some_and(|f| !case.contains(f)) {
                continue;
            }
            device.seed(7);
            let frozen = build(&device)?;
            let inference = {
                let x = inputs(&frozen, batch, tokens, &device);
                let secs = median_secs(reps, || {
                    let out = frozen.forward(&x, &device);
                    let _ = out.into_data();
                });
                batch as f64 / secs
            };
            let before = frozen.num_params();
            let ad = device.clone().autodiff();
            let mut model = attach(frozen.to_device(&ad), adapter, lora_dropout, &ad, text_only);
            let trainable = model.num_params() - before;
            let x = inputs(&model, batch, tokens, &ad);
            let mut optim = AdamWConfig::new().init();
            let secs = median_secs(reps, || {
                let out = model.forward(&x, &ad);
                let loss = out.powi_scalar(2).mean();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optim.step(1e-4, model.clone(), grads);
                let _ = loss.into_data();
            });
            let row = Row {
                device: resolved.name.to_string(),
                case,
                batch,
                trainable,
                infer_items_s: inference,
                train_items_s: batch as f64 / secs,
            };
            eprintln!(
                "{} {} B={} infer {:.1} items/s, train {:.1} items/s",
                row.device, row.case, row.batch, row.infer_items_s, row.train_items_s
            );
            rows.push(row);
        }
    }
    Ok(rows)
}
