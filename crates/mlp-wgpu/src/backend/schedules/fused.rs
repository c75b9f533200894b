//! Layers 2..L of a step in two dispatches: one invocation per batch row runs the row through
//! every layer's forward pass and back through every delta (row_forward_backward.wgsl), then
//! one dispatch moves every layer's parameters in 4 x 4 blocks (layers_weights_update.wgsl).
//! The first layer runs as on every schedule, before and after.

use mlp_core::backend::StepKernels;

use super::{Entry, StepSchedule, per_layer, row_arrays_fit};
use crate::backend::GpuBackend;
use crate::backend::bind_groups::{Group, Named, Sources};
use crate::backend::layout::{BLOCK_GROUP, ROW_GROUP, dense_blocks, div_ceil, whole};
use crate::backend::record::PixelSource;
use crate::backend::recorder::Recorder;
use crate::kernels::{Kernel, KernelDecl, KernelOptions, bindings, prelude, wgsl};
use crate::variant::{DenseSchedule, Dispatches};

pub(super) const FUSED: Entry = Entry {
    schedule: DenseSchedule::Fused,
    reads_image_bytes: false,
    fits: row_arrays_fit,
    fallback: Some(DenseSchedule::Registers),
    build: |options, sources| Box::new(Fused::new(options, sources)),
    dispatches: |_, pixels| Dispatches {
        // The batch by pixel where it is not cached, the first layer's two, and two.
        dispatches: usize::from(pixels == PixelSource::PerStep) + 4,
        steps: 1,
    },
    step_kernels: |backend| {
        let depth = backend.sizes.len() - 1;
        StepKernels {
            activations: per_layer(depth, "sparse_forward", "row_forward_backward"),
            deltas: per_layer(depth, "row_forward_backward", "row_forward_backward"),
            parameters: per_layer(depth, "sparse_weights_update", "layers_weights_update"),
        }
    },
};

/// row_forward_backward.wgsl with the parameters of layers 2..L read through a uniform
/// binding.
const ROW_FORWARD_BACKWARD_UNIFORM: KernelDecl = KernelDecl {
    name: "row_forward_backward",
    files: wgsl![
        "row_pass_bindings.wgsl",
        "row_parameters_uniform.wgsl",
        "forward_backward_row.wgsl",
        "row_forward_backward.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, network: Uniform, parameters: Uniform, activations: Storage,
        deltas: Storage, labels: ReadOnlyStorage, order: ReadOnlyStorage, row_losses: Storage,
    ],
};

/// row_forward_backward.wgsl with the parameters of layers 2..L read from storage.
const ROW_FORWARD_BACKWARD_STORAGE: KernelDecl = KernelDecl {
    name: "row_forward_backward",
    files: wgsl![
        "row_pass_bindings.wgsl",
        "row_parameters_storage.wgsl",
        "forward_backward_row.wgsl",
        "row_forward_backward.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, network: Uniform, parameters: ReadOnlyStorage,
        activations: Storage, deltas: Storage, labels: ReadOnlyStorage,
        order: ReadOnlyStorage, row_losses: Storage,
    ],
};

const LAYERS_WEIGHTS_UPDATE: KernelDecl = KernelDecl {
    name: "layers_weights_update",
    files: wgsl![
        "optimiser_update.wgsl",
        "dense_update_bindings.wgsl",
        "weights_update_block.wgsl",
        "dense_blocks_update.wgsl",
        "layers_weights_update.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, network: Uniform, parameters: Storage,
        state: Storage, row_losses: ReadOnlyStorage, losses: Storage,
        activations4: ReadOnlyStorage, deltas4: ReadOnlyStorage,
    ],
};

struct Fused {
    row_forward_backward: Kernel,
    layers_weights_update: Kernel,
    row_group: Group,
    update_group: Group,
}

