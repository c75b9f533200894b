//! The settings of a run: the preset's values with every option the user gave laid over them,
//! checked as a whole.

use anyhow::{Result, bail};
use mlp_core::data::IMAGE_SIDE;
use mlp_core::network::{CLASSES, INPUT_SIZE};
use mlp_core::options::{
    Activation, Dropout, Hyperparameters, Init, Optimiser, OptimiserKind, Output, Reduction,
    Schedule, Shift,
};
use mlp_core::train::TrainConfig;
use mlp_core::{LayerSizes, ModelInfo};

use crate::args::{NetworkArgs, PresetName, UsageError};

/// What the data asks of the network: the images' size (its pixels are the inputs) and the
/// classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataShape {
    pub rows: usize,
    pub cols: usize,
    pub classes: usize,
}

impl DataShape {
    /// MNIST's and Fashion-MNIST's: 28 x 28 images in 10 classes.
    pub const MNIST: Self = Self {
        rows: IMAGE_SIDE,
        cols: IMAGE_SIDE,
        classes: CLASSES,
    };

    /// Values per image: the input layer's size.
    pub fn inputs(&self) -> usize {
        self.rows * self.cols
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub preset: PresetName,
    pub layers: LayerSizes,
    pub epochs: usize,
    pub batch_size: usize,
    pub hyper: Hyperparameters,
    pub weight_init: Init,
    pub schedule: Schedule,
    pub shuffle: bool,
    pub seed: u64,
}

impl Settings {
    /// A preset's values, before any option is laid over them.
    pub fn preset(name: PresetName) -> Self {
        match name {
            PresetName::Seed => {
                let epochs = TrainConfig::seed();
                Self {
                    preset: name,
                    layers: LayerSizes::seed(),
                    epochs: epochs.epochs,
                    batch_size: epochs.batch_size,
                    hyper: Hyperparameters::seed(),
                    weight_init: Init::Normal,
                    schedule: epochs.schedule,
                    shuffle: epochs.shuffle,
                    seed: epochs.seed,
                }
            }
            PresetName::Best => {
                let modern = Self::preset(PresetName::Modern);
                // The rates only: resolve draws the masks' and shifts' seeds from --seed.
                let unseeded = |rate| Some(Dropout { rate, seed: 0 });
                Self {
                    preset: name,
                    layers: LayerSizes::new(
                        vec![INPUT_SIZE, 512, 512, CLASSES],
                        INPUT_SIZE,
                        CLASSES,
                    )
                    .expect("784-512-512-10 is a valid network"),
                    epochs: 60,
                    hyper: Hyperparameters {
                        dropout: unseeded(0.3),
                        shift: Some(Shift { pixels: 2, seed: 0 }),
                        ..modern.hyper
                    },
                    ..modern
                }
            }
            PresetName::Fast => {
                let modern = Self::preset(PresetName::Modern);
                Self {
                    preset: name,
                    layers: LayerSizes::new(vec![INPUT_SIZE, 192, CLASSES], INPUT_SIZE, CLASSES)
                        .expect("784-192-10 is a valid network"),
                    epochs: 4,
                    hyper: Hyperparameters {
                        learning_rate: 5e-3,
                        ..modern.hyper
                    },
                    ..modern
                }
            }
            PresetName::Minute => {
                let best = Self::preset(PresetName::Best);
                // Larger steps over fewer epochs: on two cores an epoch of batches of 200 takes
                // 0.82 of the time of one of batches of 100 (docs/results.md).
                Self {
                    preset: name,
                    epochs: 27,
                    batch_size: 200,
                    hyper: Hyperparameters {
                        learning_rate: 2e-3,
                        dropout: Some(Dropout { rate: 0.2, seed: 0 }),
                        ..best.hyper
                    },
                    ..best
                }
            }
            PresetName::Modern => Self {
                preset: name,
                layers: LayerSizes::new(vec![INPUT_SIZE, 256, 128, CLASSES], INPUT_SIZE, CLASSES)
                    .expect("784-256-128-10 is a valid network"),
                epochs: 20,
                batch_size: 100,
                hyper: Hyperparameters {
                    activation: Activation::Relu,
                    output: Output::SoftmaxCrossEntropy,
                    reduction: Reduction::Mean,
                    optimiser: Optimiser::with_defaults(OptimiserKind::Adam),
                    learning_rate: 1e-3,
                    weight_decay: 0.0,
                    dropout: None,
                    input_dropout: None,
                    shift: None,
                },
                weight_init: Init::He,
                schedule: Schedule::Cosine,
                shuffle: true,
                seed: 0,
            },
        }
    }

