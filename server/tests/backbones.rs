//! Backbone parity: the burn towers against the reference libraries' outputs, written by
//! `scripts/make_backbone_fixtures.py` into `tests/fixtures/backbones/` (sentence-transformers
//! for all-MiniLM-L6-v2, the EfficientNet-Lite PyTorch port, transformers for a small random
//! CLIP). The real MiniLM and EfficientNet weights come from `scripts/fetch_data.py` into
//! `.cache/weights` (override with PERPEFT_WEIGHTS_DIR); these tests fail, never skip, without them.

mod common;

use std::path::{Path, PathBuf};

use burn::prelude::*;
use perpeft::backbone::bert::{self, Bert};
use perpeft::backbone::clip::{self, Clip, ClipConfig};
use perpeft::backbone::efficientnet::EfficientNet;
use perpeft::backbone::preprocess::{CLIP, EFFICIENTNET, ImagePrep};
use perpeft::backbone::site::{SiteId, SiteKind, attach};
use perpeft::backbone::weights::WeightFile;
use perpeft::backbone::{Backbone, BackboneSpec};

// Parity tolerances, per tower: about 3x the largest difference measured against the
// reference libraries (in the comment), so a real change in a tower's arithmetic fails.
/// MiniLM sentence embeddings (measured 2.9e-7).
const MINILM_TOL: f32 = 1e-6;
/// EfficientNet-Lite0 features, values up to 5.35 (measured 6.7e-6).
const EFFNET_TOL: f32 = 2e-5;
/// Small CLIP text and image embeddings, flex (measured 2.8e-7 and 1.2e-7) and wgpu on
/// lavapipe (3.2e-7 and 1.0e-7).
const CLIP_TOL: f32 = 1e-6;
/// Small CLIP per-layer hidden states at EOS / CLS (measured 6.0e-7 and 7.2e-7).
const CLIP_HIDDEN_TOL: f32 = 2e-6;

fn q_or_v(id: SiteId) -> bool {
    matches!(id.kind, SiteKind::Query | SiteKind::Value)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/backbones")
}

fn weights_dir() -> PathBuf {
    std::env::var_os("PERPEFT_WEIGHTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cache/weights"))
}

/// A fixture tensor as (shape, f32 values); integer tensors are converted.
fn fixture(file: &str, name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let values = match t.dtype() {
        safetensors::Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        other => panic!("{name}: unexpected dtype {other:?}"),
    };
    (t.shape().to_vec(), values)
}

