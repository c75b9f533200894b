//! Trains a network on your own pictures with mlp-core alone: a folder per class (PNG or JPEG),
//! as torchvision's ImageFolder reads them, the folder names being the class names. Under
//! `train/` and `test/` where both are there; otherwise the last tenth is held out to test on.
//!
//! ```sh
//! cargo run --release -p mlp-core --example train_folders -- PICTURES [SIDE] [EPOCHS]
//! ```

use std::path::PathBuf;

use mlp_core::data::{PictureOptions, load_folders};
use mlp_core::train::{TrainConfig, train};
use mlp_core::{
    Activation, CpuBackend, Hyperparameters, Init, LayerSizes, Optimiser, OptimiserKind, Output,
    Parameters, Reduction,
};

fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().ok_or("give the folder of class folders")?);
    let side: usize = args.next().map_or(Ok(28), |s| s.parse())?;
    let epochs: usize = args.next().map_or(Ok(10), |s| s.parse())?;
    let options = PictureOptions {
        side,
        ..PictureOptions::default()
    };
    let mut data = load_folders(&dir, options)?;
    for note in &data.notes {
        println!("note: {note}");
    }
    if data.test.is_empty() {
        let held_out = (data.train.len() / 10).max(1);
        (data.train, data.test) = data.train.split_last(held_out);
    }
    let names = data.class_names.clone().unwrap_or_default();
    println!(
        "{} training and {} test pictures, {side} x {side}, classes {}",
        data.train.len(),
        data.test.len(),
        names.join(", ")
    );
    // The modern preset's network: ReLU layers, a softmax output, Adam on shuffled batches.
    let hyper = Hyperparameters {
        activation: Activation::Relu,
        output: Output::SoftmaxCrossEntropy,
        reduction: Reduction::Mean,
        optimiser: Optimiser::with_defaults(OptimiserKind::Adam),
        learning_rate: 0.001,
        ..Hyperparameters::seed()
    };
    let config = TrainConfig {
        epochs,
        learning_rate: hyper.learning_rate,
        shuffle: true,
        ..TrainConfig::seed()
    };
    let (inputs, classes) = (side * side, names.len());
    let sizes = LayerSizes::new(vec![inputs, 256, 128, classes], inputs, classes)?;
    let parameters = Parameters::init(&sizes, Init::He, config.seed);
    let mut backend = CpuBackend::new(parameters, &hyper, &data.train, &data.test)?;
    train(&mut backend, data.train.len(), &config, |m, _| {
        println!(
            "epoch {:>2}: train loss {:.4}  test accuracy {:.2}%",
            m.epoch,
            m.train_loss,
            100.0 * m.val_accuracy
        );
    })?;
    Ok(())
}