    /// The preset of `args` with every option given in `args` (and `epochs`) laid over it,
    /// for data of `shape`: the preset's network takes the data's inputs and classes, and
    /// --layers must. Options that make no sense together are refused with the reason.
    pub fn resolve(args: &NetworkArgs, epochs: Option<usize>, shape: DataShape) -> Result<Self> {
        let mut settings = Self::preset(args.preset);
        settings.layers = fitted(&settings.layers, shape);
        if let Some(layers) = &args.layers {
            if layers.input() != shape.inputs() || layers.output() != shape.classes {
                let given: Vec<String> =
                    layers.as_slice().iter().map(ToString::to_string).collect();
                return Err(UsageError(format!(
                    "--layers {} does not fit the data: the first layer must be the input size \
                     {} and the last the number of classes {}",
                    given.join(","),
                    shape.inputs(),
                    shape.classes
                ))
                .into());
            }
            settings.layers = layers.clone();
        }
        let hyper = &mut settings.hyper;
        settings.epochs = epochs.unwrap_or(settings.epochs);
        settings.batch_size = args.batch_size.unwrap_or(settings.batch_size);
        hyper.learning_rate = args.lr.unwrap_or(hyper.learning_rate);
        hyper.activation = args.activation.unwrap_or(hyper.activation);
        hyper.output = args.output.unwrap_or(hyper.output);
        hyper.reduction = args.reduction.unwrap_or(hyper.reduction);
        hyper.weight_decay = args.weight_decay.unwrap_or(hyper.weight_decay);
        regularise(hyper, args, shape)?;
        settings.weight_init = args.weight_init.unwrap_or(settings.weight_init);
        settings.schedule = args.schedule.unwrap_or(settings.schedule);
        settings.seed = args.seed;
        if args.shuffle {
            settings.shuffle = true;
        }
        if args.no_shuffle {
            settings.shuffle = false;
        }
        let kind = args.optimiser.unwrap_or(hyper.optimiser.kind());
        if kind != hyper.optimiser.kind() {
            hyper.optimiser = Optimiser::with_defaults(kind);
        }
        match (&mut hyper.optimiser, args.momentum, args.beta1, args.beta2) {
            (Optimiser::Momentum { momentum }, given, None, None) => {
                *momentum = given.unwrap_or(*momentum);
            }
            (Optimiser::Adam { beta1, beta2, .. }, None, given1, given2) => {
                *beta1 = given1.unwrap_or(*beta1);
                *beta2 = given2.unwrap_or(*beta2);
            }
            (Optimiser::GradientDescent, None, None, None) => {}
            (optimiser, momentum, _, _) => {
                let given = if momentum.is_some() {
                    "--momentum belongs to --optimiser momentum"
                } else {
                    "--beta1 and --beta2 belong to --optimiser adam"
                };
                bail!(
                    "{given}, but this run's optimiser is {}: choose that optimiser or drop the option",
                    optimiser.kind()
                );
            }
        }
        settings.check_fits_in_memory()?;
        Ok(settings)
    }

    /// Refuses a network whose training would not fit in the memory this machine has free,
    /// before anything of that size is allocated.
    fn check_fits_in_memory(&self) -> Result<()> {
        let state = self.hyper.optimiser.state_per_parameter();
        let needed = self.layers.training_bytes(self.batch_size, state);
        let available = mlp_core::memory::available_memory();
        match (needed, available) {
            (Some(needed), Some(available)) if needed <= available => Ok(()),
            (Some(_), None) => Ok(()),
            (needed, available) => bail!(
                "the network {} with batch {} needs {} of memory to train, more than the {} \
                 available: choose smaller --layers or --batch-size",
                self.layers,
                self.batch_size,
                needed.map_or("more than 2^64 bytes".into(), bytes),
                available.map_or("memory".into(), bytes),
            ),
        }
    }