fn ints(file: &str, name: &str) -> (Vec<usize>, Vec<i64>) {
    let bytes = std::fs::read(fixtures().join(file)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    assert_eq!(t.dtype(), safetensors::Dtype::I64, "{name}");
    let v = t
        .data()
        .chunks_exact(8)
        .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

fn titles() -> Vec<String> {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("titles.json")).unwrap()).unwrap()
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().iter::<f32>().collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn png(name: &str) -> image::DynamicImage {
    image::open(fixtures().join(name)).unwrap()
}

/// The reference's own crops, normalised with our code: isolates the tower from resampling.
fn reference_pixels(prep: &ImagePrep, prefix: &str, device: &Device) -> Tensor<4> {
    let crops: Vec<image::RgbImage> = (0..3)
        .map(|k| png(&format!("{prefix}{k}.png")).to_rgb8())
        .collect();
    prep.tensor(&crops, device)
}

/// Largest per-channel level difference between our crop and the reference's, and the mean.
fn crop_difference(prep: &ImagePrep, prefix: &str) -> (u8, f64) {
    let (mut worst, mut sum, mut n) = (0u8, 0u64, 0u64);
    for k in 0..3 {
        let ours = prep.crop(&png(&format!("image_{k}.png")));
        let reference = png(&format!("{prefix}{k}.png")).to_rgb8();
        assert_eq!(ours.dimensions(), reference.dimensions());
        for (a, b) in ours.as_raw().iter().zip(reference.as_raw()) {
            let d = a.abs_diff(*b);
            worst = worst.max(d);
            sum += d as u64;
            n += 1;
        }
    }
    (worst, sum as f64 / n as f64)
}

#[test]
fn minilm_tokenizer_matches_sentence_transformers() {
    let dir = weights_dir().join("minilm");
    let titles = titles();
    let texts: Vec<&str> = titles.iter().map(String::as_str).collect();
    let tok = bert::minilm_tokenizer(&dir).expect("run scripts/fetch_data.py minilm");
    let ours = tok.encode(&texts).unwrap();
    let (shape, ids) = ints("minilm.safetensors", "input_ids");
    let (_, mask) = ints("minilm.safetensors", "attention_mask");
    assert_eq!(
        [ours.rows, ours.len],
        [shape[0], shape[1]],
        "padded to the longest, cut at 256"
    );
    for r in 0..ours.rows {
        assert_eq!(
            ours.row(r),
            &ids[r * ours.len..(r + 1) * ours.len],
            "title {r}"
        );
    }
    assert_eq!(ours.mask, mask);
    // truncation where it bites every title but the empty one
    let short = perpeft::backbone::tokenize::TextTokenizer::from_file(
        &dir.join("tokenizer.json"),
        16,
        "[PAD]",
    )
    .unwrap()
    .encode(&texts)
    .unwrap();
    let (_, ids16) = ints("minilm.safetensors", "input_ids_16");
    assert_eq!(short.ids, ids16);
}

#[test]
fn minilm_embeddings_match_sentence_transformers() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    let dir = weights_dir().join("minilm");
    let model = Bert::load(&dir, &device).expect("run scripts/fetch_data.py minilm");
    let titles = titles();
    let texts: Vec<&str> = titles.iter().map(String::as_str).collect();
    let tokens = bert::minilm_tokenizer(&dir)
        .unwrap()
        .encode(&texts)
        .unwrap();
    let ours = values(model.embed_tokens(&tokens, &device));
    let (shape, reference) = fixture("minilm.safetensors", "embeddings");
    assert_eq!(shape, [12, 384]);
    let err = max_abs_diff(&ours, &reference);
    println!(
        "MiniLM sentence embeddings: max |Δ| = {err:.2e} over {} values",
        ours.len()
    );
    assert!(err <= MINILM_TOL, "MiniLM max |Δ| {err}");
    // the hidden-state hook agrees with the embedding path
    let (ids, mask) = tokens.to_tensors(&device);
    assert_eq!(
        model.hidden_states(ids, mask).len(),
        7,
        "embeddings + 6 layers"
    );
}

#[test]
fn efficientnet_features_match_the_pytorch_port() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    let path = weights_dir().join("efficientnet-lite0/efficientnet-lite0-57934424.pth");
    let model =
        EfficientNet::load(&path, &device).expect("run scripts/fetch_data.py efficientnet-lite0");
    let (shape, reference) = fixture("efficientnet.safetensors", "features");
    assert_eq!(shape, [3, 1280]);
    let ours = values(model.features(reference_pixels(&EFFICIENTNET, "effnet_ref224_", &device)));
    let err = max_abs_diff(&ours, &reference);
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    println!(
        "EfficientNet-Lite0 features (reference crops): max |Δ| = {err:.2e}, max |x| = {scale:.2}"
    );
    assert!(err <= EFFNET_TOL, "EfficientNet max |Δ| {err}");

    // our own resize + crop against torchvision's (Pillow bilinear): bit-identical crops,
    // so the features from the original images match end to end
    let (worst, mean) = crop_difference(&EFFICIENTNET, "effnet_ref224_");
    let images: Vec<image::DynamicImage> = (0..3).map(|k| png(&format!("image_{k}.png"))).collect();
    let end_to_end = values(model.features(EFFICIENTNET.batch(&images, &device)));
    let e2e = max_abs_diff(&end_to_end, &reference);
    println!(
        "EfficientNet preprocessing: max level Δ {worst}, mean {mean:.3}; features from the original images: max |Δ| = {e2e:.2e}"
    );
    assert_eq!(
        worst, 0,
        "resize/crop differs from torchvision (mean {mean})"
    );
    assert!(e2e <= EFFNET_TOL, "end to end {e2e}");
}

