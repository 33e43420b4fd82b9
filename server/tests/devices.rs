//! The same model code on burn's wgpu backend and on flex. In CI without a GPU, wgpu runs on
//! Mesa's software Vulkan (lavapipe); these tests fail (never skip) when wgpu has no adapter.

mod common;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use perpeft::data::sampler::Sampler;
use perpeft::device::DeviceChoice;
use perpeft::engine::to_vec;
use perpeft::eval::{Phase, ranks};
use perpeft::rec::SasRecConfig;
use perpeft::rec::loss::bce_loss;
use perpeft::train::batch_tensors;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[test]
fn wgpu_and_flex_compute_the_same_states_and_ranks() {
    let _rng = common::rng_lock();
    let wgpu = DeviceChoice::Wgpu
        .resolve()
        .expect("wgpu must have an adapter in CI (lavapipe)")
        .device;
    let flex = Device::flex();
    flex.seed(11);
    let n_items = 120;
    let on_flex = SasRecConfig::new(n_items as usize).init(&flex);
    let on_wgpu = on_flex.clone().to_device(&wgpu);

    let split = common::synthetic_split(64, n_items, 9);
    let seq: Vec<i64> = split
        .train
        .iter()
        .take(16)
        .flat_map(|s| perpeft::eval::window(s, 10))
        .map(i64::from)
        .collect();
    let states = |device: &Device, model: &perpeft::rec::SasRec| {
        let t = Tensor::<2, Int>::from_data(TensorData::new(seq.clone(), [16, 10]), device);
        to_vec(model.user_states(t, model.id_table()))
    };
    let a = states(&flex, &on_flex);
    let b = states(&wgpu, &on_wgpu);
    let max_diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max);
    assert!(
        max_diff <= 1e-4,
        "flex and wgpu states differ by {max_diff}"
    );

    let ra = ranks(&on_flex, &on_flex.id_table(), &split, Phase::Test);
    let rb = ranks(&on_wgpu, &on_wgpu.id_table(), &split, Phase::Test);
    let differing = ra.iter().zip(&rb).filter(|(x, y)| x != y).count();
    assert!(
        differing <= 1,
        "{differing} of {} ranks differ between flex and wgpu",
        ra.len()
    );
}

fn training_lowers_the_loss(choice: DeviceChoice) {
    let device = choice.resolve().unwrap().device.autodiff();
    device.seed(1);
    let n_items = 80;
    let split = common::synthetic_split(32, n_items, 2);
    let sampler = Sampler::new(&split.train, n_items as usize, 10, 16, 0);
    let users: Vec<usize> = sampler.trainable_users().into_iter().take(16).collect();
    let batch = sampler.batch(&users, &mut StdRng::seed_from_u64(4));
    let (seq, pos, neg) = batch_tensors(&batch, &device);
    let mut model = SasRecConfig::new(n_items as usize)
        .with_dropout(0.0)
        .init(&device);
    let mut optim = AdamWConfig::new().with_epsilon(1e-8).init();
    let loss_of =
        |m: &perpeft::rec::SasRec| bce_loss(m, m.id_table(), seq.clone(), pos.clone(), neg.clone());
    let first = loss_of(&model).into_scalar::<f32>();
    for _ in 0..30 {
        let loss = loss_of(&model);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let last = loss_of(&model).into_scalar::<f32>();
    assert!(first.is_finite() && last.is_finite());
    assert!(
        last < 0.8 * first,
        "{choice:?}: loss went from {first} to {last}"
    );
    // the padding rows never move
    let pad = to_vec(model.item_emb.val().slice([0..1, 0..32]));
    assert!(
        pad.iter().all(|&x| x == 0.0),
        "padding row of E_id changed: {pad:?}"
    );
}

#[test]
fn training_on_wgpu_lowers_the_loss() {
    let _rng = common::rng_lock();
    training_lowers_the_loss(DeviceChoice::Wgpu);
}

#[test]
fn training_on_flex_lowers_the_loss() {
    let _rng = common::rng_lock();
    training_lowers_the_loss(DeviceChoice::Flex);
}
