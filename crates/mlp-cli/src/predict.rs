//! `mlp-cli predict --model FILE IMAGE...`: the digit in each picture, made MNIST-like first,
//! with the three most likely classes; or `--index N`, the N-th test image and its label.

use anyhow::{Result, bail};
use mlp_core::data::{IMAGE_SIDE, PictureOptions, PictureStyle, input_pixels};
use mlp_core::digit::load_digit;
use mlp_core::{Dataset, Output};
use ndarray::ArrayView1;

use crate::args::PredictArgs;
use crate::console::say;
use crate::data;
use crate::session::{
    check_model_fits, data_as_trained, inference_backend, load_model, picture_reading,
};

/// The network's input from the picture at `path`: MNIST's preparation for a digit model
/// (up to `digit::MAX_PIXELS`), else as the model's folders were read.
fn read_picture(path: &std::path::Path, reading: PictureOptions) -> Result<Vec<u8>> {
    let mnist_like = reading.style == PictureStyle::Digit && reading.side == IMAGE_SIDE;
    Ok(match mnist_like {
        true => load_digit(path)?,
        false => input_pixels(path, reading)?,
    })
}

/// One picture to predict: where it came from, its 28 x 28 pixels and, for a test image,
/// its label.
struct Input {
    name: String,
    pixels: Vec<u8>,
    label: Option<u8>,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    let model = load_model(&args.model)?;
    if let Some(csv) = &args.csv {
        return crate::submission::run(args, &model, csv);
    }
    let mut inputs = Vec::new();
    // Pictures are made 28 x 28; a test image is as its data set has it.
    let (mut rows, mut cols) = (IMAGE_SIDE, IMAGE_SIDE);
    if let Some(index) = args.index {
        let data_args = data_as_trained(&args.data, &model, &args.model)?;
        let test = data::load(&data_args)?.test;
        check_model_fits(&model, &args.model, &test, data_args.format())?;
        if index >= test.len() {
            bail!(
                "--index {index} is past the end of the test set: give 0 to {}",
                test.len() - 1
            );
        }
        let pixels = test.pixels();
        (rows, cols) = (test.rows, test.cols);
        inputs.push(Input {
            name: format!("test image {index}"),
            pixels: test.images[index * pixels..(index + 1) * pixels].to_vec(),
            label: Some(test.labels[index]),
        });
    }
    if !args.images.is_empty() {
        let reading = picture_reading(&model, &args.model)?;
        (rows, cols) = (reading.side, reading.side);
        for path in &args.images {
            inputs.push(Input {
                name: path.display().to_string(),
                pixels: read_picture(path, reading)?,
                label: None,
            });
        }
    }
    let images = Dataset {
        images: inputs.iter().flat_map(|i| i.pixels.clone()).collect(),
        labels: vec![0; inputs.len()],
        rows,
        cols,
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
    let names: Option<Vec<&str>> = model
        .info
        .options
        .get("class_names")
        .map(|names| names.split("; ").collect());
    let class = |class: usize| match names.as_ref().and_then(|n| n.get(class)) {
        Some(name) => format!("{class} {name}"),
        None => class.to_string(),
    };
    let kind = if names.is_some() { "class" } else { "digit" };
    for (input, output) in inputs.iter().zip(outputs.outer_iter()) {
        let ranked = ranked_classes(output);
        let top: Vec<String> = ranked
            .iter()
            .take(3)
            .map(|&(c, share)| format!("{} ({share:.3})", class(c)))
            .collect();
        let label = match input.label {
            Some(label) => format!("  label {}", class(usize::from(label))),
            None => String::new(),
        };
        say!("\n{}: {kind} {}{label}", input.name, class(ranked[0].0));
        say!("  top 3: {}", top.join("  "));
        say!(
            "  as the network saw it:\n{}",
            ascii_digit(&input.pixels, cols)
        );
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

/// The pixels, `cols` a row, as text, darker characters for more ink.
fn ascii_digit(pixels: &[u8], cols: usize) -> String {
    const SHADES: &[u8] = b" .:-=+*#%@";
    pixels
        .chunks(cols)
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
