//! The CPU backend: a training step built from the reference functions of [`super`], run on
//! the machine's cores.

use std::ops::Range;
use std::time::Instant;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Ix2, s};

use super::rows::{Dropped, forward, forward_and_deltas, is_sigmoid};
use super::step_threads::StepThreads;
use super::units::{UnitBlocks, unit_cuts};
use super::updates::{Update, fused_descent};
use super::worker::Workers;
use super::workspace::{
    FileOrderPixels, FirstLayerSplit, Workspace, first_rows, row_parts, row_ranges,
};
use super::{
    check_input_width, check_order, check_output_width, evaluation, loss_sum, loss_terms,
    reduction_scale,
};
use crate::aligned::{align_layers, aligned_zeros};
use crate::backend::{
    Backend, BackendError, Evaluation, OptimiserState, StepKernels, StepTrace, TrainLoss,
    check_rows,
};
use crate::data::Dataset;
use crate::network::Parameters;
use crate::options::{Hyperparameters, Optimiser};
use crate::simd::InstructionSet;
use crate::sparse::{InputChanges, SparseImages};

mod by_rows;
mod by_units;

/// How far the fast CPU backend may be from [`super::ReferenceBackend`], element by element.
///
/// Both compute in f32 with the same formulas, but the fast kernels add the products of a sum
/// in another order (lit pixels only, a vector of lanes at a time, parts of a batch on several
/// threads) and the vectorised sigmoid's exp differs from the scalar one by an ulp or two. The
/// reasoning of `mlp_wgpu::PARITY` holds as it is (about √K·ε of a K-term sum, growing over
/// the steps), so the bound is the same: 1e-4 absolute plus 1e-3 relative.
pub const FAST_PARITY: crate::compare::Tolerance = crate::compare::Tolerance::new(1e-4, 1e-3);

/// What the step after `steps_done` steps does to its images before layer 1 reads them.
fn input_changes(hyper: &Hyperparameters, steps_done: u64) -> InputChanges {
    InputChanges {
        shift: hyper.shift,
        dropout: hyper.input_dropout,
        step: steps_done + 1,
    }
}

/// The fast CPU backend: docs/SEED.md on the CPU, in f32, and the options of
/// [`Hyperparameters`] beyond it, built from the reference functions and checked against
/// [`super::ReferenceBackend`]. The images are kept sparse (their zero pixels left out), the
/// first layer's two products skip those zeros ([`crate::sparse`]) on the widest vectors the CPU
/// has ([`InstructionSet`]), the sigmoid runs a vector at a time, and each step is split
/// between the threads ([`Workers`]): the same sums with a fifth of the arithmetic. In the file
/// order each batch is regrouped by pixel once and kept.
pub struct CpuBackend {
    parameters: Parameters,
    hyper: Hyperparameters,
    train_images: SparseImages,
    train_labels: Vec<u8>,
    /// The order the training set is read in; `None` is the file's order (the seed's).
    order: Option<Vec<u32>>,
    validation_images: SparseImages,
    validation_labels: Vec<u8>,
    workspace: Workspace,
    /// Under shifts or input dropout, the batch's images as layer 1 reads them (image r is
    /// batch row r), and the rows 0..B that index them.
    input_changed: SparseImages,
    input_rows: Vec<u32>,
    state: OptimiserState,
    loss: TrainLoss,
    /// The vector instructions of the fast kernels.
    simd: InstructionSet,
    file_order_pixels: FileOrderPixels,
    first_layer_split: FirstLayerSplit,
    /// Take all but the first part of each phase of a step, each on a thread of its own.
    workers: Workers,
    /// How many of those threads a step uses, and how it cuts layer 1.
    step_threads: StepThreads,
    /// While steps cut layer 1 by hidden units: W1 and its state, which `parameters` and
    /// `state` hold out of date until [`Self::settle_units`].
    units: Option<UnitBlocks>,
}