impl Fused {
    /// Its two kernels for `options` and their bind groups. The backend builds it only where
    /// the network fits (`row_arrays_fit`): row_forward_backward keeps a row's values in
    /// private arrays, and lavapipe's time to build it grows steeply with them (docs/gpu.md).
    fn new(options: &KernelOptions, sources: &Sources) -> Self {
        let device = sources.device;
        let sizes = [("LAYERS", options.layers), ("UNITS", options.units)];
        let row_group = options.row_group_constant();
        let row_forward_backward = match options.uniform.dense_parameters {
            Some(vec4s) => {
                let constants = [sizes[0], sizes[1], ("DENSE_PARAMETER_VEC4S", vec4s)];
                ROW_FORWARD_BACKWARD_UNIFORM.build(device, &prelude(&constants), &row_group)
            }
            None => ROW_FORWARD_BACKWARD_STORAGE.build(device, &prelude(&sizes), &row_group),
        };
        let layers = prelude(&[("LAYERS", options.layers)]);
        let optimiser = options.optimiser_constant();
        let layers_weights_update = LAYERS_WEIGHTS_UPDATE.build(device, &layers, &optimiser);
        Self {
            row_group: row_pass_group(sources, &row_forward_backward),
            update_group: sources.group(&layers_weights_update, &every_layer_update(sources)),
            row_forward_backward,
            layers_weights_update,
        }
    }
}

impl StepSchedule for Fused {
    fn kernels(&self) -> Vec<&Kernel> {
        vec![&self.row_forward_backward, &self.layers_weights_update]
    }

    fn record_training(
        &self,
        backend: &GpuBackend,
        recorder: &mut Recorder,
        rows: usize,
        pixels: PixelSource,
    ) {
        backend.record_first_layer_forward(recorder, rows, Some(pixels));
        let sizes = &backend.sizes;
        let depth = sizes.len() - 1;
        let what = ("row_forward_backward layers 2 to", depth);
        let groups = div_ceil(rows, ROW_GROUP);
        recorder.dispatch(&self.row_forward_backward, &self.row_group, what, groups, 1);
        let what = ("layers_weights_update layers 2 to", depth);
        let groups = div_ceil(dense_blocks(sizes).max(1), BLOCK_GROUP);
        recorder.dispatch(
            &self.layers_weights_update,
            &self.update_group,
            what,
            groups,
            1,
        );
        backend.record_first_layer_update(recorder, pixels);
    }
}

/// Layers 2..L forward and back, one invocation per row: the parameters bound from layer 2's,
/// as the table `row_network` counts them.
fn row_pass_group(sources: &Sources, kernel: &Kernel) -> Group {
    let (t, tables) = (sources.tensors, sources.tables);
    let dense_parameters = wgpu::BufferBinding {
        buffer: &t.parameters.buffer,
        offset: tables.dense_start,
        size: wgpu::BufferSize::new(tables.dense_bytes),
    };
    let buffers = row_pass_buffers(sources, &tables.row_network, dense_parameters);
    sources.group(kernel, &buffers)
}

/// What row_pass_bindings.wgsl binds: the network table and the parameters it counts from,
/// every layer's activations and deltas whole, the labels, the order and the rows' losses.
pub(super) fn row_pass_buffers<'a>(
    sources: &Sources<'a>,
    network: &'a wgpu::Buffer,
    parameters: wgpu::BufferBinding<'a>,
) -> Vec<Named<'a>> {
    let (t, data) = (sources.tensors, sources.data);
    vec![
        ("network", whole(network)),
        ("parameters", parameters),
        ("activations", whole(&t.activations.buffer)),
        ("deltas", whole(&t.deltas.buffer)),
        ("labels", whole(&data.train.labels)),
        ("order", whole(&data.train.order)),
        ("row_losses", whole(&t.row_losses)),
    ]
}

/// What dense_update_bindings.wgsl binds: every layer's parameters, state and tensors whole,
/// at the network table's offsets, the rows' losses and the batch losses; `layer` is layer
/// 1's, for the optimiser's constants.
pub(super) fn every_layer_update<'a>(sources: &Sources<'a>) -> Vec<Named<'a>> {
    let (t, tables) = (sources.tensors, sources.tables);
    vec![
        ("layer", whole(&tables.layers[0])),
        ("network", whole(&tables.network)),
        ("parameters", whole(&t.parameters.buffer)),
        ("state", whole(&t.optimiser_state.buffer)),
        ("row_losses", whole(&t.row_losses)),
        ("losses", whole(&t.losses)),
        ("activations4", whole(&t.activations.buffer)),
        ("deltas4", whole(&t.deltas.buffer)),
    ]
}
