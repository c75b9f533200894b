//! `mlp-cli predict --model FILE IMAGE...`: the digit in each picture, made MNIST-like first,
//! with the three most likely classes; or `--index N`, the N-th test image and its label.

use anyhow::{Result, bail};
use mlp_core::data::IMAGE_SIDE;
use mlp_core::digit::load_digit;
use mlp_core::{Dataset, Output};
use ndarray::ArrayView1;

use crate::args::PredictArgs;
use crate::console::say;
use crate::data;
use crate::session::{inference_backend, load_model};

/// One picture to predict: where it came from, its 28 x 28 pixels and, for a test image,
/// its label.
struct Input {
    name: String,
    pixels: Vec<u8>,
    label: Option<u8>,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    let mut inputs = Vec::new();
    if let Some(index) = args.index {
        let test = data::load(&args.data)?.test;
        if index >= test.len() {
            bail!(
                "--index {index} is past the end of the test set: give 0 to {}",
                test.len() - 1
            );
        }
        let pixels = test.pixels();
        inputs.push(Input {
            name: format!("test image {index}"),
            pixels: test.images[index * pixels..(index + 1) * pixels].to_vec(),
            label: Some(test.labels[index]),
        });
    }
    for path in &args.images {
        inputs.push(Input {
            name: path.display().to_string(),
            pixels: load_digit(path)?,
            label: None,
        });
    }
    let images = Dataset {
        images: inputs.iter().flat_map(|i| i.pixels.clone()).collect(),
        labels: vec![0; inputs.len()],
        rows: IMAGE_SIDE,
        cols: IMAGE_SIDE,
    };
    let mut backend = inference_backend(args.device.backend, &args.device.gpu, &model, &images)?;
    let outputs = backend.validation_outputs()?;
    let meaning = shares_meaning(model.info.output);
    say!(
        "model: {} ({} output; {meaning})\nbackend: {}",
        args.model.display(),
        model.info.output,
        backend.name()
    );
    for (input, output) in inputs.iter().zip(outputs.outer_iter()) {
        let ranked = ranked_classes(output);
        let top: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|(class, share)| format!("{class} ({share:.3})"))
            .collect();
        let label = match input.label {
            Some(label) => format!("  label {label}"),
            None => String::new(),
        };
        say!("\n{}: digit {}{label}", input.name, ranked[0].0);
        say!("  top 3: {}", top.join("  "));
        say!("  as the network saw it:\n{}", ascii_digit(&input.pixels));
    }
    Ok(())
}

/// Classes by decreasing output, each with its share of the summed outputs (see
/// [`class_shares`]).
fn ranked_classes(output: ArrayView1<f32>) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = class_shares(output).into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// Each class's share of the summed outputs: the probability itself for a softmax output;
/// the seed's sigmoid outputs are not probabilities, and scaled to sum to 1 they rank the same
/// way.
pub fn class_shares(output: ArrayView1<f32>) -> Vec<f64> {
    let total: f64 = output.iter().map(|&a| f64::from(a.max(0.0))).sum();
    output
        .iter()
        .map(|&a| f64::from(a.max(0.0)) / total.max(f64::MIN_POSITIVE))
        .collect()
}

/// What the numbers [`class_shares`] gives mean, for a model with output `output`.
pub fn shares_meaning(output: Output) -> &'static str {
    match output {
        Output::SoftmaxCrossEntropy => "the numbers are softmax probabilities",
        Output::SigmoidMse => "the numbers are the sigmoid outputs scaled to sum to 1",
    }
}

/// The 28 x 28 pixels as text, darker characters for more ink.
fn ascii_digit(pixels: &[u8]) -> String {
    const SHADES: &[u8] = b" .:-=+*#%@";
    pixels
        .chunks(IMAGE_SIDE)
        .map(|row| {
            let line: String = row
                .iter()
                .map(|&p| char::from(SHADES[usize::from(p) * (SHADES.len() - 1) / 255]))
                .collect();
            format!("    |{line}|")
        })
        .collect::<Vec<_>>()
        .join("\n")
}
