//! A saved model ready to read pictures, its backend built once: a server reads picture after
//! picture with one backend (on a GPU, one device and its pipelines) for its whole life.
//!
//! The backend is built with no training images and, as its validation set, `rows` images lit
//! everywhere ([`Predictor::capacity_set`]), so that any later images fit where they did; each
//! call puts the new images in their place ([`Backend::set_validation`]) and reads the output
//! layer. The backend can be any: [`Predictor::cpu`] builds the CPU's, and a GPU backend built
//! on the same two sets works alike (`crates/mlp-wgpu/examples/predict.rs`).

use ndarray::Array2;

use crate::backend::{Backend, BackendError};
use crate::cpu::CpuBackend;
use crate::data::Dataset;
use crate::model::Model;
use crate::options::Hyperparameters;

pub struct Predictor {
    model: Model,
    backend: Box<dyn Backend + Send>,
    rows: usize,
    /// The input images' shape, (rows, cols) of pixels.
    image: (usize, usize),
}

impl Predictor {
    /// `backend` built on `model`'s parameters, [`Predictor::no_training`] and
    /// [`Predictor::capacity_set`]`(rows, image)`.
    pub fn new(
        model: Model,
        backend: Box<dyn Backend + Send>,
        rows: usize,
        image: (usize, usize),
    ) -> Self {
        Self {
            model,
            backend,
            rows,
            image,
        }
    }

    /// On the CPU, one image at a time, on the caller's thread (one image has no halves to
    /// share, and a server's threads are its own).
    pub fn cpu(model: Model, image: (usize, usize)) -> Result<Self, BackendError> {
        let backend = CpuBackend::new(
            model.parameters.clone(),
            &Self::hyperparameters(&model),
            &Self::no_training(image),
            &Self::capacity_set(1, image),
        )?
        .with_threads(1);
        Ok(Self::new(model, Box::new(backend), 1, image))
    }

    /// The options a backend that only reads needs: the model's activation and output; the
    /// training options are never used.
    pub fn hyperparameters(model: &Model) -> Hyperparameters {
        Hyperparameters {
            activation: model.info.activation,
            output: model.info.output,
            ..Hyperparameters::seed()
        }
    }

    /// An empty training set of `image`-shaped images.
    pub fn no_training((rows, cols): (usize, usize)) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            rows,
            cols,
        }
    }

    /// `count` images lit in every pixel: the most any images can hold.
    pub fn capacity_set(count: usize, (rows, cols): (usize, usize)) -> Dataset {
        Dataset {
            images: vec![255; count * rows * cols],
            labels: vec![0; count],
            rows,
            cols,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// What computes the outputs, as the backend names itself.
    pub fn backend_name(&self) -> String {
        self.backend.name()
    }

    /// A_L of `pixels`, one image's bytes (0 = background, 255 = full ink), as (1, classes).
    pub fn outputs(&mut self, pixels: &[u8]) -> Result<Array2<f32>, BackendError> {
        let (rows, cols) = self.image;
        if pixels.len() != rows * cols {
            return Err(BackendError::ValidationShape {
                expected: format!("1 of {} pixels", rows * cols),
                found: format!("1 of {} pixels", pixels.len()),
            });
        }
        // The other rows, where the backend reads several at a time, read a blank image.
        let mut images = vec![0; self.rows * rows * cols];
        images[..pixels.len()].copy_from_slice(pixels);
        let set = Dataset {
            images,
            labels: vec![0; self.rows],
            rows,
            cols,
        };
        self.backend.set_validation(&set)?;
        let outputs = self.backend.validation_outputs()?;
        Ok(outputs.slice(ndarray::s![0..1, ..]).to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelInfo;
    use crate::network::{LayerSizes, Parameters};

    #[test]
    fn each_picture_is_read_as_the_reference_reads_it() {
        let sizes = LayerSizes::new(vec![12, 5, 3], 12, 3).unwrap();
        let model = Model {
            parameters: Parameters::seed_init(&sizes, 4),
            info: ModelInfo::seed(4),
        };
        let mut predictor = Predictor::cpu(model.clone(), (3, 4)).unwrap();
        for seed in 0..3u8 {
            let pixels: Vec<u8> = (0..12u8)
                .map(|i| i.wrapping_mul(37).wrapping_add(seed.wrapping_mul(91)))
                .collect();
            let input = Array2::from_shape_fn((1, 12), |(_, i)| f32::from(pixels[i]) / 255.0);
            let expected = model.forward(input.view());
            let found = predictor.outputs(&pixels).unwrap();
            let largest = (&found - expected.last().unwrap()).fold(0f32, |m, d| m.max(d.abs()));
            assert!(largest < 1e-6, "picture {seed}: {largest}");
        }
        let err = predictor.outputs(&[0; 11]).unwrap_err().to_string();
        assert!(err.contains("these are 1 of 11 pixels"), "{err}");
    }
}
