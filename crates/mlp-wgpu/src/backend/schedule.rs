//! The schedule of layers 2..L that a backend runs, as one value: its kernels and their bind
//! groups, built together when a step first needs them, and how it records a training step
//! and counts its dispatches. The backend holds the one it runs; changing the schedule builds
//! the new one in its place.

use super::bind_groups::{FusedGroups, Group, PerLayerGroups, Sources, WholeGroups};
use super::layout::{BLOCK_GROUP, ROW_GROUP, dense_blocks, div_ceil, first_layer_tasks};
use super::record::{PixelSource, Recorder, blocks};
use super::{DenseSchedule, GpuBackend};
use crate::kernels::{
    FusedKernels, Kernel, KernelOptions, MultiStepKernel, PerLayerKernels, WholeKernels,
};
use crate::variant::Dispatches;

/// The kernels and bind groups of one schedule, built together.
pub(super) enum ScheduleStep {
    /// Layers 2..L in two dispatches (DenseSchedule::Fused).
    Fused(FusedKernels, FusedGroups),
    /// A dispatch per layer and quantity (DenseSchedule::Registers and Tiled, which differ in
    /// the forward product's kernel only).
    PerLayer(Box<(PerLayerKernels, PerLayerGroups)>),
    /// The whole step, layer 1 included, in two dispatches (DenseSchedule::Whole).
    Whole(WholeKernels, WholeGroups),
    /// Runs of whole steps in one dispatch (DenseSchedule::MultiStep).
    MultiStep(MultiStepKernel, Group),
}

impl ScheduleStep {
    /// The kernels of `schedule` (as the backend resolved it, so one that fits) and their bind
    /// groups from `sources`.
    pub(super) fn build(
        schedule: DenseSchedule,
        options: &KernelOptions,
        sources: &Sources,
    ) -> Self {
        let device = sources.device;
        let fits = "the backend resolves a schedule its network fits";
        match schedule {
            DenseSchedule::Fused => {
                let kernels = FusedKernels::new(device, options).expect(fits);
                let groups = sources.fused(&kernels);
                Self::Fused(kernels, groups)
            }
            DenseSchedule::Registers | DenseSchedule::Tiled => {
                let kernels = PerLayerKernels::new(device, options);
                let groups = sources.per_layer(&kernels);
                Self::PerLayer(Box::new((kernels, groups)))
            }
            DenseSchedule::Whole => {
                let kernels = WholeKernels::new(device, options).expect(fits);
                let groups = sources.whole(&kernels);
                Self::Whole(kernels, groups)
            }
            DenseSchedule::MultiStep => {
                let kernel = MultiStepKernel::new(device, options);
                let group = sources.multi_step(&kernel);
                Self::MultiStep(kernel, group)
            }
        }
    }

    /// Whether this is the step `schedule` runs on.
    pub(super) fn runs(&self, schedule: DenseSchedule) -> bool {
        matches!(
            (self, schedule),
            (Self::Fused(..), DenseSchedule::Fused)
                | (
                    Self::PerLayer(..),
                    DenseSchedule::Registers | DenseSchedule::Tiled
                )
                | (Self::Whole(..), DenseSchedule::Whole)
                | (Self::MultiStep(..), DenseSchedule::MultiStep)
        )
    }

    /// Its kernels.
    pub(super) fn kernels(&self) -> Vec<&Kernel> {
        match self {
            Self::Fused(k, _) => vec![&k.row_forward_backward, &k.layers_weights_update],
            Self::PerLayer(step) => vec![
                &step.0.linear_forward_tiled,
                &step.0.dropout_forward,
                &step.0.output_delta,
                &step.0.hidden_delta,
                &step.0.weights_update,
            ],
            Self::Whole(k, _) => vec![&k.step_forward_backward, &k.step_weights_update],
            Self::MultiStep(k, _) => vec![&k.multi_step],
        }
    }

    /// The tiled forward product's kernel, where this step has it.
    pub(super) fn tiled_forward(&self) -> Option<&Kernel> {
        match self {
            Self::PerLayer(step) => Some(&step.0.linear_forward_tiled),
            _ => None,
        }
    }

    /// The dropout kernel and each hidden layer's bind group, where this step has them.
    pub(super) fn dropout(&self) -> Option<(&Kernel, &[Group])> {
        match self {
            Self::PerLayer(step) => Some((&step.0.dropout_forward, &step.1.dropout_forward)),
            _ => None,
        }
    }