    /// How the epochs go.
    pub fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.hyper.learning_rate,
            schedule: self.schedule,
            shuffle: self.shuffle,
            seed: self.seed,
            early_stopping: None,
        }
    }

    /// One line that says everything the run does.
    pub fn describe(&self) -> String {
        let h = &self.hyper;
        format!(
            "network: {} {} layers, {} output, {} weights  training: {} at lr {} ({} schedule){}, \
             batch {} ({} of gradients), {}, seed {}",
            self.layers,
            h.activation,
            h.output,
            self.weight_init,
            h.optimiser,
            h.learning_rate,
            self.schedule,
            regularisation(h),
            self.batch_size,
            h.reduction,
            if self.shuffle {
                "shuffled each epoch"
            } else {
                "file order"
            },
            self.seed
        )
    }

    /// What a saved model records of these settings, for `eval`, `predict` and `--init` to
    /// rebuild the network and for a reader to know how it was trained.
    pub fn model_info(&self) -> ModelInfo {
        let mut info = ModelInfo::seed(self.seed);
        info.activation = self.hyper.activation;
        info.output = self.hyper.output;
        let mut record = |key: &str, value: String| info.options.insert(key.into(), value);
        record(
            "preset",
            match self.preset {
                PresetName::Seed => "seed".into(),
                PresetName::Modern => "modern".into(),
                PresetName::Best => "best".into(),
                PresetName::Fast => "fast".into(),
                PresetName::Minute => "minute".into(),
            },
        );
        record("lr", self.hyper.learning_rate.to_string());
        record("batch_size", self.batch_size.to_string());
        record("reduction", self.hyper.reduction.to_string());
        record("optimiser", self.hyper.optimiser.to_string());
        record("weight_init", self.weight_init.to_string());
        record("schedule", self.schedule.to_string());
        record("shuffle", self.shuffle.to_string());
        if self.hyper.weight_decay != 0.0 {
            record("weight_decay", self.hyper.weight_decay.to_string());
        }
        if let Some(dropout) = self.hyper.dropout {
            record("dropout", dropout.rate.to_string());
        }
        if let Some(dropout) = self.hyper.input_dropout {
            record("input_dropout", dropout.rate.to_string());
        }
        if let Some(shift) = self.hyper.shift {
            record("shift", shift.pixels.to_string());
        }
        info
    }
}

/// ", weight decay λ, dropout p, input dropout p, shifts of up to n pixels" for what the run
/// has of them.
fn regularisation(h: &Hyperparameters) -> String {
    let mut parts = Vec::new();
    if h.weight_decay != 0.0 {
        parts.push(format!("weight decay {}", h.weight_decay));
    }
    if let Some(d) = h.dropout {
        parts.push(format!("dropout {}", d.rate));
    }
    if let Some(d) = h.input_dropout {
        parts.push(format!("input dropout {}", d.rate));
    }
    if let Some(s) = h.shift {
        parts.push(format!("shifts of up to {} pixels", s.pixels));
    }
    parts.iter().map(|part| format!(", {part}")).collect()
}

/// Dropout, input dropout and shifts: each option's rate (or shift), else the preset's, each
/// with its own stream of the run's seed; a shift that would move every pixel out is refused.
fn regularise(hyper: &mut Hyperparameters, args: &NetworkArgs, shape: DataShape) -> Result<()> {
    // The option's rate, else the preset's; the masks' own streams of the run's seed.
    let rate_of = |given: Option<f32>, preset: Option<Dropout>| given.or(preset.map(|d| d.rate));
    if let Some(rate) = rate_of(args.dropout, hyper.dropout) {
        let seed = args.seed ^ 0x4452_4f50_4f55_5421;
        hyper.dropout = Some(Dropout { rate, seed });
    }
    if let Some(rate) = rate_of(args.input_dropout, hyper.input_dropout) {
        let seed = args.seed ^ 0x494e_5055_5444_524f;
        hyper.input_dropout = Some(Dropout { rate, seed });
    }
    if let Some(pixels) = args.shift.or(hyper.shift.map(|s| s.pixels)) {
        let side = shape.rows.min(shape.cols);
        if pixels as usize >= side {
            return Err(UsageError(format!(
                "--shift {pixels} would move every pixel out of these {}x{} images: give \
                 fewer pixels than the image's smaller side ({side})",
                shape.rows, shape.cols
            ))
            .into());
        }
        let seed = args.seed ^ 0x5348_4946_5453_2121;
        hyper.shift = Some(Shift { pixels, seed });
    }
    Ok(())
}

/// `layers` with its first and last sizes those of `shape`.
fn fitted(layers: &LayerSizes, shape: DataShape) -> LayerSizes {
    let mut sizes = layers.as_slice().to_vec();
    let last = sizes.len() - 1;
    sizes[0] = shape.inputs();
    sizes[last] = shape.classes;
    LayerSizes::new(sizes, shape.inputs(), shape.classes).expect("a preset's sizes are positive")
}

/// A byte count as people read it: "3.1 PB (3136000000000000 bytes)".
fn bytes(count: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KB", "MB", "GB", "TB", "PB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count} bytes")
    } else {
        format!("{value:.1} {} ({count} bytes)", UNITS[unit])
    }
}