#[test]
fn small_clip_matches_transformers() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    let dir = fixtures().join("clip-small");
    let config = ClipConfig::read(&dir).unwrap();
    let model = Clip::load(&dir, &device).unwrap();
    let titles = titles();
    let texts: Vec<&str> = titles.iter().map(String::as_str).collect();
    let tok = clip::clip_tokenizer(&dir, config.text_config.max_position_embeddings).unwrap();
    let tokens = tok.encode(&texts).unwrap();
    let (shape, ids) = ints("clip-small.safetensors", "input_ids");
    assert_eq!(
        [tokens.rows, tokens.len],
        [shape[0], shape[1]],
        "padded to the longest, cut at 77"
    );
    assert_eq!(tokens.ids, ids, "CLIP token ids");
    assert_eq!(
        tokens.mask,
        ints("clip-small.safetensors", "attention_mask").1
    );

    let (ids_t, mask_t) = tokens.to_tensors(&device);
    let text = values(model.text.embed(ids_t.clone(), mask_t.clone()));
    let (_, text_ref) = fixture("clip-small.safetensors", "text_embeds");
    let text_err = max_abs_diff(&text, &text_ref);
    let pixels = reference_pixels(&CLIP, "clip_ref224_", &device);
    let image = values(model.vision.embed(pixels.clone()));
    let (_, image_ref) = fixture("clip-small.safetensors", "image_embeds");
    let image_err = max_abs_diff(&image, &image_ref);
    println!("small CLIP: text max |Δ| = {text_err:.2e}, image max |Δ| = {image_err:.2e}");
    assert!(text_err <= CLIP_TOL && image_err <= CLIP_TOL);

    // per-layer hidden states at the pooled token (EOS / CLS)
    let eos = model.text.eos_positions(ids_t.clone());
    let states = model.text.hidden_states(ids_t, mask_t);
    let (shape, hid_ref) = fixture("clip-small.safetensors", "text_hidden_eos");
    assert_eq!(states.len(), shape[1]);
    let ours: Vec<f32> = {
        let per_layer: Vec<Tensor<2>> = states
            .into_iter()
            .map(|h| perpeft::backbone::transformer::take_rows(h, eos.clone()))
            .collect();
        values(Tensor::stack::<3>(per_layer, 1))
    };
    let hid_err = max_abs_diff(&ours, &hid_ref);
    let vstates = model.vision.hidden_states(pixels);
    let cls: Vec<Tensor<2>> = vstates
        .into_iter()
        .map(|h| {
            let [b, _, d] = h.dims();
            h.narrow(1, 0, 1).reshape([b, d])
        })
        .collect();
    let vhid_err = max_abs_diff(
        &values(Tensor::stack::<3>(cls, 1)),
        &fixture("clip-small.safetensors", "vision_hidden_cls").1,
    );
    println!("small CLIP hidden states: text {hid_err:.2e}, vision {vhid_err:.2e}");
    assert!(hid_err <= CLIP_HIDDEN_TOL && vhid_err <= CLIP_HIDDEN_TOL);

    // CLIP preprocessing (Pillow bicubic) against CLIPImageProcessor, then end to end
    let (worst, mean) = crop_difference(&CLIP, "clip_ref224_");
    let images: Vec<image::DynamicImage> = (0..3).map(|k| png(&format!("image_{k}.png"))).collect();
    let e2e = max_abs_diff(
        &values(model.vision.embed(CLIP.batch(&images, &device))),
        &image_ref,
    );
    println!(
        "CLIP preprocessing: max level Δ {worst}, mean {mean:.3}; image embeddings from the original images: max |Δ| = {e2e:.2e}"
    );
    assert_eq!(
        worst, 0,
        "resize/crop differs from CLIPImageProcessor (mean {mean})"
    );
    assert!(e2e <= CLIP_TOL, "end to end {e2e}");
}

#[test]
fn full_clip_vit_b32_has_the_published_parameter_count() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    let model = Clip::from_weights(
        &mut WeightFile::synthetic(1),
        &ClipConfig::default(),
        &device,
    )
    .unwrap();
    let (_, reference) = ints("clip-small.safetensors", "full_parameter_count");
    assert_eq!(model.num_params(), 151_277_313);
    assert_eq!(
        model.num_params() as i64,
        reference[0],
        "transformers' CLIPModel(CLIPConfig())"
    );
    // the paper's LoRA: r = 4 on q and v of all 24 layers of both towers = 245,760 parameters,
    // and 8 of them are the abstract's "1.3%" of the backbone
    let frozen = model.num_params();
    let (adapted, sites) = attach(model, q_or_v, |s| s.with_low_rank(4, 8.0, 0.1, &device));
    assert_eq!(sites, 48);
    let per_adapter = adapted.num_params() - frozen;
    assert_eq!(per_adapter, 245_760);
    let share = 8.0 * per_adapter as f64 / frozen as f64 * 100.0;
    assert!((share - 1.2997).abs() < 1e-4, "{share}");
}

