//! Runs of up to STEP_SLOTS consecutive whole steps in one dispatch of one workgroup, with
//! barriers between each step's rows and its updates (multi_step.wgsl). It uses one compute
//! unit of a GPU, but pays for one dispatch instead of hundreds.

use super::{Entry, StepSchedule, one_kernel};
use crate::backend::bind_groups::{Group, Sources};
use crate::backend::layout::{STEP_GROUP, STEP_SLOTS, whole};
use crate::backend::record::PixelSource;
use crate::backend::recorder::Recorder;
use crate::backend::{GpuBackend, loop_budget};
use crate::kernels::{Kernel, KernelDecl, KernelOptions, bindings, prelude, wgsl};
use crate::variant::{DenseSchedule, Dispatches};

pub(super) const MULTI_STEP: Entry = Entry {
    schedule: DenseSchedule::MultiStep,
    reads_image_bytes: true,
    fits: |backend| super::whole::fits(backend) && fits_device(backend),
    fallback: Some(DenseSchedule::Whole),
    build: |options, sources| Box::new(MultiStep::new(options, sources)),
    dispatches: |backend, _| Dispatches {
        dispatches: 1,
        steps: run_limit(backend),
    },
    step_kernels: |backend| one_kernel(backend.sizes.len() - 1, "multi_step"),
};

const MULTI_STEP_KERNEL: KernelDecl = KernelDecl {
    name: "multi_step",
    files: wgsl![
        "optimiser_update.wgsl",
        "forward_backward_row.wgsl",
        "weights_update_block.wgsl",
        "dense_blocks_update.wgsl",
        "image_bytes.wgsl",
        "first_layer_row.wgsl",
        "first_layer_update.wgsl",
        "multi_step.wgsl",
    ],
    bindings: bindings![
        run: DynamicUniform, steps: Uniform, layer: Uniform, network: Uniform,
        parameters: Storage, state: Storage, activations: Storage, deltas: Storage,
        labels: ReadOnlyStorage, order: ReadOnlyStorage, losses: Storage,
        images: ReadOnlyStorage,
    ],
};

/// Whether multi_step.wgsl fits the batch and the device: its one workgroup of STEP_GROUP, a
/// batch's losses in its workgroup memory, every step slot in one uniform binding, and at
/// least one step within the driver's loop budget.
fn fits_device(backend: &GpuBackend) -> bool {
    let limits = &backend.context.limits;
    let step_bytes = backend.step_slots.stride * STEP_SLOTS as u64;
    backend.max_batch as u64 * 4 <= u64::from(limits.max_compute_workgroup_storage_size)
        && STEP_GROUP <= limits.max_compute_invocations_per_workgroup
        && STEP_GROUP <= limits.max_compute_workgroup_size_x
        && step_bytes <= limits.max_uniform_buffer_binding_size
        && run_limit(backend) > 0
}

/// The most steps one dispatch of multi_step.wgsl runs: STEP_SLOTS, or on a driver with a
/// loop budget as many as fit in it.
fn run_limit(backend: &GpuBackend) -> usize {
    let Some(budget) = backend.context.loop_iteration_limit() else {
        return STEP_SLOTS;
    };
    let sizes = &backend.sizes;
    // Each invocation takes a row in every STEP_GROUP of the batch.
    let rows = backend.max_batch.div_ceil(STEP_GROUP as usize) as u64;
    let per_step = rows * loop_budget::row_pass(sizes)
        + loop_budget::update_share(sizes, backend.max_batch, STEP_GROUP as usize)
        + 1;
    ((budget / per_step) as usize).min(STEP_SLOTS)
}

struct MultiStep {
    kernel: Kernel,
    group: Group,
}

impl MultiStep {
    fn new(options: &KernelOptions, sources: &Sources) -> Self {
        let (slots, pad) = options.step_slots;
        let constants = prelude(&[
            ("LAYERS", options.layers),
            ("UNITS", options.units),
            ("MAX_ROWS", options.max_batch),
            ("STEP_SLOTS", slots),
            ("STEP_PAD", pad),
            ("STEP_GROUP", options.step_group),
        ]);
        let optimiser = options.optimiser_constant();
        let kernel = MULTI_STEP_KERNEL.build(sources.device, &constants, &optimiser);
        let group = group(sources, &kernel);
        Self { kernel, group }
    }
}

/// The step slots twice, the run's first at its dynamic offset and all of them whole, then
/// what the whole step's kernels bind between them.
fn group(sources: &Sources, kernel: &Kernel) -> Group {
    let (t, tables, data) = (sources.tensors, sources.tables, sources.data);
    let bytes = (data.train_bytes.as_ref()).expect(
        "the backend builds the multi-step kernel only where the images' bytes are uploaded",
    );
    sources.group(
        kernel,
        &[
            ("steps", whole(&sources.steps.buffer)),
            ("layer", whole(&tables.layers[0])),
            ("network", whole(&tables.network)),
            ("parameters", whole(&t.parameters.buffer)),
            ("state", whole(&t.optimiser_state.buffer)),
            ("activations", whole(&t.activations.buffer)),
            ("deltas", whole(&t.deltas.buffer)),
            ("labels", whole(&data.train.labels)),
            ("order", whole(&data.train.order)),
            ("losses", whole(&t.losses)),
            ("images", whole(bytes)),
        ],
    )
}

impl StepSchedule for MultiStep {
    fn kernels(&self) -> Vec<&Kernel> {
        vec![&self.kernel]
    }

    /// The run that starts at this step, in one dispatch (the recorder's offset is its slot).
    fn record_training(
        &self,
        backend: &GpuBackend,
        recorder: &mut Recorder,
        _: usize,
        _: PixelSource,
    ) {
        let what = ("multi_step layers 1 to", backend.sizes.len() - 1);
        recorder.dispatch(&self.kernel, &self.group, what, 1, 1);
    }
}