    /// Records a training step of `rows` rows that finds its batch's pixels in `pixels`.
    pub(super) fn record_training(
        &self,
        backend: &GpuBackend,
        recorder: &mut Recorder,
        rows: usize,
        pixels: PixelSource,
    ) {
        match self {
            Self::Whole(kernels, groups) => {
                record_whole_step(backend, recorder, rows, kernels, groups)
            }
            Self::MultiStep(kernel, group) => {
                let what = ("multi_step layers 1 to", backend.sizes.len() - 1);
                recorder.dispatch(&kernel.multi_step, group, what, 1, 1);
            }
            Self::Fused(kernels, groups) => {
                backend.record_first_layer_forward(recorder, rows, Some(pixels));
                record_fused_layers(backend, recorder, rows, kernels, groups);
                backend.record_first_layer_update(recorder, pixels);
            }
            Self::PerLayer(step) => {
                let (kernels, groups) = (&step.0, &step.1);
                backend.record_first_layer_forward(recorder, rows, Some(pixels));
                let dropping = backend.hyper.dropout.is_some();
                backend.record_dense_forward(recorder, rows, dropping);
                record_dense_backward(backend, recorder, rows, kernels, groups);
                backend.record_first_layer_update(recorder, pixels);
            }
        }
    }
}

/// Dispatches of a training step of `schedule` that finds its pixel lists in `pixels`: the
/// batch by pixel (where not cached), the first layer's forward pass and update, and for the
/// layers after it either two (fused) or forward per layer, output delta, hidden deltas and
/// updates per layer. The whole step finds its lit pixels itself, in any order: two
/// dispatches, or one for up to STEP_SLOTS steps. Known before the step's kernels are built.
pub(super) fn dispatches(
    schedule: DenseSchedule,
    backend: &GpuBackend,
    pixels: PixelSource,
) -> Dispatches {
    let depth = backend.sizes.len() - 1;
    let per_step = |dispatches| Dispatches {
        dispatches,
        steps: 1,
    };
    let regroup = usize::from(pixels == PixelSource::PerStep);
    match schedule {
        DenseSchedule::MultiStep => Dispatches {
            dispatches: 1,
            steps: backend.multi_step_run_limit(),
        },
        DenseSchedule::Whole => per_step(2),
        DenseSchedule::Fused => per_step(regroup + 4),
        DenseSchedule::Registers | DenseSchedule::Tiled => {
            // Under dropout, one more for each hidden layer's dropout_forward.
            let dropouts = if backend.hyper.dropout.is_some() {
                depth - 1
            } else {
                0
            };
            per_step(regroup + depth + 1 + (depth - 1) + depth + dropouts)
        }
    }
}

/// The output delta, every hidden delta and the updates of layers 2..L, one dispatch each.
fn record_dense_backward(
    backend: &GpuBackend,
    recorder: &mut Recorder,
    rows: usize,
    kernels: &PerLayerKernels,
    b: &PerLayerGroups,
) {
    let sizes = &backend.sizes;
    let depth = sizes.len() - 1;
    let what = ("output_delta layer", depth);
    recorder.dispatch(&kernels.output_delta, &b.output_delta, what, 1, 1);
    for layer in (0..depth - 1).rev() {
        let (x, y) = (blocks(sizes[layer + 1]), blocks(rows));
        let what = ("hidden_delta layer", layer + 1);
        recorder.dispatch(&kernels.hidden_delta, &b.hidden_delta[layer], what, x, y);
    }
    for layer in 1..depth {
        let (x, y) = (blocks(sizes[layer + 1]), blocks(sizes[layer] + 1));
        let what = ("weights_update layer", layer + 1);
        let group = &b.weights_update[layer - 1];
        recorder.dispatch(&kernels.weights_update, group, what, x, y);
    }
}

/// Layers 2..L of a training step in two dispatches: every row forward and back, then every
/// layer's 4 x 4 blocks of gradient and update.
fn record_fused_layers(
    backend: &GpuBackend,
    recorder: &mut Recorder,
    rows: usize,
    kernels: &FusedKernels,
    b: &FusedGroups,
) {
    let sizes = &backend.sizes;
    let depth = sizes.len() - 1;
    let what = ("row_forward_backward layers 2 to", depth);
    let groups = div_ceil(rows, ROW_GROUP);
    let (row_pass, update) = (
        &kernels.row_forward_backward,
        &kernels.layers_weights_update,
    );
    recorder.dispatch(row_pass, &b.row_forward_backward, what, groups, 1);
    let what = ("layers_weights_update layers 2 to", depth);
    let groups = div_ceil(dense_blocks(sizes).max(1), BLOCK_GROUP);
    recorder.dispatch(update, &b.layers_weights_update, what, groups, 1);
}

/// A training step of `rows` rows in two dispatches: every row forward and back through every
/// layer, then every layer's update (the first over its lit pixels) and the loss.
fn record_whole_step(
    backend: &GpuBackend,
    recorder: &mut Recorder,
    rows: usize,
    kernels: &WholeKernels,
    groups: &WholeGroups,
) {
    let sizes = &backend.sizes;
    let what = ("step_forward_backward layers 1 to", sizes.len() - 1);
    let x = div_ceil(rows, ROW_GROUP);
    let forward = &kernels.step_forward_backward;
    recorder.dispatch(forward, &groups.forward_backward, what, x, 1);
    let what = ("step_weights_update layers 1 to", sizes.len() - 1);
    let x = div_ceil(first_layer_tasks(sizes) + dense_blocks(sizes), 64);
    let update = &kernels.step_weights_update;
    recorder.dispatch(update, &groups.weights_update, what, x, 1);
}
