//! `export` writes one group's LoRA or (IA)3 adapter in the Hugging Face PEFT layout
//! (`adapter_config.json` + `adapter_model.safetensors`, tensor names and config fields as
//! `peft` writes them for the same base model), so it can be loaded in Python with
//! `PeftModel.from_pretrained(base, dir)`. The base models are `transformers`' `BertModel`
//! (all-MiniLM-L6-v2) and `CLIPModel`; an adapter on the EfficientNet image tower has no such
//! counterpart and is refused, as is IISAN (not a PEFT method of the `peft` library).

use std::path::Path;

use burn::module::Module;
use burn::prelude::*;
use burn::store::ModuleRecord;

use crate::backbone::site::{Adaptable, Site, SiteId, SiteKind, Tower};
use crate::backbone::{Encoder, ImageTower, TextTower};
use crate::config::{BackboneChoice, Method, PeftKind};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::peft::Peft;
use crate::store::RunDir;
use crate::store::write_atomic;
use crate::train::ItemSource;

/// The two files of an adapter.
pub struct HfAdapter {
    /// `adapter_config.json`.
    pub config: serde_json::Value,
    /// `adapter_model.safetensors`.
    pub weights: Vec<u8>,
}

/// Group `group`'s adapter of the run in `dir` (a global-peft run has one, group 0).
/// `dataset` is the run's data (its images decide the towers); weights are loaded on `device`.
pub fn hf_adapter(
    dir: &RunDir,
    dataset: &Dataset,
    group: usize,
    device: &Device,
) -> Result<HfAdapter> {
    let record = dir.read_record()?;
    let cfg = &record.train;
    if !cfg.method.is_peft() {
        return Err(Error::Invalid(format!(
            "{} is a {} run: it has no adapter",
            dir.name(),
            record.method
        )));
    }
    if cfg.peft.kind == PeftKind::Iisan {
        return Err(Error::Invalid(
            "IISAN is a side network, not a PEFT method of the peft library: it has no Hugging Face PEFT layout".into(),
        ));
    }
    let k = record.groups.as_ref().map_or(1, Vec::len);
    if group >= k {
        return Err(Error::Invalid(format!(
            "group {group} does not exist: the run has {k} group(s), 0..{k}"
        )));
    }
    // the encoder with its adapter bank, as trained, then the best epoch's adapters over it
    let (source, _) = ItemSource::build(cfg, dataset, device, device)?;
    let peft = source
        .peft()
        .expect("a LoRA or (IA)3 run has an adapted encoder");
    let peft = if cfg.method == Method::Perpeft {
        peft.replicate(k)
    } else {
        peft
    };
    let path = dir.adapters_file();
    let saved = ModuleRecord::load(&path)
        .map_err(|e| Error::format(&path, format!("{e:?}")))?
        .allow_partial(true);
    // the file holds the adapter bank alone: exactly as many tensors as the bank has, or the
    // loaded adapters would silently keep their initial values
    let expected = peft
        .clone()
        .into_record_group(crate::store::run_dir::adapter_params())
        .len();
    if saved.len() != expected {
        return Err(Error::format(
            &path,
            format!(
                "{} tensors where this run's adapter bank has {expected}",
                saved.len()
            ),
        ));
    }
    let Peft::Encoder(encoder) = peft
        .try_load_record(saved)
        .map_err(|e| Error::format(&path, format!("{e:?}")))?
    else {
        unreachable!("LoRA and (IA)3 live in the encoder")
    };
    let mut tensors = Vec::new();
    collect(encoder, group, &mut tensors)?;
    let (r, alpha) = if cfg.large_global {
        (
            cfg.peft.rank * cfg.groups,
            cfg.peft.alpha * cfg.groups as f64,
        )
    } else {
        (cfg.peft.rank, cfg.peft.alpha)
    };
    let clip = cfg.backbone == BackboneChoice::Clip;
    let base = match &cfg.clip_dir {
        Some(d) if clip => d.display().to_string(),
        _ if clip => "openai/clip-vit-base-patch32".into(),
        _ => "sentence-transformers/all-MiniLM-L6-v2".into(),
    };
    let config = match cfg.peft.kind {
        PeftKind::Lora => serde_json::json!({
            "peft_type": "LORA",
            "task_type": null,
            "base_model_name_or_path": base,
            "revision": null,
            "inference_mode": true,
            "r": r,
            "lora_alpha": alpha,
            "lora_dropout": cfg.peft.dropout,
            "target_modules": if clip { vec!["q_proj", "v_proj"] } else { vec!["query", "value"] },
            "bias": "none",
            "fan_in_fan_out": false,
            "modules_to_save": null,
            "init_lora_weights": true,
            "layers_to_transform": null,
            "layers_pattern": null,
            "rank_pattern": {},
            "alpha_pattern": {},
            "use_rslora": false,
            "use_dora": false,
        }),
        _ => {
            let fc1 = if clip { "fc1" } else { "intermediate.dense" };
            let (key, value) = if clip {
                ("k_proj", "v_proj")
            } else {
                ("key", "value")
            };
            serde_json::json!({
                "peft_type": "IA3",
                "task_type": null,
                "base_model_name_or_path": base,
                "revision": null,
                "inference_mode": true,
                "target_modules": [key, value, fc1],
                "feedforward_modules": [fc1],
                "fan_in_fan_out": false,
                "modules_to_save": null,
                "init_ia3_weights": true,
            })
        }
    };
    let views = tensors
        .iter()
        .map(|(name, shape, bytes)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::Compute(format!("{name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::Compute(format!("adapter_model.safetensors: {e}")))?;
    Ok(HfAdapter { config, weights })
}

/// Writes the adapter into `out` (`adapter_config.json`, `adapter_model.safetensors`).
pub fn write(adapter: &HfAdapter, out: &Path) -> Result<()> {
    let config = serde_json::to_vec_pretty(&adapter.config)
        .map_err(|e| Error::Compute(format!("adapter_config.json: {e}")))?;
    write_atomic(&out.join("adapter_model.safetensors"), &adapter.weights)?;
    write_atomic(&out.join("adapter_config.json"), &config)
}

/// The two files as a zip archive (stored, uncompressed), for download.
pub fn zip(adapter: &HfAdapter) -> Result<Vec<u8>> {
    use std::io::Write;
    let config = serde_json::to_vec_pretty(&adapter.config)
        .map_err(|e| Error::Compute(format!("adapter_config.json: {e}")))?;
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let fail = |e: &dyn std::fmt::Display| Error::Compute(format!("adapter zip: {e}"));
    for (name, bytes) in [
        ("adapter_config.json", config.as_slice()),
        ("adapter_model.safetensors", adapter.weights.as_slice()),
    ] {
        out.start_file(name, options).map_err(|e| fail(&e))?;
        out.write_all(bytes).map_err(|e| fail(&e))?;
    }
    Ok(out.finish().map_err(|e| fail(&e))?.into_inner())
}

/// The module path `transformers` gives a site, under PEFT's `base_model.model.` prefix.
fn hf_module(encoder: &Encoder, id: SiteId) -> Result<String> {
    let clip_kind = |k: SiteKind| match k {
        SiteKind::Query => "self_attn.q_proj",
        SiteKind::Key => "self_attn.k_proj",
        SiteKind::Value => "self_attn.v_proj",
        SiteKind::Out => "self_attn.out_proj",
        SiteKind::Fc1 => "mlp.fc1",
        SiteKind::Fc2 => "mlp.fc2",
    };
    let l = id.layer;
    let path = match (id.tower, &encoder.text, &encoder.image) {
        (Tower::Text, TextTower::MiniLm(_), _) => {
            let kind = match id.kind {
                SiteKind::Query => "attention.self.query",
                SiteKind::Key => "attention.self.key",
                SiteKind::Value => "attention.self.value",
                SiteKind::Out => "attention.output.dense",
                SiteKind::Fc1 => "intermediate.dense",
                SiteKind::Fc2 => "output.dense",
            };
            format!("encoder.layer.{l}.{kind}")
        }
        (Tower::Text, TextTower::Clip(_), _) => {
            format!("text_model.encoder.layers.{l}.{}", clip_kind(id.kind))
        }
        (Tower::Image, _, Some(ImageTower::Clip(_))) => {
            format!("vision_model.encoder.layers.{l}.{}", clip_kind(id.kind))
        }
        (Tower::Image, _, _) => {
            return Err(Error::Invalid(
                "the adapter on the EfficientNet-Lite0 image tower has no Hugging Face counterpart"
                    .into(),
            ));
        }
    };
    Ok(format!("base_model.model.{path}"))
}

type Named = (String, Vec<usize>, Vec<u8>);

fn bytes<const D: usize>(t: Tensor<D>) -> Vec<u8> {
    t.into_data()
        .iter::<f32>()
        .flat_map(|v| v.to_le_bytes())
        .collect()
}

/// Adapter `group` of every adapted site, with PEFT's names and PyTorch's layouts.
fn collect(encoder: Encoder, group: usize, out: &mut Vec<Named>) -> Result<()> {
    let mut failure = None;
    let probe = encoder.clone();
    let _ = encoder.map_sites(&mut |id, site: Site| {
        let Some(adapter) = site.adapters.get(group) else {
            return site;
        };
        let module = match hf_module(&probe, id) {
            Ok(m) => m,
            Err(e) => {
                failure.get_or_insert(e);
                return site;
            }
        };
        let [d_in, d_out] = site.dims();
        if let Some(lr) = &adapter.low_rank {
            let r = lr.a.val().dims()[1];
            // burn keeps `[d_in, r]` and `[r, d_out]`; PyTorch's weights are `[r, d_in]` and
            // `[d_out, r]`
            out.push((
                format!("{module}.lora_A.weight"),
                vec![r, d_in],
                bytes(lr.a.val().transpose()),
            ));
            out.push((
                format!("{module}.lora_B.weight"),
                vec![d_out, r],
                bytes(lr.b.val().transpose()),
            ));
        }
        if let Some(s) = &adapter.scale_out {
            out.push((format!("{module}.ia3_l"), vec![d_out, 1], bytes(s.val())));
        }
        if let Some(s) = &adapter.scale_in {
            out.push((format!("{module}.ia3_l"), vec![1, d_in], bytes(s.val())));
        }
        site
    });
    match failure {
        Some(e) => Err(e),
        None if out.is_empty() => Err(Error::Invalid("the encoder holds no adapter".into())),
        None => Ok(()),
    }
}