/// The threads a step runs on by default: rayon's pool's (`RAYON_NUM_THREADS`, else the
/// cores).
fn default_threads() -> usize {
    rayon::current_num_threads()
}

impl CpuBackend {
    /// Holds `parameters` and both data sets, normalised once.
    pub fn new(
        parameters: Parameters,
        hyper: &Hyperparameters,
        train: &Dataset,
        validation: &Dataset,
    ) -> Result<Self, BackendError> {
        check_input_width(&parameters, train)?;
        check_input_width(&parameters, validation)?;
        check_output_width(&parameters, hyper.output)?;
        let mut parameters = parameters;
        align_layers(&mut parameters.layers);
        let workspace = Workspace::new(&parameters, 0, hyper.dropout.is_some());
        let mut state = OptimiserState::new(hyper.optimiser, &parameters);
        align_state(&mut state);
        let train_images = SparseImages::new(train);
        let first_layer_split = FirstLayerSplit::new(
            &parameters,
            &train_images.lit_per_pixel(),
            train_images.len(),
            hyper.optimiser,
            !fused_descent(hyper),
        );
        Ok(Self {
            parameters,
            hyper: *hyper,
            train_images,
            train_labels: train.labels.clone(),
            order: None,
            validation_images: SparseImages::new(validation),
            validation_labels: validation.labels.clone(),
            workspace,
            input_changed: SparseImages::default(),
            input_rows: Vec::new(),
            state,
            loss: TrainLoss::default(),
            simd: InstructionSet::best(),
            file_order_pixels: FileOrderPixels::default(),
            first_layer_split,
            workers: Workers::new(default_threads()),
            step_threads: StepThreads::new(default_threads(), |_| false),
            units: None,
        }
        .with_step_plans())
    }

    /// Runs each step on `threads` threads (at least 1): the same numbers for any count.
    pub fn with_threads(mut self, threads: usize) -> Self {
        if threads.max(1) != self.workers.threads() {
            self.workers = Workers::new(threads);
            self = self.with_step_plans();
        }
        self
    }

    /// Plans steps for the pool's threads: by hidden units wherever layer 1 has enough of them
    /// for each thread ([`unit_cuts`]), and by rows.
    fn with_step_plans(mut self) -> Self {
        let units = self.parameters.layers[0].weights.ncols();
        let plans = StepThreads::new(self.workers.threads(), |threads| {
            unit_cuts(units, threads).is_some()
        });
        self.step_threads = plans;
        self
    }

    /// Brings W1 and its optimiser state up to date from the blocks of a cut by units, and ends
    /// the cut.
    fn settle_units(&mut self) {
        if let Some(units) = self.units.take() {
            units.write_back(&mut self.parameters.layers[0].weights, &mut self.state);
        }
    }

    /// The threads a step may run on; it runs on the count of them that measures fastest
    /// ([`super::step_threads`]).
    pub fn threads(&self) -> usize {
        self.workers.threads()
    }

    /// Runs the fast kernels on `simd`'s vectors instead of the widest this CPU has.
    pub fn with_instruction_set(mut self, simd: InstructionSet) -> Self {
        self.simd = simd;
        self
    }

    /// One training step on `rows` of the training order: forward, every delta, then every
    /// update (docs/SEED.md's order). Returns the batch loss, from the forward pass before the
    /// update.
    fn step(&mut self, rows: Range<usize>) -> Result<f64, BackendError> {
        check_rows(&rows, self.train_labels.len())?;
        let start = Instant::now();
        let first_row = rows.start;
        let b = self.gather_batch(rows);
        let plan = self.step_threads.plan();
        let units = self.parameters.layers[0].weights.ncols();
        // Cut only for a plan by units: a step by rows need not make the cuts.
        let cuts = plan
            .by_units
            .then(|| unit_cuts(units, plan.threads))
            .flatten();
        let loss = match cuts {
            Some(cuts) => {
                self.first_layer_by_units(first_row, b, cuts);
                let loss = self.forward_and_deltas(b, true);
                self.update_by_units(first_row, b);
                loss
            }
            None => {
                self.settle_units();
                let loss = self.forward_and_deltas(b, false);
                self.update_by_rows(first_row, b);
                loss
            }
        };
        self.step_threads.note(start.elapsed());
        Ok(loss)
    }

