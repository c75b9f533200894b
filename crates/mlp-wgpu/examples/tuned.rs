//! A library user's GPU training on the kernels tuned for this adapter: the variant found in
//! the kernel cache (`mlp-cli tune` and `mlp-cli --backend gpu` write it), or, the first time,
//! every variant timed here and the fastest kept there.
//!
//!     cargo run --release -p mlp-wgpu --example tuned -- MNIST_DIR [CACHE.json]
//!
//! trains the seed network for two epochs on the first 6,000 training images of MNIST_DIR and
//! prints the variant, how it was chosen, and the test accuracy. The cache is CACHE.json, else
//! where mlp-cli keeps it (MLP_KERNEL_CACHE, else ~/.cache/mlp/kernels.json).

use std::path::Path;

use mlp_core::data::{self, DataFormat};
use mlp_core::train::{TrainConfig, train};
use mlp_core::{Hyperparameters, Init, LayerSizes, Parameters};
use mlp_wgpu::tune::{KernelCache, Tuned, Workload, tuned_variant};
use mlp_wgpu::{GpuBackend, GpuContext};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, rest @ ..] = &args[..] else {
        return Err("usage: tuned MNIST_DIR [CACHE.json]".into());
    };
    let mnist = data::load(Path::new(data_dir), DataFormat::Mnist)?;
    let train_set = mnist.train.first(6000);
    let hyper = Hyperparameters::seed();
    let config = TrainConfig {
        epochs: 2,
        ..TrainConfig::seed()
    };
    let parameters = Parameters::init(&LayerSizes::seed(), Init::Normal, config.seed);
    let work = Workload {
        parameters: &parameters,
        hyper: &hyper,
        max_batch: config.batch_size,
        train: &train_set,
        validation: &mnist.test,
    };
    let cache = match rest.first() {
        Some(path) => KernelCache { path: path.into() },
        None => KernelCache::locate(None)?,
    };
    let context = GpuContext::new(None)?;
    let (variant, tuned) = tuned_variant(&context, &work, &cache, 20)?;
    match tuned {
        Tuned::Cached(path) => println!("{variant}: tuned before, found in {}", path.display()),
        Tuned::TimedNow(path, timings) => {
            for t in &timings {
                println!(
                    "  {} {:.3} ms per step",
                    t.variant,
                    t.seconds_per_step * 1e3
                );
            }
            println!("{variant}: the fastest, kept in {}", path.display());
        }
    }
    let data = (&train_set, &mnist.test);
    let mut backend = GpuBackend::with_variant(
        context,
        &parameters,
        &hyper,
        config.batch_size,
        data,
        variant,
    )?;
    let history = train(&mut backend, train_set.len(), &config, |_, _| {})?;
    let last = history.last().expect("two epochs");
    println!(
        "after {} epochs: {:.2}% on the test set",
        last.epoch,
        100.0 * last.val_accuracy
    );
    Ok(())
}
