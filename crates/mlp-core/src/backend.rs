//! The interface every backend implements. The training loop, the metrics and the CLI see
//! only this: a backend holds the parameters and both data sets wherever it computes (host
//! memory or GPU buffers), trains on rows of the training set, and reports back.

use std::ops::Range;

use ndarray::{Array1, Array2};

use crate::network::{Layer, LayerSizes, NetworkError, Parameters};
use crate::options::Optimiser;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("training rows {start}..{end} are outside the training set of {len} images")]
    RowsOutOfRange {
        start: usize,
        end: usize,
        len: usize,
    },
    #[error("a training order must hold each of the {len} training rows exactly once")]
    BadOrder { len: usize },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("the optimiser state does not fit this network and optimiser: {problem}")]
    OptimiserStateShape { problem: String },
    /// A failure of the device itself (out of memory, device lost, a limit exceeded).
    #[error("{backend}: {message}")]
    Device { backend: String, message: String },
    #[error(
        "new validation images must be as many and as large as those the backend was built \
         with ({expected}); these are {found}"
    )]
    ValidationShape { expected: String, found: String },
}

/// Refuses new validation images unlike `built` in count or size.
pub fn check_same_shape(
    built: (usize, usize),
    images: &crate::Dataset,
) -> Result<(), BackendError> {
    let found = (images.len(), images.pixels());
    if found == built {
        return Ok(());
    }
    let say = |(count, pixels): (usize, usize)| format!("{count} of {pixels} pixels");
    Err(BackendError::ValidationShape {
        expected: say(built),
        found: say(found),
    })
}

/// What an optimiser keeps per layer: a velocity (momentum, in `first`), or first and second
/// moments (Adam), each shaped like the layer's parameters and starting at 0; and the steps
/// taken, for Adam's bias corrections. With the parameters, it is what a step depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimiserState {
    pub first: Vec<Layer>,
    pub second: Vec<Layer>,
    pub steps: u64,
}

impl OptimiserState {
    /// The state before the first step of `optimiser` on `parameters`: zeros.
    pub fn new(optimiser: Optimiser, parameters: &Parameters) -> Self {
        let zeros = || -> Vec<Layer> {
            parameters
                .layers
                .iter()
                .map(|l| Layer {
                    weights: Array2::zeros(l.weights.dim()),
                    bias: Array1::zeros(l.bias.len()),
                })
                .collect()
        };
        let slots = optimiser.state_per_parameter();
        Self {
            first: if slots >= 1 { zeros() } else { Vec::new() },
            second: if slots >= 2 { zeros() } else { Vec::new() },
            steps: 0,
        }
    }

