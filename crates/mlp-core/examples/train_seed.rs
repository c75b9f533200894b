//! Trains the seed network of docs/SEED.md with mlp-core alone: load MNIST, draw the initial
//! weights, and hand a backend to the library's epoch loop. Expect 92.81 % after 30 epochs.
//!
//! ```sh
//! cargo run --release -p mlp-core --example train_seed [MNIST_DIR] [EPOCHS]
//! ```

use std::path::PathBuf;

use mlp_core::data::{self, DataFormat};
use mlp_core::train::{TrainConfig, train};
use mlp_core::{CpuBackend, Hyperparameters, Init, LayerSizes, Parameters};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "data/mnist".into()));
    let config = TrainConfig {
        epochs: match args.next() {
            Some(text) => text.parse()?,
            None => TrainConfig::seed().epochs,
        },
        ..TrainConfig::seed()
    };
    let mnist = data::load(&dir, DataFormat::Mnist)?;
    let parameters = Parameters::init(&LayerSizes::seed(), Init::Normal, config.seed);
    let hyper = Hyperparameters::seed();
    let mut backend = CpuBackend::new(parameters, &hyper, &mnist.train, &mnist.test)?;
    let history = train(&mut backend, mnist.train.len(), &config, |m, _| {
        println!(
            "epoch {:>2}: train loss {:.5}  val loss {:.5}  val accuracy {:.2}%",
            m.epoch,
            m.train_loss,
            m.val_loss,
            100.0 * m.val_accuracy
        );
    })?;
    let last = history.last().expect("at least one epoch");
    println!(
        "after {} epochs: {:.2}%",
        last.epoch,
        100.0 * last.val_accuracy
    );
    Ok(())
}
