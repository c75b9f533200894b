//! What the page and the API show of one picture: a saved model's reading of its 28 x 28
//! pixels, on the chosen backend, with every hidden layer's activations from the reference.

use std::sync::Mutex;

use anyhow::{Context, Result};
use mlp_core::Model;
use mlp_core::data::IMAGE_SIDE;
use ndarray::{Array2, ArrayView1};

use crate::args::DeviceArgs;
use crate::predict::class_shares;
use crate::session::build_backend;

/// A saved model, ready to read one picture at a time from any thread, its backend built once
/// (`mlp_core::predictor`): on the GPU, one device and its pipelines for the server's life.
pub struct Predictor {
    pub model: Model,
    /// What computes the outputs, as the backend names itself.
    pub backend_name: String,
    /// One reading at a time: a reading puts its picture into the backend's buffers.
    built: Mutex<mlp_core::predictor::Predictor>,
}

/// One picture as the model read it.
pub struct Prediction {
    /// The class with the largest output.
    pub digit: usize,
    /// Each class's share of the outputs, as `predict` prints them.
    pub scores: Vec<f64>,
    /// The 28 x 28 pixels the network saw, row by row, 0 = background, 255 = full ink.
    pub pixels: Vec<u8>,
    /// A1 .. A(L-1): each hidden layer's activations.
    pub hidden: Vec<Vec<f32>>,
    /// What computed the outputs.
    pub backend: String,
    /// The largest difference between the backend's outputs and the reference functions'
    /// (`mlp_core::cpu::forward`), which the hidden activations come from.
    pub reference_difference: f32,
}

impl Predictor {
    /// Builds the backend and reads one blank picture at once, so that a backend that cannot
    /// run (no GPU adapter, say) stops the server before it listens.
    pub fn new(model: Model, device: DeviceArgs) -> Result<Self> {
        use mlp_core::predictor::Predictor as Built;
        let image = (IMAGE_SIDE, IMAGE_SIDE);
        let backend = build_backend(
            device.backend,
            &device.gpu,
            model.parameters.clone(),
            &Built::hyperparameters(&model),
            1,
            &Built::no_training(image),
            &Built::capacity_set(1, image),
        )
        .context("cannot run the model")?;
        let built = Built::new(model.clone(), backend, 1, image);
        let predictor = Self {
            backend_name: built.backend_name(),
            model,
            built: Mutex::new(built),
        };
        predictor.predict(vec![0; IMAGE_SIDE * IMAGE_SIDE])?;
        Ok(predictor)
    }

    /// The model's reading of `pixels` (28 x 28, row by row).
    pub fn predict(&self, pixels: Vec<u8>) -> Result<Prediction> {
        let input = Array2::from_shape_fn((1, pixels.len()), |(_, i)| f32::from(pixels[i]) / 255.0);
        let mut activations = self.model.forward(input.view());
        let reference_output = activations.pop().expect("a model has layers");
        let output = {
            let mut built = self.built.lock().unwrap_or_else(|p| p.into_inner());
            built.outputs(&pixels)?
        };
        let backend = self.backend_name.clone();
        let digit = mlp_core::cpu::argmax_rows(output.view())[0] as usize;
        let output = output.row(0);
        Ok(Prediction {
            digit,
            scores: class_shares(output),
            pixels,
            hidden: activations
                .iter()
                .map(|a| a.iter().copied().collect())
                .collect(),
            backend,
            reference_difference: largest_difference(output, reference_output.row(0)),
        })
    }
}

fn largest_difference(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
