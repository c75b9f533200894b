//! A training session: the data, the initial parameters and the chosen backend, built once
//! from the options that `train` and `bench` share.

use std::path::Path;

use anyhow::{Context, Result, bail};
use mlp_core::data::{DataFormat, PictureOptions, PictureStyle};
use mlp_core::simd::InstructionSet;
use mlp_core::{Backend, CpuBackend, Dataset, Evaluation, Hyperparameters, Model, Parameters};
use mlp_wgpu::{GpuBackend, GpuContext, KernelVariant};

use crate::args::{BackendKind, DataArgs, GpuArgs, Layout, NetworkArgs, UsageError};
use crate::data;
use crate::settings::{DataShape, Settings};
use crate::tune;
use mlp_wgpu::tune::Workload;

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
    /// Each class's name, where the data names its classes.
    pub class_names: Option<Vec<String>>,
    /// Epochs the --init model had been trained for (0 from random parameters).
    pub epochs_before: usize,
}

impl Session {
    pub fn new(
        args: &NetworkArgs,
        settings: &Settings,
        data: RunData,
        (parameters, epochs_before): (Parameters, usize),
    ) -> Result<Self> {
        args.gpu
            .check_for(args.backend())
            .map_err(anyhow::Error::msg)?;
        let RunData {
            train,
            validation,
            test,
            class_names,
        } = data;
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
            class_names,
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

/// The sets of a run.
pub struct RunData {
    pub train: Dataset,
    pub validation: Dataset,
    /// With --validation: the test set, evaluated once at the end.
    pub test: Option<Dataset>,
    /// Each class's name, where the data names its classes.
    pub class_names: Option<Vec<String>>,
}

impl RunData {
    fn sets(&self) -> impl Iterator<Item = &Dataset> {
        [&self.train, &self.validation]
            .into_iter()
            .chain(&self.test)
    }

    /// The shape the sets ask of a network: their images' pixels and `classes` classes, or
    /// one more than the largest label. Fails where a label is not below `classes`.
    fn shape(&self, classes: Option<usize>) -> Result<DataShape> {
        let largest = self
            .sets()
            .flat_map(|s| s.labels.iter().copied())
            .max()
            .unwrap_or(0);
        let classes = classes.unwrap_or(usize::from(largest) + 1);
        if usize::from(largest) >= classes {
            bail!(
                "the data has label {largest}, but --classes {classes} allows labels 0 to {}",
                classes - 1
            );
        }
        Ok(DataShape {
            rows: self.train.rows,
            cols: self.train.cols,
            classes,
        })
    }
}

/// What a run starts from: its settings, its data, and its initial parameters with the
/// epochs they were trained for (0 for random ones).
pub struct Prepared {
    pub settings: Settings,
    pub data: RunData,
    pub initial: (Parameters, usize),
}

/// The run's settings, initial parameters and data. For a known data set the settings and an
/// --init model are checked first, so that a mistake there costs no loading; for --any-idx the
/// shape comes from the files.
pub fn prepare(args: &NetworkArgs, epochs: Option<usize>) -> Result<Prepared> {
    if args.data.format().shape_from_files() {
        let data = split_data(args)?;
        let shape = data.shape(args.classes)?;
        let settings = Settings::resolve(args, epochs, shape)?;
        let initial = initial_parameters(args, &settings)?;
        return Ok(Prepared {
            settings,
            data,
            initial,
        });
    }
    // Every known set has MNIST's 28 x 28 images; EMNIST has more classes.
    let known = args.data.format().class_names().map(<[&str]>::len);
    let shape = DataShape {
        classes: args.classes.or(known).unwrap_or(DataShape::MNIST.classes),
        ..DataShape::MNIST
    };
    let settings = Settings::resolve(args, epochs, shape)?;
    let initial = initial_parameters(args, &settings)?;
    let data = split_data(args)?;
    data.shape(Some(shape.classes))?;
    Ok(Prepared {
        settings,
        data,
        initial,
    })
}

/// The training, validation and (where --validation holds images out) test sets: the held-out
/// images are the last of the training file, taken before --limit cuts the rest.
pub fn split_data(args: &NetworkArgs) -> Result<RunData> {
    let mnist = data::load(&args.data)?;
    // A CSV directory whose test.csv labels nothing has no test set: the held-out images are
    // then the test too, and there must be some.
    let test = (!mnist.test.is_empty()).then_some(mnist.test);
    let (train, validation, test) = match (args.held_out(), test) {
        (None, Some(test)) => (mnist.train, test, None),
        (None, None) => {
            return Err(UsageError(format!(
                "{}: test.csv is missing or has no labels, so nothing is left to validate on: \
                 give --validation N (or a fraction) to hold out training images",
                args.data.dir().display()
            ))
            .into());
        }
        (Some(held_out), test) => {
            let count = held_out.of(mnist.train.len()).map_err(UsageError)?;
            let (train, validation) = mnist.train.split_last(count);
            (train, validation, test)
        }
    };
    let train = match args.limit {
        Some(limit) => train.first(limit),
        None => train,
    };
    Ok(RunData {
        train,
        validation,
        test,
        class_names: mnist.class_names,
    })
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

/// Loads a saved model.
pub fn load_model(path: &Path) -> Result<Model> {
    Ok(Model::load(path)?)
}

/// Fails unless `model` takes `set`'s images and has an output for each of its labels.
/// `format` is the data set `set` comes from: a model that records another one is refused,
/// since its outputs name other classes (--any-idx takes the files as they are).
pub fn check_model_fits(
    model: &Model,
    model_path: &Path,
    set: &Dataset,
    format: DataFormat,
) -> Result<()> {
    if set.is_empty() {
        bail!(
            "there are no labelled test images to read with {} (a CSV directory's test.csv \
             without labels is one to predict: `mlp-cli predict --csv`)",
            model_path.display()
        );
    }
    let trained_on = model
        .info
        .options
        .get("dataset")
        .map_or("MNIST", String::as_str);
    if format != DataFormat::AnyIdx && trained_on != format.name() {
        bail!(
            "{} was trained on {trained_on}, but this data is {}: its outputs name other \
             classes; give the data set it was trained on (--dataset), or --any-idx to \
             evaluate it on these files as they are",
            model_path.display(),
            format.name()
        );
    }
    let sizes = model.parameters.sizes();
    let (inputs, outputs) = (sizes[0], sizes[sizes.len() - 1]);
    if inputs != set.pixels() {
        bail!(
            "{} takes {inputs} inputs, but the data's images are {} x {} = {} pixels",
            model_path.display(),
            set.rows,
            set.cols,
            set.pixels()
        );
    }
    if let Some(&label) = set
        .labels
        .iter()
        .max()
        .filter(|&&l| usize::from(l) >= outputs)
    {
        bail!(
            "{} has {outputs} outputs, but the data has label {label}",
            model_path.display()
        );
    }
    Ok(())
}

/// `data`, with picture folders read as `model`'s were (its recorded side and style) where
/// neither --image-size nor --digit-style says otherwise.
pub fn data_as_trained(data: &DataArgs, model: &Model, model_path: &Path) -> Result<DataArgs> {
    let mut data = data.clone();
    let unset = data.image_size.is_none() && !data.digit_style;
    if let Some(recorded) = recorded_pictures(model, model_path)?
        && data.layout == Some(Layout::Folders)
        && unset
    {
        data.image_size = Some(recorded.side);
        data.digit_style = recorded.style == PictureStyle::Digit;
    }
    Ok(data)
}

/// The side and style of the picture folders `model` was trained on, where it records them.
fn recorded_pictures(model: &Model, model_path: &Path) -> Result<Option<PictureOptions>> {
    let options = &model.info.options;
    let (Some(style), Some(side)) = (options.get("pictures"), options.get("picture_side")) else {
        return Ok(None);
    };
    let path = model_path.display();
    Ok(Some(PictureOptions {
        style: PictureStyle::from_name(style)
            .with_context(|| format!("{path}: unknown picture style {style:?}"))?,
        side: (side.parse())
            .with_context(|| format!("{path}: picture_side {side:?} is no number"))?,
        skip_bad: false,
    }))
}

/// How `model` reads a picture: as its folders were read where it was trained on them (the
/// style and side it records), else made MNIST-like at 28 x 28. Fails where the model does
/// not take that many inputs.
pub fn picture_reading(model: &Model, model_path: &Path) -> Result<PictureOptions> {
    let reading = recorded_pictures(model, model_path)?.unwrap_or(PictureOptions {
        style: PictureStyle::Digit,
        ..PictureOptions::default()
    });
    let inputs = model.parameters.sizes()[0];
    if inputs != reading.side * reading.side {
        bail!(
            "{} takes {inputs} inputs, but pictures are made {side} x {side} = {} pixels",
            model_path.display(),
            reading.side * reading.side,
            side = reading.side,
        );
    }
    Ok(reading)
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
) -> Result<Box<dyn Backend + Send>> {
    Ok(match kind {
        BackendKind::Cpu => Box::new(
            CpuBackend::new(parameters, hyper, train, validation)?
                .with_instruction_set(cpu_instruction_set()?),
        ),
        BackendKind::Gpu => {
            let context = GpuContext::new(gpu.adapter.as_deref())?;
            let work = Workload {
                parameters: &parameters,
                hyper,
                max_batch,
                train,
                validation,
            };
            // A model that is only run forward (no training set) has nothing to tune.
            let training = !train.is_empty();
            let default = KernelVariant::default_for(&context.adapter.device_type);
            let (variant, why) = match (training, gpu.kernel) {
                (true, _) => tune::choose(gpu, &context, &work)?,
                (false, Some(choice)) => (choice.variant(default), String::new()),
                (false, None) => (default, String::new()),
            };
            let data = (train, validation);
            let mut backend =
                GpuBackend::with_variant(context, &parameters, hyper, max_batch, data, variant)?;
            if training {
                backend.set_variant_reason(&why);
            }
            Box::new(backend)
        }
    })
}

/// A backend that only runs a saved model forward over `images`, as its activation and output
/// say: its training set is empty (`mlp_core::predictor` builds its backends the same way).
pub fn inference_backend(
    kind: BackendKind,
    gpu: &GpuArgs,
    model: &Model,
    images: &Dataset,
) -> Result<Box<dyn Backend + Send>> {
    use mlp_core::predictor::Predictor;
    gpu.check_for(kind).map_err(anyhow::Error::msg)?;
    build_backend(
        kind,
        gpu,
        model.parameters.clone(),
        &Predictor::hyperparameters(model),
        1,
        &Predictor::no_training((images.rows, images.cols)),
        images,
    )
    .context("cannot run the model")
}

/// The fast CPU kernels' instruction set: MLP_SIMD's (`scalar`, `avx2` or `avx512`, for
/// comparing them), else the widest this CPU has.
pub fn cpu_instruction_set() -> Result<InstructionSet> {
    match std::env::var("MLP_SIMD") {
        Ok(name) => {
            InstructionSet::parse_available(&name).map_err(|e| anyhow::anyhow!("MLP_SIMD: {e}"))
        }
        Err(_) => Ok(InstructionSet::best()),
    }
}
