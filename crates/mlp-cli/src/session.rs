//! A training session: the data, the initial parameters and the chosen backend, built once
//! from the options that `train` and `bench` share.

use std::path::Path;

use anyhow::{Context, Result, bail};
use mlp_core::{Backend, CpuBackend, Dataset, Model, ModelInfo, Parameters};
use mlp_wgpu::{GpuBackend, GpuContext};

use crate::args::{BackendKind, NetworkArgs};
use crate::data;

pub struct Session {
    pub backend: Box<dyn Backend>,
    pub train_rows: usize,
    /// The validation set, for the confusion matrix and the digit grid.
    pub validation: Dataset,
    /// Epochs the --init model had been trained for (0 from random parameters).
    pub epochs_before: usize,
}

impl Session {
    pub fn new(args: &NetworkArgs) -> Result<Self> {
        let (parameters, epochs_before) = initial_parameters(args)?;
        let mnist = data::load_limited(args)?;
        let train = mnist.train;
        let backend = build_backend(
            args.backend,
            args.adapter.as_deref(),
            parameters,
            args.lr,
            args.batch_size,
            &train,
            &mnist.test,
        )?;
        Ok(Self {
            backend,
            train_rows: train.len(),
            validation: mnist.test,
            epochs_before,
        })
    }
}

/// The seed's random parameters, or those of the --init model (with its epochs so far).
pub fn initial_parameters(args: &NetworkArgs) -> Result<(Parameters, usize)> {
    let Some(path) = &args.init else {
        return Ok((Parameters::seed_init(&args.layers, args.seed), 0));
    };
    let model = load_model(path)?;
    if let Err(problem) = model.parameters.check_shapes(&args.layers) {
        bail!(
            "--init {} has layers {}, but this run has --layers {}: pass --layers {} \
             ({problem})",
            path.display(),
            model.parameters.layer_sizes(),
            args.layers,
            model
                .parameters
                .sizes()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    Ok((model.parameters, model.info.epochs))
}

/// Loads a saved model and checks that this build can run the network it describes.
pub fn load_model(path: &Path) -> Result<Model> {
    let model = Model::load(path)?;
    let seed = ModelInfo::seed(0);
    if model.info.activation != seed.activation || model.info.output != seed.output {
        bail!(
            "{} is a {} network with {} output; this build runs {} networks with {} output",
            path.display(),
            model.info.activation,
            model.info.output,
            seed.activation,
            seed.output
        );
    }
    let sizes = model.parameters.sizes();
    if sizes.first() != Some(&mlp_core::network::INPUT_SIZE)
        || sizes.last() != Some(&mlp_core::network::CLASSES)
    {
        bail!(
            "{} maps {} inputs to {} outputs; MNIST needs 784 to 10",
            path.display(),
            sizes.first().unwrap_or(&0),
            sizes.last().unwrap_or(&0)
        );
    }
    Ok(model)
}

/// The backend `kind` (on the adapter matching `adapter`), holding `parameters` and both sets,
/// for batches of up to `max_batch` rows.
pub fn build_backend(
    kind: BackendKind,
    adapter: Option<&str>,
    parameters: Parameters,
    learning_rate: f32,
    max_batch: usize,
    train: &Dataset,
    validation: &Dataset,
) -> Result<Box<dyn Backend>> {
    Ok(match kind {
        BackendKind::Cpu => Box::new(CpuBackend::new(
            parameters,
            learning_rate,
            train,
            validation,
        )?),
        BackendKind::Gpu => {
            let context = GpuContext::new(adapter)?;
            Box::new(GpuBackend::new(
                context,
                &parameters,
                learning_rate,
                max_batch,
                train,
                validation,
            )?)
        }
    })
}

/// A backend that only runs a saved model forward over `images`: its training set is empty.
pub fn inference_backend(
    kind: BackendKind,
    adapter: Option<&str>,
    model: &Model,
    images: &Dataset,
) -> Result<Box<dyn Backend>> {
    let no_training = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        rows: images.rows,
        cols: images.cols,
    };
    build_backend(
        kind,
        adapter,
        model.parameters.clone(),
        // Never used: nothing is trained.
        1.0,
        1,
        &no_training,
        images,
    )
    .context("cannot run the model")
}