    /// Puts the images and labels of `rows` of the training order in the workspace, which it
    /// grows where it is too small; returns the batch's rows B.
    fn gather_batch(&mut self, rows: Range<usize>) -> usize {
        let b = rows.len();
        if self.workspace.batch.len() < b {
            self.workspace = Workspace::new(&self.parameters, b, self.hyper.dropout.is_some());
        }
        let ws = &mut self.workspace;
        for (r, row) in rows.enumerate() {
            let image = self.order.as_ref().map_or(row as u32, |order| order[row]);
            ws.batch[r] = image;
            ws.labels[r] = self.train_labels[image as usize];
        }
        let changes = input_changes(&self.hyper, self.state.steps);
        if changes.any() {
            self.input_changed
                .fill_changed(&self.train_images, &ws.batch[..b], changes);
            self.input_rows = (0..b as u32).collect();
        }
        b
    }

    /// The parts a phase of a step is cut into: one for each thread the step uses, never more
    /// than `items`.
    fn parts(&self, items: usize) -> usize {
        self.step_threads.count().min(items).max(1)
    }

    /// The forward pass and the deltas of the gathered batch of `b` rows, by rows: a run of
    /// consecutive rows for each thread. Returns the batch loss, summed over the rows in order
    /// once all are done, so that it has the same bits for any thread count.
    /// Where `summed`, layer 1's product is already in S1 ([`Self::first_layer_by_units`]).
    fn forward_and_deltas(&mut self, b: usize, summed: bool) -> f64 {
        let parts = self.parts(b);
        let (hyper, layers, simd) = (&self.hyper, &self.parameters.layers, self.simd);
        let ws = &mut self.workspace;
        let network = (&layers[..], &ws.weights_transposed[..]);
        // Layer 1 reads the batch's own changed copy under shifts or input dropout.
        let (images, batch) = if input_changes(hyper, 0).any() {
            (&self.input_changed, &self.input_rows[..b])
        } else {
            (&self.train_images, &ws.batch[..b])
        };
        let labels = &ws.labels[..b];
        let ranges = row_ranges(b, parts);
        // The dropout buffers hold rows only under dropout.
        let dropout_ranges = match hyper.dropout {
            Some(_) => ranges.clone(),
            None => vec![0..0; parts],
        };
        let mut row_parts: Vec<RowPart> = (ranges.iter().cloned())
            .zip(row_parts(&mut ws.activations, &ranges))
            .zip(row_parts(&mut ws.deltas, &ranges))
            .zip(row_parts(&mut ws.dropped, &dropout_ranges))
            .zip(row_parts(&mut ws.dropout_factors, &dropout_ranges))
            .map(
                |((((rows, activations), deltas), dropped), factors)| RowPart {
                    rows,
                    activations,
                    deltas,
                    dropped,
                    factors,
                },
            )
            .collect();
        let step = self.state.steps + 1;
        self.workers.for_each(&mut row_parts, |part| {
            let rows = part.rows.clone();
            let dropped = hyper.dropout.map(|dropout| Dropped {
                dropout,
                step,
                first_row: rows.start,
                outputs: &mut part.dropped[..],
                factors: &mut part.factors[..],
            });
            let tensors = (&mut part.activations[..], &mut part.deltas[..]);
            let rows = (&batch[rows.clone()], &labels[rows]);
            forward_and_deltas(
                network,
                (hyper, simd),
                images,
                rows,
                tensors,
                dropped,
                summed,
            );
        });
        let outputs = &ws.activations[layers.len() - 1];
        let loss = loss_sum(hyper.output, outputs.slice(s![..b, ..]), labels);
        loss / loss_terms(hyper.output, b, outputs.ncols()) as f64
    }
}

