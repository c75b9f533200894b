//! A training session: the data, the initial parameters and the chosen backend, built once
//! from the options that `train` and `bench` share.

use std::path::Path;

use anyhow::{Context, Result, bail};
use mlp_core::{Backend, CpuBackend, Dataset, Evaluation, Hyperparameters, Model, Parameters};
use mlp_wgpu::{GpuBackend, GpuContext};

use crate::args::{BackendKind, GpuArgs, NetworkArgs};
use crate::data;
use crate::settings::Settings;

pub struct Session {
    pub backend: Box<dyn Backend>,
    pub train_rows: usize,
    /// The fraction of training pixels that are not 0.
    pub train_density: f64,
    /// The validation set, for the confusion matrix and the digit grid.
    pub validation: Dataset,
    /// With --validation: the test set, evaluated once at the end; without, the test set is
    /// the validation set.
    pub test: Option<Dataset>,
    /// Epochs the --init model had been trained for (0 from random parameters).
    pub epochs_before: usize,
}

impl Session {
    pub fn new(args: &NetworkArgs, settings: &Settings) -> Result<Self> {
        args.gpu
            .check_for(args.backend())
            .map_err(anyhow::Error::msg)?;
        let (parameters, epochs_before) = initial_parameters(args, settings)?;
        let (train, validation, test) = split_data(args)?;
        let backend = build_backend(
            args.backend(),
            &args.gpu,
            parameters,
            &settings.hyper,
            settings.batch_size,
            &train,
            &validation,
        )?;
        Ok(Self {
            backend,
            train_rows: train.len(),
            train_density: train.images.iter().filter(|&&p| p != 0).count() as f64
                / train.images.len().max(1) as f64,
            validation,
            test,
            epochs_before,
        })
    }

    /// Which images the per-epoch validation figures are from.
    pub fn validation_name(&self) -> String {
        match self.test {
            Some(_) => format!(
                "the last {} training images, held out",
                self.validation.len()
            ),
            None => "the test set (as the seed notebook does)".into(),
        }
    }
}

/// The training, validation and (where --validation holds images out) test sets: the held-out
/// images are the last of the training file, taken before --limit cuts the rest.
pub fn split_data(args: &NetworkArgs) -> Result<(Dataset, Dataset, Option<Dataset>)> {
    let mnist = data::load(&args.data)?;
    let (train, validation, test) = match args.validation {
        None => (mnist.train, mnist.test, None),
        Some(held_out) => {
            let count = held_out.of(mnist.train.len()).map_err(anyhow::Error::msg)?;
            let (train, validation) = mnist.train.split_last(count);
            (train, validation, Some(mnist.test))
        }
    };
    let train = match args.limit {
        Some(limit) => train.first(limit),
        None => train,
    };
    Ok((train, validation, test))
}

/// Loss, accuracy and predictions of `parameters` on `set`, on the run's backend.
pub fn evaluate_on(
    args: &NetworkArgs,
    settings: &Settings,
    parameters: Parameters,
    set: &Dataset,
) -> Result<Evaluation> {
    let no_training = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        rows: set.rows,
        cols: set.cols,
    };
    let mut backend = build_backend(
        args.backend(),
        &args.gpu,
        parameters,
        &settings.hyper,
        1,
        &no_training,
        set,
    )?;
    Ok(backend.evaluate()?)
}

/// Random parameters as the settings draw them, or those of the --init model (with its epochs
/// so far), which must be the network the settings describe.
pub fn initial_parameters(args: &NetworkArgs, settings: &Settings) -> Result<(Parameters, usize)> {
    let Some(path) = &args.init else {
        let parameters = Parameters::init(&settings.layers, settings.weight_init, settings.seed);
        return Ok((parameters, 0));
    };
    let model = load_model(path)?;
    if let Err(problem) = model.parameters.check_shapes(&settings.layers) {
        bail!(
            "--init {} has layers {}, but this run has layers {}: pass --layers {} or the \
             model's --preset ({problem})",
            path.display(),
            model.parameters.layer_sizes(),
            settings.layers,
            model
                .parameters
                .sizes()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    let (info, hyper) = (&model.info, &settings.hyper);
    if info.activation != hyper.activation || info.output != hyper.output {
        bail!(
            "--init {} is a {} network with {} output, but this run trains {} with {}: pass \
             --activation {} --output {}",
            path.display(),
            info.activation,
            info.output,
            hyper.activation,
            hyper.output,
            info.activation,
            info.output
        );
    }
    Ok((model.parameters, model.info.epochs))
}

/// Loads a saved model and checks that it maps MNIST's images to its classes.
pub fn load_model(path: &Path) -> Result<Model> {
    let model = Model::load(path)?;
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
    gpu: &GpuArgs,
    parameters: Parameters,
    hyper: &Hyperparameters,
    max_batch: usize,
    train: &Dataset,
    validation: &Dataset,
) -> Result<Box<dyn Backend>> {
    Ok(match kind {
        BackendKind::Cpu => Box::new(CpuBackend::new(parameters, hyper, train, validation)?),
        BackendKind::Gpu => {
            let context = GpuContext::new(gpu.adapter.as_deref())?;
            let mut backend =
                GpuBackend::new(context, &parameters, hyper, max_batch, train, validation)?;
            if let Some(matmul) = gpu.matmul {
                backend.set_dense_schedule(matmul);
            }
            Box::new(backend)
        }
    })
}

/// A backend that only runs a saved model forward over `images`, as its activation and output
/// say: its training set is empty.
pub fn inference_backend(
    kind: BackendKind,
    gpu: &GpuArgs,
    model: &Model,
    images: &Dataset,
) -> Result<Box<dyn Backend>> {
    gpu.check_for(kind).map_err(anyhow::Error::msg)?;
    let no_training = Dataset {
        images: Vec::new(),
        labels: Vec::new(),
        rows: images.rows,
        cols: images.cols,
    };
    // The training options are never used: nothing is trained.
    let hyper = Hyperparameters {
        activation: model.info.activation,
        output: model.info.output,
        ..Hyperparameters::seed()
    };
    build_backend(
        kind,
        gpu,
        model.parameters.clone(),
        &hyper,
        1,
        &no_training,
        images,
    )
    .context("cannot run the model")
}