#[test]
fn adapters_attach_through_sites_and_start_at_the_pretrained_map() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    device.seed(3);
    let dir = fixtures().join("clip-small");
    let model = Clip::load(&dir, &device).unwrap();
    let pixels = reference_pixels(&CLIP, "clip_ref224_", &device);
    let before = values(model.vision.embed(pixels.clone()));
    let frozen = model.num_params();
    let (adapted, attached) = attach(model, q_or_v, |s| s.with_low_rank(4, 8.0, 0.0, &device));
    assert_eq!(attached, 8, "q and v of 2 text + 2 vision layers");
    // text width 32 and vision width 48: 2·2·(4·32·2) + 2·2·(4·48·2)
    assert_eq!(adapted.num_params() - frozen, 4 * 256 + 4 * 384);
    let after = values(adapted.vision.embed(pixels.clone()));
    assert!(
        max_abs_diff(&before, &after) == 0.0,
        "B = 0: LoRA starts at the pretrained map"
    );

    // gradients reach the adapter and only the adapter (attached on the autodiff device)
    let ad = device.clone().autodiff();
    let (adapted, _) = attach(
        Clip::load(&dir, &ad).unwrap(),
        |id| id.kind == SiteKind::Query,
        |s| s.with_low_rank(4, 8.0, 0.1, &ad),
    );
    let out = adapted.vision.embed(pixels.to_device(&ad));
    let grads = out.sum().backward();
    let layer = &adapted.vision.layers[0];
    let lr = layer
        .attention
        .query
        .adapter()
        .unwrap()
        .low_rank
        .as_ref()
        .unwrap();
    assert!(lr.b.val().grad(&grads).is_some(), "LoRA B gets a gradient");
    assert!(
        layer
            .attention
            .query
            .base
            .weight
            .val()
            .grad(&grads)
            .is_none(),
        "frozen weight"
    );
    assert!(
        layer.fc1.base.weight.val().grad(&grads).is_none(),
        "frozen weight"
    );
}

#[test]
fn wrong_weight_files_are_refused_with_the_file_and_tensor_named() {
    let device = Device::flex();
    let clip_weights = fixtures().join("clip-small/model.safetensors");
    let err = EfficientNet::load(&clip_weights, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("clip-small/model.safetensors")
            && err.contains("missing tensor _conv_stem.weight"),
        "{err}"
    );
    let err = Bert::load(&fixtures().join("clip-small"), &device).unwrap_err();
    assert!(
        format!("{err:#}").contains("clip-small/config.json"),
        "{err:#}"
    );
    let err = WeightFile::open(&fixtures().join("titles.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("titles.json") && err.contains("not a PyTorch checkpoint"),
        "{err}"
    );
}

#[test]
fn item_features_are_image_then_text_and_text_only_without_images() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    let dir = fixtures().join("clip-small");
    let spec = BackboneSpec::Clip { dir: dir.clone() };
    let with = Backbone::load(&spec, true, &device).unwrap();
    let without = Backbone::load(&spec, false, &device).unwrap();
    assert_eq!(with.feature_dim(), 32);
    assert_eq!(
        without.feature_dim(),
        16,
        "the image half is absent, not zero-filled"
    );
    let texts = ["Toy Story (1995)", "GoldenEye (1995)"];
    let images = [Some(png("clip_ref224_0.png")), None];
    let f = with
        .encoder
        .forward(&with.inputs(&texts, &images, &device).unwrap(), &device);
    let f = values(f);
    let t = values(
        without
            .encoder
            .forward(&without.inputs(&texts, &[], &device).unwrap(), &device),
    );
    // the text half equals the text-only feature; image half of item 0 is unit norm, item 1 zero
    assert!(max_abs_diff(&f[16..32], &t[..16]) <= 1e-6);
    assert!(max_abs_diff(&f[48..64], &t[16..32]) <= 1e-6);
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm(&f[..16]) - 1.0).abs() < 1e-5);
    assert_eq!(
        norm(&f[32..48]),
        0.0,
        "an item without an image gets a zero image half"
    );
    let (_, image_ref) = fixture("clip-small.safetensors", "image_embeds");
    assert!(max_abs_diff(&f[..16], &image_ref[..16]) <= CLIP_TOL);
}

