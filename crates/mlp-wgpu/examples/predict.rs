//! A library user's predictor on the GPU: a saved model read with one device and its
//! pipelines, built once, picture after picture.
//!
//!     cargo run --release -p mlp-wgpu --example predict -- MODEL.safetensors MNIST_DIR [COUNT]
//!
//! prints the first COUNT (10) test digits of MNIST_DIR with the model's reading of each, and
//! how many it read right.

use std::path::Path;

use mlp_core::data::{self, DataFormat};
use mlp_core::predictor::Predictor;
use mlp_core::{Model, cpu};
use mlp_wgpu::{GpuBackend, GpuContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model_path, data_dir, rest @ ..] = &args[..] else {
        return Err("usage: predict MODEL.safetensors MNIST_DIR [COUNT]".into());
    };
    let count: usize = rest.first().map_or(Ok(10), |c| c.parse())?;
    let model = Model::load(Path::new(model_path))?;
    let test = data::load(Path::new(data_dir), DataFormat::Mnist)?.test;
    let image = (test.rows, test.cols);
    // Built once: the device, the model's parameters on it, and the kernels.
    let backend = GpuBackend::new(
        GpuContext::new(None)?,
        &model.parameters,
        &Predictor::hyperparameters(&model),
        1,
        &Predictor::no_training(image),
        &Predictor::capacity_set(1, image),
    )?;
    let mut predictor = Predictor::new(model, Box::new(backend), 1, image);
    println!("{}", predictor.backend_name());
    let mut right = 0;
    for i in 0..count.min(test.len()) {
        let pixels = &test.images[i * test.pixels()..(i + 1) * test.pixels()];
        let outputs = predictor.outputs(pixels)?;
        let digit = cpu::argmax_rows(outputs.view())[0];
        right += usize::from(digit == u32::from(test.labels[i]));
        println!("test image {i}: label {}, read {digit}", test.labels[i]);
    }
    println!("{right} of {} read right", count.min(test.len()));
    Ok(())
}
