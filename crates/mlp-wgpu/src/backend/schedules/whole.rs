//! The whole step, layer 1 included, in two dispatches: one invocation per batch row forward
//! through every layer (layer 1 over its lit pixels) and back through every delta
//! (step_forward_backward.wgsl), then one dispatch updating every layer, W1 over its lit pixels
//! (step_weights_update.wgsl). Every array is read from storage: the step binds the whole
//! parameter buffer, W1 with the rest.

use mlp_core::backend::StepKernels;

use super::fused::{every_layer_update, row_pass_buffers};
use super::{Entry, StepSchedule, per_layer, row_arrays_fit};
use crate::backend::bind_groups::{Group, Sources};
use crate::backend::layout::{ROW_GROUP, dense_blocks, div_ceil, first_layer_tasks, whole};
use crate::backend::record::PixelSource;
use crate::backend::recorder::Recorder;
use crate::backend::{GpuBackend, loop_budget};
use crate::kernels::{Kernel, KernelDecl, KernelOptions, bindings, prelude, wgsl};
use crate::variant::{DenseSchedule, Dispatches};

pub(super) const WHOLE: Entry = Entry {
    schedule: DenseSchedule::Whole,
    reads_image_bytes: true,
    fits,
    fallback: Some(DenseSchedule::Fused),
    build: |options, sources| Box::new(Whole::new(options, sources)),
    dispatches: |_, _| Dispatches {
        dispatches: 2,
        steps: 1,
    },
    step_kernels: |backend| {
        let depth = backend.sizes.len() - 1;
        let row_pass = "step_forward_backward";
        StepKernels {
            activations: per_layer(depth, row_pass, row_pass),
            deltas: per_layer(depth, row_pass, row_pass),
            parameters: per_layer(depth, "step_weights_update", "step_weights_update"),
        }
    },
};

const STEP_FORWARD_BACKWARD: KernelDecl = KernelDecl {
    name: "step_forward_backward",
    files: wgsl![
        "row_pass_bindings.wgsl",
        "row_parameters_storage.wgsl",
        "forward_backward_row.wgsl",
        "image_bytes.wgsl",
        "first_layer_row.wgsl",
        "step_forward_backward.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, network: Uniform, parameters: ReadOnlyStorage,
        activations: Storage, deltas: Storage, labels: ReadOnlyStorage,
        order: ReadOnlyStorage, row_losses: Storage, images: ReadOnlyStorage,
    ],
};

const STEP_WEIGHTS_UPDATE: KernelDecl = KernelDecl {
    name: "step_weights_update",
    files: wgsl![
        "optimiser_update.wgsl",
        "dense_update_bindings.wgsl",
        "weights_update_block.wgsl",
        "dense_blocks_update.wgsl",
        "image_bytes.wgsl",
        "first_layer_update.wgsl",
        "step_weights_update.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, network: Uniform, parameters: Storage,
        state: Storage, row_losses: ReadOnlyStorage, losses: Storage,
        activations4: ReadOnlyStorage, deltas4: ReadOnlyStorage, images: ReadOnlyStorage,
        order: ReadOnlyStorage,
    ],
};

/// Whether `backend` can run the whole step: the network fits a row's private arrays, the
/// images' bytes were uploaded (a backend built for this schedule uploads them where they fit
/// a binding), and a row's pass is within the driver's loop budget.
pub(super) fn fits(backend: &GpuBackend) -> bool {
    let row_fits = (backend.context.loop_iteration_limit())
        .is_none_or(|budget| loop_budget::row_pass(&backend.sizes) <= budget);
    row_arrays_fit(backend) && backend.data.train_bytes.is_some() && row_fits
}

struct Whole {
    step_forward_backward: Kernel,
    step_weights_update: Kernel,
    forward_group: Group,
    update_group: Group,
}

impl Whole {
    fn new(options: &KernelOptions, sources: &Sources) -> Self {
        let device = sources.device;
        let sizes = prelude(&[("LAYERS", options.layers), ("UNITS", options.units)]);
        let forward = STEP_FORWARD_BACKWARD.build(device, &sizes, &options.row_group_constant());
        let update = STEP_WEIGHTS_UPDATE.build(device, &sizes, &options.optimiser_constant());
        let (t, tables, data) = (sources.tensors, sources.tables, sources.data);
        let bytes = (data.train_bytes.as_ref())
            .expect("the backend builds the whole step only where the images' bytes are uploaded");
        let parameters = whole(&t.parameters.buffer);
        let mut forward_buffers = row_pass_buffers(sources, &tables.network, parameters);
        forward_buffers.push(("images", whole(bytes)));
        let forward_group = sources.group(&forward, &forward_buffers);
        let mut update_buffers = every_layer_update(sources);
        update_buffers.extend([
            ("images", whole(bytes)),
            ("order", whole(&data.train.order)),
        ]);
        let update_group = sources.group(&update, &update_buffers);
        Self {
            step_forward_backward: forward,
            step_weights_update: update,
            forward_group,
            update_group,
        }
    }
}

impl StepSchedule for Whole {
    fn kernels(&self) -> Vec<&Kernel> {
        vec![&self.step_forward_backward, &self.step_weights_update]
    }

    /// Every row forward and back through every layer, then every layer's update (the first
    /// over its lit pixels) and the loss.
    fn record_training(
        &self,
        backend: &GpuBackend,
        recorder: &mut Recorder,
        rows: usize,
        _: PixelSource,
    ) {
        let sizes = &backend.sizes;
        let what = ("step_forward_backward layers 1 to", sizes.len() - 1);
        let x = div_ceil(rows, ROW_GROUP);
        recorder.dispatch(&self.step_forward_backward, &self.forward_group, what, x, 1);
        let what = ("step_weights_update layers 1 to", sizes.len() - 1);
        let x = div_ceil(first_layer_tasks(sizes) + dense_blocks(sizes), 64);
        recorder.dispatch(&self.step_weights_update, &self.update_group, what, x, 1);
    }
}
