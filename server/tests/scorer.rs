//! The plain-Rust SASRec in `shared` (what the server serves with and the browser runs) agrees
//! with the burn model in inference mode to 1e-5, on trained (non-initial) weights.

mod common;

use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use perpeft::data::sampler::Sampler;
use perpeft::engine::to_vec;
use perpeft::eval::window;
use perpeft::rec::SasRecConfig;
use perpeft::rec::loss::bce_loss;
use perpeft::rec::sasrec::Mode;
use perpeft::train::batch_tensors;
use rand::SeedableRng;
use rand::rngs::StdRng;
use shared::ItemTable;

#[test]
fn shared_sasrec_equals_burn_to_1e5() {
    let _rng = common::rng_lock();
    parity(Mode::Reference);
}

#[test]
fn shared_sasrec_equals_burn_to_1e5_in_standard_mode() {
    let _rng = common::rng_lock();
    parity(Mode::Standard);
}

/// Standard mode ignores whatever the padding row holds; reference mode does not.
#[test]
fn only_standard_mode_ignores_the_padding_row() {
    let _rng = common::rng_lock();
    let device = Device::flex();
    device.seed(4);
    for (mode, ignores) in [(Mode::Standard, true), (Mode::Reference, false)] {
        let model = SasRecConfig::new(30).with_mode(mode).init(&device);
        let mut table = to_vec(model.id_table());
        let a = model
            .to_scorer()
            .user_state(&ItemTable::new(32, &table).unwrap(), &[3, 4, 5]);
        table[..32].iter_mut().for_each(|v| *v = 0.7);
        let b = model
            .to_scorer()
            .user_state(&ItemTable::new(32, &table).unwrap(), &[3, 4, 5]);
        assert_eq!(a == b, ignores, "{mode:?}");
    }
}

fn parity(mode: Mode) {
    let device = Device::flex().autodiff();
    device.seed(21);
    let n_items = 150;
    let split = common::synthetic_split(80, n_items, 13);
    let sampler = Sampler::new(&split.train, n_items as usize, 10, 16, 0);
    let mut model = SasRecConfig::new(n_items as usize)
        .with_mode(mode)
        .init(&device);
    let mut optim = AdamWConfig::new().with_epsilon(1e-8).init();
    // move every weight (LayerNorm scales and shifts, biases) away from its initial value
    for batch in sampler.epoch(1).iter().chain(sampler.epoch(2).iter()) {
        let (seq, pos, neg) = batch_tensors(batch, &device);
        let loss = bce_loss(&model, model.id_table(), seq, pos, neg);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-2, model, grads);
    }
    let model = model.valid();
    let table_t = model.id_table();
    let table_v = to_vec(table_t.clone());
    let table = ItemTable::new(model.hidden(), &table_v).unwrap();
    let scorer = model.to_scorer();
    assert!(
        scorer.blocks[0].attn_norm.beta.iter().any(|&b| b != 0.0),
        "weights still at init"
    );

    // histories of every length 0..=14, including shorter than the window (padding slots)
    let mut rng = StdRng::seed_from_u64(3);
    let histories: Vec<Vec<u32>> = (0..60)
        .map(|i| {
            (0..i % 15)
                .map(|_| rand::Rng::random_range(&mut rng, 1..=n_items))
                .collect()
        })
        .collect();
    let seq: Vec<i64> = histories
        .iter()
        .flat_map(|h| window(h, 10))
        .map(i64::from)
        .collect();
    let seq =
        Tensor::<2, Int>::from_data(TensorData::new(seq, [histories.len(), 10]), &Device::flex());
    let burn_states = to_vec(model.user_states(seq, table_t));
    let mut max_diff = 0.0f32;
    for (i, h) in histories.iter().enumerate() {
        let ours = scorer.user_state(&table, h);
        for (a, b) in ours.iter().zip(&burn_states[i * 32..(i + 1) * 32]) {
            max_diff = max_diff.max((a - b).abs());
        }
    }
    println!("max |shared - burn| = {max_diff:e}");
    assert!(
        max_diff <= 1e-5,
        "shared SASRec differs from burn by {max_diff}"
    );
}