    /// Fails unless this state is shaped as `optimiser`'s on a network of layer sizes `sizes`.
    pub fn check_for(&self, optimiser: Optimiser, sizes: &LayerSizes) -> Result<(), BackendError> {
        let shapes = |layers: &[Layer]| -> Vec<((usize, usize), usize)> {
            layers
                .iter()
                .map(|l| (l.weights.dim(), l.bias.len()))
                .collect()
        };
        let layer_shapes: Vec<_> = sizes.shapes().map(|(i, o)| ((i, o), o)).collect();
        let slots = optimiser.state_per_parameter();
        let wanted = |slot: usize| {
            if slots > slot {
                layer_shapes.clone()
            } else {
                Vec::new()
            }
        };
        for (name, got, wanted) in [
            ("first", shapes(&self.first), wanted(0)),
            ("second", shapes(&self.second), wanted(1)),
        ] {
            if got != wanted {
                return Err(BackendError::OptimiserStateShape {
                    problem: format!(
                        "{optimiser} keeps {} {name}-moment layers shaped {wanted:?}, this state \
                         has {} shaped {got:?}",
                        wanted.len(),
                        got.len(),
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Fails unless `rows` is a non-empty range inside a training set of `len` images.
pub fn check_rows(rows: &Range<usize>, len: usize) -> Result<(), BackendError> {
    if rows.start >= rows.end || rows.end > len {
        return Err(BackendError::RowsOutOfRange {
            start: rows.start,
            end: rows.end,
            len,
        });
    }
    Ok(())
}

/// How long one kernel of a training step ran on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelTime {
    /// The kernel and what it worked on, e.g. "linear_forward A1 -> A2".
    pub kernel: String,
    pub seconds: f64,
}

/// What a backend measured on the validation set.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The loss summed over every image: Σ (Y − A_L)² over images and classes for a sigmoid
    /// output, Σ −ln A_L\[label\] for a softmax output.
    pub loss_sum: f64,
    /// What [`Evaluation::loss`] divides the sum by: images x classes for the squared error
    /// (docs/SEED.md's mean), images for the cross-entropy.
    pub loss_terms: usize,
    /// Images whose argmax of A_L equals the label.
    pub correct: usize,
    /// argmax of A_L per image (the first index on ties, as NumPy's argmax): as wide as any
    /// output layer, not a label's byte.
    pub predictions: Vec<u32>,
    /// Output classes per image.
    pub classes: usize,
}

impl Evaluation {
    /// The evaluation of `predictions` against `labels`, with the loss summed over the set.
    pub fn new(
        loss_sum: f64,
        loss_terms: usize,
        predictions: Vec<u32>,
        labels: &[u8],
        classes: usize,
    ) -> Self {
        let correct = predictions
            .iter()
            .zip(labels)
            .filter(|&(&p, &l)| p == u32::from(l))
            .count();
        Self {
            loss_sum,
            loss_terms,
            correct,
            predictions,
            classes,
        }
    }

    /// The validation loss: docs/SEED.md's mean((Y − A_L)²) over all images x classes, or the mean
    /// cross-entropy per image.
    pub fn loss(&self) -> f64 {
        self.loss_sum / self.loss_terms.max(1) as f64
    }

    /// How many images `other` predicts differently.
    pub fn differing_predictions(&self, other: &Evaluation) -> usize {
        self.predictions
            .iter()
            .zip(&other.predictions)
            .filter(|(a, b)| a != b)
            .count()
    }

    /// The fraction of images predicted right, 0..1.
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.predictions.len().max(1) as f64
    }
}

/// The sum of the batch losses since the last read, and how many batches it holds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TrainLoss {
    pub batch_loss_sum: f64,
    pub batches: usize,
    /// The first batch (counted from 0 since the last read) whose loss was not a finite
    /// number: where training diverged.
    pub first_non_finite: Option<usize>,
}

impl TrainLoss {
    /// Adds one batch's loss.
    pub fn add(&mut self, batch_loss: f64) {
        if !batch_loss.is_finite() && self.first_non_finite.is_none() {
            self.first_non_finite = Some(self.batches);
        }
        self.batch_loss_sum += batch_loss;
        self.batches += 1;
    }

    /// docs/SEED.md's training loss: the mean over the batches of each batch's mean((Y − A_L)²).
    pub fn mean(&self) -> f64 {
        self.batch_loss_sum / self.batches.max(1) as f64
    }
}

/// Every intermediate of one training step, for checking one backend against another.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTrace {
    /// A1 .. AL, each (batch, outputs_k): the forward pass before the update.
    pub activations: Vec<Array2<f32>>,
    /// D1 .. DL, each (batch, outputs_k).
    pub deltas: Vec<Array2<f32>>,
}

/// What computed each tensor of a training step on a backend: the function or kernel that
/// wrote A1..AL, D1..DL and W1..WL (each layer's bias with its weights). A comparison names its
/// rows after the reference's and says which kernel of the checked backend made each tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepKernels {
    pub activations: Vec<String>,
    pub deltas: Vec<String>,
    pub parameters: Vec<String>,
}

impl StepKernels {
    /// The reference functions of `cpu/mod.rs` and `cpu/reference.rs` (docs/SEED.md's E1-E7;
    /// `weights_update` is E5-E7 of one layer with the optimiser's step) for a network of
    /// `depth` layers trained with `hyper`: the names every comparison row is given.
    pub fn reference(depth: usize, hyper: &crate::Hyperparameters) -> Self {
        let output_delta = match hyper.output {
            crate::Output::SigmoidMse => "output_delta",
            crate::Output::SoftmaxCrossEntropy => "softmax_cross_entropy_delta",
        };
        Self {
            activations: vec!["linear_forward".into(); depth],
            deltas: (0..depth)
                .map(|k| {
                    if k + 1 == depth {
                        output_delta
                    } else {
                        "hidden_delta"
                    }
                    .into()
                })
                .collect(),
            parameters: vec!["weights_update".into(); depth],
        }
    }
}

pub trait Backend {
    /// What computes: "cpu (ndarray, f32, avx512)" (with the fast kernels' instruction set) or
    /// the GPU adapter's name.
    fn name(&self) -> String;

