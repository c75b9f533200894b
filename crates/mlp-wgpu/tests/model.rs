//! A model trained on the GPU, saved and loaded again, is bit-for-bit the model the GPU
//! holds, and a GPU backend started from a saved model holds exactly its parameters.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;

use mlp_core::backend::Backend;
use mlp_core::rng::Rng;
use mlp_core::{Dataset, Hyperparameters, Model, ModelInfo, Parameters};
use mlp_wgpu::{GpuBackend, GpuContext};

use common::Scratch;

fn context() -> GpuContext {
    GpuContext::new(None).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

#[test]
fn gpu_model_save_load_round_trip_is_exact() {
    let mut rng = Rng::new(11);
    let images = Dataset {
        images: (0..64 * 784)
            .map(|_| (rng.next_u64() % 256) as u8)
            .collect(),
        labels: (0..64).map(|_| (rng.next_u64() % 10) as u8).collect(),
        rows: 28,
        cols: 28,
    };
    let start = Parameters::seed_init(&"784,24,12,10".parse().unwrap(), 4);
    let mut gpu = GpuBackend::new(
        context(),
        &start,
        &Hyperparameters::seed_with_rate(0.02),
        32,
        &images,
        &images,
    )
    .unwrap();
    for rows in [0..32, 32..64, 0..32] {
        gpu.train_batch(rows).unwrap();
    }
    let trained = gpu.parameters().unwrap();
    assert_ne!(trained, start);

    let scratch = Scratch::new("gpu-model");
    let path = scratch.path().join("gpu.safetensors");
    Model {
        parameters: trained.clone(),
        info: ModelInfo::seed(4),
    }
    .save(&path)
    .unwrap();
    let loaded = Model::load(&path).unwrap();
    assert_eq!(
        loaded.parameters, trained,
        "the file must hold the GPU's parameters exactly"
    );

    let mut restarted = GpuBackend::new(
        context(),
        &loaded.parameters,
        &Hyperparameters::seed_with_rate(0.02),
        32,
        &images,
        &images,
    )
    .unwrap();
    assert_eq!(restarted.parameters().unwrap(), trained);
    assert_eq!(restarted.evaluate().unwrap(), gpu.evaluate().unwrap());
}