/// Counts a step of `b` rows in `state` and makes what every part of its update shares.
fn step_update<'a>(
    hyper: &'a Hyperparameters,
    simd: InstructionSet,
    state: &mut OptimiserState,
    b: usize,
) -> Update<'a> {
    state.steps += 1;
    Update {
        hyper,
        simd,
        scale: reduction_scale(hyper.reduction, b),
        t: state.steps,
    }
}

/// What layers 2 .. L read of a batch's first `b` rows (the dropped outputs under dropout),
/// and its deltas D1 .. DL.
fn update_inputs<'a>(
    hyper: &Hyperparameters,
    activations: &'a [Array2<f32>],
    dropped: &'a [Array2<f32>],
    deltas: &'a [Array2<f32>],
    b: usize,
) -> (Vec<ArrayView2<'a, f32>>, Vec<ArrayView2<'a, f32>>) {
    let inputs = if hyper.dropout.is_some() {
        dropped
    } else {
        activations
    };
    (first_rows(inputs, b), first_rows(deltas, b))
}

/// Moves the optimiser's state onto cache lines, as the parameters it steps with.
fn align_state(state: &mut OptimiserState) {
    align_layers(&mut state.first);
    align_layers(&mut state.second);
}

/// The rows of a batch one thread takes in the forward pass and the deltas, and its views of
/// each layer's activations, deltas and (under dropout) dropped outputs and factors.
struct RowPart<'a> {
    rows: Range<usize>,
    activations: Vec<ArrayViewMut2<'a, f32>>,
    deltas: Vec<ArrayViewMut2<'a, f32>>,
    dropped: Vec<ArrayViewMut2<'a, f32>>,
    factors: Vec<ArrayViewMut2<'a, f32>>,
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        format!("cpu (ndarray, f32, {})", self.simd)
    }

    fn step_kernels(&self) -> StepKernels {
        let depth = self.parameters.layers.len();
        let mut kernels = StepKernels::reference(depth, &self.hyper);
        for (k, name) in kernels.activations.iter_mut().enumerate() {
            *name = match (k, is_sigmoid(&self.hyper, k, depth - 1)) {
                (0, true) => "sparse_linear_forward + sigmoid_forward_vectorised".into(),
                (0, false) => "sparse_linear_forward".into(),
                (_, true) => "dense_linear_forward (sigmoid in the tiles)".into(),
                (_, false) => "dense_linear_forward".into(),
            };
        }
        for name in &mut kernels.deltas[..depth - 1] {
            *name = "dense_hidden_delta".into();
        }
        kernels.parameters = (0..depth)
            .map(|k| match (k, self.hyper.optimiser) {
                (0, Optimiser::GradientDescent) => "sparse_gradient_descent".into(),
                (0, Optimiser::Adam { .. }) => {
                    "sparse_weights_gradient + adam_update_vectorised".into()
                }
                (0, other) => format!("sparse_weights_gradient + {}", other.update_function()),
                _ => "update_layer (dense_weights_gradient)".into(),
            })
            .collect();
        kernels
    }

    fn set_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError> {
        parameters.check_shapes(&self.parameters.layer_sizes())?;
        self.settle_units();
        self.parameters = parameters.clone();
        align_layers(&mut self.parameters.layers);
        self.workspace.transpose_weights(&self.parameters);
        Ok(())
    }

    fn parameters(&mut self) -> Result<Parameters, BackendError> {
        self.settle_units();
        Ok(self.parameters.clone())
    }

    fn optimiser_state(&mut self) -> Result<OptimiserState, BackendError> {
        self.settle_units();
        Ok(self.state.clone())
    }

    fn set_optimiser_state(&mut self, state: &OptimiserState) -> Result<(), BackendError> {
        state.check_for(self.hyper.optimiser, &self.parameters.layer_sizes())?;
        self.settle_units();
        self.state = state.clone();
        align_state(&mut self.state);
        Ok(())
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), BackendError> {
        self.hyper.learning_rate = learning_rate;
        Ok(())
    }

    fn set_order(&mut self, order: &[u32]) -> Result<(), BackendError> {
        check_order(order, self.train_labels.len())?;
        let in_file_order = order.iter().enumerate().all(|(i, &row)| i == row as usize);
        self.order = (!in_file_order).then(|| order.to_vec());
        Ok(())
    }

    fn train_batch(&mut self, rows: Range<usize>) -> Result<(), BackendError> {
        let loss = self.step(rows)?;
        self.loss.add(loss);
        Ok(())
    }

    fn take_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        Ok(std::mem::take(&mut self.loss))
    }

    fn peek_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        Ok(self.loss)
    }

    fn set_validation(&mut self, images: &Dataset) -> Result<(), BackendError> {
        let built = (self.validation_labels.len(), self.parameters.sizes()[0]);
        crate::backend::check_same_shape(built, images)?;
        self.validation_images = SparseImages::new(images);
        self.validation_labels = images.labels.clone();
        Ok(())
    }

    fn trace_batch(&mut self, rows: Range<usize>) -> Result<StepTrace, BackendError> {
        let b = rows.len();
        self.train_batch(rows)?;
        let rows_of = |all: &[Array2<f32>]| {
            first_rows(all, b)
                .into_iter()
                .map(|a| a.to_owned())
                .collect()
        };
        // Each hidden layer's output as the next layer read it: dropped, under dropout.
        let ws = &self.workspace;
        let mut activations: Vec<Array2<f32>> = rows_of(&ws.activations);
        if self.hyper.dropout.is_some() {
            let hidden = activations.len() - 1;
            activations[..hidden].clone_from_slice(&rows_of(&ws.dropped)[..hidden]);
        }
        Ok(StepTrace {
            activations,
            deltas: rows_of(&ws.deltas),
        })
    }

    fn evaluate(&mut self) -> Result<Evaluation, BackendError> {
        let outputs = self.validation_outputs()?;
        let labels = &self.validation_labels;
        Ok(evaluation(self.hyper.output, outputs.view(), labels))
    }

    fn validation_outputs(&mut self) -> Result<Array2<f32>, BackendError> {
        // In chunks, so that the hidden activations of the whole set are never held at once.
        const CHUNK: usize = 1000;
        self.settle_units();
        let count = self.validation_labels.len();
        let images: Vec<u32> = (0..count as u32).collect();
        let mut activations: Vec<Array2<f32>> = self
            .parameters
            .layers
            .iter()
            .map(|l| aligned_zeros(Ix2(CHUNK.min(count), l.weights.ncols())))
            .collect();
        let classes = activations.last().map_or(0, Array2::ncols);
        let mut outputs = Array2::zeros((count, classes));
        let (layers, hyper, simd) = (&self.parameters.layers, &self.hyper, self.simd);
        let set = &self.validation_images;
        for start in (0..count).step_by(CHUNK) {
            let end = (start + CHUNK).min(count);
            let chunk = &images[start..end];
            let ranges = row_ranges(chunk.len(), self.workers.threads().min(chunk.len()));
            let mut parts: Vec<_> = ranges
                .iter()
                .zip(row_parts(&mut activations, &ranges))
                .collect();
            self.workers.for_each(&mut parts, |(rows, activations)| {
                let chunk = &chunk[(*rows).clone()];
                forward(layers, (hyper, simd), set, chunk, activations, None, false);
            });
            outputs
                .slice_mut(s![start..end, ..])
                .assign(&activations[activations.len() - 1].slice(s![..end - start, ..]));
        }
        Ok(outputs)
    }
}