    /// What computes each tensor of a training step, as the step runs now.
    fn step_kernels(&self) -> StepKernels;

    /// Replaces every weight and bias.
    fn set_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError>;

    /// Reads every weight and bias back.
    fn parameters(&mut self) -> Result<Parameters, BackendError>;

    /// The optimiser's state after the steps so far: what a checkpoint keeps besides the
    /// parameters.
    fn optimiser_state(&mut self) -> Result<OptimiserState, BackendError>;

    /// Replaces the optimiser's state (a checkpoint's), shaped as
    /// [`Backend::optimiser_state`] returns it.
    fn set_optimiser_state(&mut self, state: &OptimiserState) -> Result<(), BackendError>;

    /// The learning rate of the steps after this call (a schedule changes it between epochs).
    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), BackendError>;

    /// The order the training set is read in from now on: row r of [`Backend::train_batch`]'s
    /// rows is image `order[r]`. It must hold every training row once; at the start it is the
    /// file's order (the seed's).
    fn set_order(&mut self, order: &[u32]) -> Result<(), BackendError>;

    /// One gradient-descent step on the training images `rows`, in the order docs/SEED.md gives.
    /// The batch loss is added to a running sum read by [`Backend::take_train_loss`]: a GPU
    /// backend may only queue the step and must not read anything back here.
    fn train_batch(&mut self, rows: Range<usize>) -> Result<(), BackendError>;

    /// The batch losses summed since the last call, then resets the sum.
    fn take_train_loss(&mut self) -> Result<TrainLoss, BackendError>;

    /// Puts `images` in place of the validation set: as many images, of as many pixels, as
    /// the backend was built with. A predictor reads new pictures this way with a backend,
    /// and on a GPU a device and its pipelines, built once.
    fn set_validation(&mut self, images: &crate::Dataset) -> Result<(), BackendError>;

    /// The batch losses summed since the last [`Backend::take_train_loss`], without resetting
    /// the sum (a watched run's line within the epoch). The sum goes on the same, bit for bit;
    /// a GPU reads the losses back for it, so call it seldom.
    fn peek_train_loss(&mut self) -> Result<TrainLoss, BackendError>;

    /// Like [`Backend::train_batch`], and also returns the step's activations and deltas.
    fn trace_batch(&mut self, rows: Range<usize>) -> Result<StepTrace, BackendError>;

    /// Like [`Backend::train_batch`], and also returns how long each kernel of the step took,
    /// in order, where the backend can time its kernels (empty where it cannot).
    fn kernel_times(&mut self, rows: Range<usize>) -> Result<Vec<KernelTime>, BackendError> {
        self.train_batch(rows)?;
        Ok(Vec::new())
    }

    /// Forward pass over the whole validation set with the current parameters.
    fn evaluate(&mut self) -> Result<Evaluation, BackendError>;

    /// The output layer A_L of every validation image, (images, classes): what `predict`
    /// shows.
    fn validation_outputs(&mut self) -> Result<Array2<f32>, BackendError>;
}