#[test]
fn small_clip_matches_on_wgpu_too() {
    let _rng = common::rng_lock();
    // lavapipe in CI: fails (never skips) without a wgpu adapter
    let device = perpeft::device::DeviceChoice::Wgpu
        .resolve()
        .expect("wgpu must have an adapter in CI (lavapipe)")
        .device;
    let dir = fixtures().join("clip-small");
    let config = ClipConfig::read(&dir).unwrap();
    let model = Clip::load(&dir, &device).unwrap();
    let titles = titles();
    let texts: Vec<&str> = titles.iter().map(String::as_str).collect();
    let tokens = clip::clip_tokenizer(&dir, config.text_config.max_position_embeddings)
        .unwrap()
        .encode(&texts)
        .unwrap();
    let (ids, mask) = tokens.to_tensors(&device);
    let text_err = max_abs_diff(
        &values(model.text.embed(ids, mask)),
        &fixture("clip-small.safetensors", "text_embeds").1,
    );
    let images: Vec<image::DynamicImage> = (0..3).map(|k| png(&format!("image_{k}.png"))).collect();
    let image_err = max_abs_diff(
        &values(model.vision.embed(CLIP.batch(&images, &device))),
        &fixture("clip-small.safetensors", "image_embeds").1,
    );
    println!("small CLIP on wgpu: text max |Δ| = {text_err:.2e}, image max |Δ| = {image_err:.2e}");
    assert!(text_err <= CLIP_TOL && image_err <= CLIP_TOL);
}

#[test]
fn bucketed_encoding_equals_encoding_each_item_alone() {
    let _rng = common::rng_lock();
    use perpeft::backbone::features::{BUCKET, encode_items, item_table};
    use perpeft::data::{Dataset, ItemMeta};
    let device = Device::flex();
    let spec = BackboneSpec::Clip {
        dir: fixtures().join("clip-small"),
    };
    let backbone = Backbone::load(&spec, false, &device).unwrap();
    // more items than a bucket, with text lengths from 3 to ~40 tokens in no particular order
    let titles = titles();
    let n = 2 * BUCKET as u32 + 5;
    let items: Vec<ItemMeta> = (1..=n)
        .map(|i| {
            let title = &titles[i as usize % titles.len()];
            ItemMeta {
                raw_id: i.to_string(),
                title: title.clone(),
                text: format!("{title}{}", " and more".repeat((i as usize * 7) % 11)),
                categories: Vec::new(),
                image: None,
            }
        })
        .collect();
    let texts: Vec<String> = items.iter().map(|m| m.text.clone()).collect();
    let lengths = backbone
        .tokenizer
        .lengths(&texts.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap();
    assert!(lengths.iter().max().unwrap() > &(3 * lengths.iter().min().unwrap()));
    let dataset = Dataset::new(
        "lengths",
        vec!["u".into()],
        items,
        vec![vec![1, 2, 3]],
        "0".repeat(64),
        Default::default(),
    );
    let alone = |i: u32| -> Vec<f32> {
        let text = texts[i as usize - 1].as_str();
        values(
            backbone
                .encoder
                .forward(&backbone.inputs(&[text], &[], &device).unwrap(), &device),
        )
    };
    let d = backbone.feature_dim();
    // padding ids and repeats anywhere, as a training batch has them
    let ids: Vec<u32> = [0, n, 3, 3, 0]
        .into_iter()
        .chain((1..=n).rev().step_by(2))
        .chain(1..=n / 2)
        .collect();
    let got = values(encode_items(&backbone, &backbone.encoder, &dataset, &ids, &device).unwrap());
    assert_eq!(got.len(), ids.len() * d);
    for (r, &i) in ids.iter().enumerate() {
        let row = &got[r * d..(r + 1) * d];
        if i == 0 {
            assert!(row.iter().all(|&x| x == 0.0), "row {r} (id 0) is not zero");
        } else {
            let diff = max_abs_diff(row, &alone(i));
            assert!(diff <= 1e-5, "row {r} (item {i}): {diff}");
        }
    }
    let table = values(item_table(&backbone, &backbone.encoder, &dataset, &device).unwrap());
    assert_eq!(table.len(), (n as usize + 1) * d);
    assert!(table[..d].iter().all(|&x| x == 0.0));
    for i in 1..=n {
        let row = &table[i as usize * d..(i as usize + 1) * d];
        let diff = max_abs_diff(row, &alone(i));
        assert!(diff <= 1e-5, "table row {i}: {diff}");
    }
}
