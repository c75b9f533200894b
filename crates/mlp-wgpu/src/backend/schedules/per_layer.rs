//! Layers 2..L a dispatch per layer and quantity: the forward product of each layer (under
//! dropout, each hidden layer's dropout after it), the output delta, each hidden delta and each
//! layer's update. `registers` computes the products a 4 x 4 block per invocation
//! (linear_forward.wgsl, which the evaluation runs on every schedule); `tiled` in 16 x 16 tiles
//! staged in workgroup memory (linear_forward_tiled.wgsl). Neither keeps a row in private
//! arrays, so any width fits: the fallback of the schedules that do.

use mlp_core::backend::StepKernels;

use super::{Entry, StepSchedule};
use crate::backend::GpuBackend;
use crate::backend::bind_groups::{Group, Sources};
use crate::backend::layout::whole;
use crate::backend::record::{PixelSource, blocks};
use crate::backend::recorder::Recorder;
use crate::backend::shared_kernels::LINEAR_FORWARD;
use crate::kernels::{Kernel, KernelDecl, KernelOptions, bindings, wgsl};
use crate::variant::{DenseSchedule, Dispatches};

pub(super) const REGISTERS: Entry = Entry {
    schedule: DenseSchedule::Registers,
    reads_image_bytes: false,
    fits: |_| true,
    fallback: None,
    build: |options, sources| Box::new(PerLayer::new(options, sources, None)),
    dispatches,
    step_kernels: |backend| step_kernels(backend, "linear_forward"),
};

pub(super) const TILED: Entry = Entry {
    schedule: DenseSchedule::Tiled,
    build: |options, sources| {
        let tiled = LINEAR_FORWARD_TILED.build(sources.device, "", &[]);
        Box::new(PerLayer::new(options, sources, Some(tiled)))
    },
    step_kernels: |backend| step_kernels(backend, "linear_forward_tiled"),
    ..REGISTERS
};

/// Bound as linear_forward is, by the same bind groups: the two are interchangeable.
const LINEAR_FORWARD_TILED: KernelDecl = KernelDecl {
    name: "linear_forward_tiled",
    files: wgsl!["linear_forward_tiled.wgsl"],
    ..LINEAR_FORWARD
};

const DROPOUT_FORWARD: KernelDecl = KernelDecl {
    name: "dropout_forward",
    files: wgsl!["dropout_forward.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, activations: Storage, deltas: Storage,
    ],
};

const OUTPUT_DELTA: KernelDecl = KernelDecl {
    name: "output_delta",
    files: wgsl!["softmax_row.wgsl", "output_delta.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, activation: Storage, labels: ReadOnlyStorage,
        order: ReadOnlyStorage, delta: Storage, losses: Storage,
    ],
};

const HIDDEN_DELTA: KernelDecl = KernelDecl {
    name: "hidden_delta",
    files: wgsl!["hidden_delta.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, next_delta: Storage,
        next_parameters: ReadOnlyStorage, activation: ReadOnlyStorage, delta: Storage,
    ],
};

const WEIGHTS_UPDATE: KernelDecl = KernelDecl {
    name: "weights_update",
    files: wgsl![
        "optimiser_update.wgsl",
        "weights_update_block.wgsl",
        "weights_update.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, input: ReadOnlyStorage, delta: ReadOnlyStorage,
        parameters: Storage, state: Storage,
    ],
};

/// A step's dispatches: the batch by pixel where it is not cached, the first layer's forward
/// pass, each later layer's product, the output delta, each hidden delta, the first layer's
/// update and each later layer's; under dropout, one more for each hidden layer.
fn dispatches(backend: &GpuBackend, pixels: PixelSource) -> Dispatches {
    let depth = backend.sizes.len() - 1;
    let regroup = usize::from(pixels == PixelSource::PerStep);
    let dropouts = if backend.hyper.dropout.is_some() {
        depth - 1
    } else {
        0
    };
    Dispatches {
        dispatches: regroup + depth + 1 + (depth - 1) + depth + dropouts,
        steps: 1,
    }
}

/// Which kernel makes each tensor, the products of layers 2..L made by `forward`; under
/// dropout a hidden layer's output is what dropout_forward made of it.
fn step_kernels(backend: &GpuBackend, forward: &str) -> StepKernels {
    let depth = backend.sizes.len() - 1;
    let dropping = backend.hyper.dropout.is_some();
    let product = |k: usize| if k == 0 { "sparse_forward" } else { forward };
    StepKernels {
        activations: (0..depth)
            .map(|k| match dropping && k + 1 < depth {
                true => format!("{} + dropout_forward", product(k)),
                false => product(k).to_string(),
            })
            .collect(),
        deltas: (0..depth)
            .map(|k| {
                if k + 1 == depth {
                    "output_delta"
                } else {
                    "hidden_delta"
                }
                .to_string()
            })
            .collect(),
        parameters: super::per_layer(depth, "sparse_weights_update", "weights_update"),
    }
}

struct PerLayer {
    /// The forward products' kernel where it is not linear_forward.
    forward_product: Option<Kernel>,
    dropout_forward: Kernel,
    output_delta: Kernel,
    hidden_delta: Kernel,
    weights_update: Kernel,
    groups: PerLayerGroups,
}

struct PerLayerGroups {
    /// Per hidden layer k (all but the last): Ak -> Ãk, under dropout.
    dropout_forward: Vec<Group>,
    output_delta: Group,
    /// Per hidden layer k (all but the last): D(k+1) -> Dk.
    hidden_delta: Vec<Group>,
    /// Per dense layer k ≥ 2, at index k − 2.
    weights_update: Vec<Group>,
}

impl PerLayer {
    fn new(options: &KernelOptions, sources: &Sources, forward_product: Option<Kernel>) -> Self {
        let device = sources.device;
        let dropout_forward = DROPOUT_FORWARD.build(device, "", &[]);
        let output_delta = OUTPUT_DELTA.build(device, "", &[]);
        let hidden_delta = HIDDEN_DELTA.build(device, "", &[]);
        let weights_update = WEIGHTS_UPDATE.build(device, "", &options.optimiser_constant());
        let groups = PerLayerGroups {
            dropout_forward: dropout_groups(sources, &dropout_forward),
            output_delta: output_delta_group(sources, &output_delta),
            hidden_delta: hidden_delta_groups(sources, &hidden_delta),
            weights_update: weights_update_groups(sources, &weights_update),
        };
        Self {
            forward_product,
            dropout_forward,
            output_delta,
            hidden_delta,
            weights_update,
            groups,
        }
    }
}

impl StepSchedule for PerLayer {
    fn kernels(&self) -> Vec<&Kernel> {
        let mut kernels: Vec<&Kernel> = self.forward_product.iter().collect();
        kernels.extend([
            &self.dropout_forward,
            &self.output_delta,
            &self.hidden_delta,
            &self.weights_update,
        ]);
        kernels
    }

    fn record_training(
        &self,
        backend: &GpuBackend,
        recorder: &mut Recorder,
        rows: usize,
        pixels: PixelSource,
    ) {
        backend.record_first_layer_forward(recorder, rows, Some(pixels));
        let dropping = backend.hyper.dropout.is_some();
        backend.record_dense_forward(recorder, rows, dropping);
        self.record_backward(backend, recorder, rows);
        backend.record_first_layer_update(recorder, pixels);
    }

    fn forward_product(&self) -> Option<&Kernel> {
        self.forward_product.as_ref()
    }

    fn dropout(&self) -> Option<(&Kernel, &[Group])> {
        Some((&self.dropout_forward, &self.groups.dropout_forward))
    }
}

impl PerLayer {
    /// The output delta, every hidden delta and the updates of layers 2..L, one dispatch each.
    fn record_backward(&self, backend: &GpuBackend, recorder: &mut Recorder, rows: usize) {
        let (sizes, groups) = (&backend.sizes, &self.groups);
        let depth = sizes.len() - 1;
        let what = ("output_delta layer", depth);
        recorder.dispatch(&self.output_delta, &groups.output_delta, what, 1, 1);
        for layer in (0..depth - 1).rev() {
            let (x, y) = (blocks(sizes[layer + 1]), blocks(rows));
            let what = ("hidden_delta layer", layer + 1);
            recorder.dispatch(&self.hidden_delta, &groups.hidden_delta[layer], what, x, y);
        }
        for layer in 1..depth {
            let (x, y) = (blocks(sizes[layer + 1]), blocks(sizes[layer] + 1));
            let what = ("weights_update layer", layer + 1);
            let group = &groups.weights_update[layer - 1];
            recorder.dispatch(&self.weights_update, group, what, x, y);
        }
    }
}

fn output_delta_group(sources: &Sources, kernel: &Kernel) -> Group {
    let (t, last) = (sources.tensors, sources.depth() - 1);
    sources.group(
        kernel,
        &[
            ("layer", whole(&sources.tables.layers[last])),
            ("activation", t.activations.layer(last)),
            ("labels", whole(&sources.data.train.labels)),
            ("order", whole(&sources.data.train.order)),
            ("delta", t.deltas.layer(last)),
            ("losses", whole(&t.losses)),
        ],
    )
}

/// Per hidden layer k (all but the last): Ak → Ãk, the undropped Ak into Dk's slot.
fn dropout_groups(sources: &Sources, kernel: &Kernel) -> Vec<Group> {
    let (t, layers) = (sources.tensors, &sources.tables.layers);
    (0..sources.depth() - 1)
        .map(|k| {
            sources.group(
                kernel,
                &[
                    ("layer", whole(&layers[k])),
                    ("activations", t.activations.layer(k)),
                    ("deltas", t.deltas.layer(k)),
                ],
            )
        })
        .collect()
}

/// Per hidden layer k (all but the last): D(k+1) → Dk.
fn hidden_delta_groups(sources: &Sources, kernel: &Kernel) -> Vec<Group> {
    let (t, layers) = (sources.tensors, &sources.tables.layers);
    (0..sources.depth() - 1)
        .map(|k| {
            sources.group(
                kernel,
                &[
                    ("layer", whole(&layers[k + 1])),
                    ("next_delta", t.deltas.layer(k + 1)),
                    ("next_parameters", t.parameters.layer(k + 1)),
                    ("activation", t.activations.layer(k)),
                    ("delta", t.deltas.layer(k)),
                ],
            )
        })
        .collect()
}

/// Per dense layer k ≥ 2: its gradient and update.
fn weights_update_groups(sources: &Sources, kernel: &Kernel) -> Vec<Group> {
    let (t, layers) = (sources.tensors, &sources.tables.layers);
    (1..sources.depth())
        .map(|k| {
            sources.group(
                kernel,
                &[
                    ("layer", whole(&layers[k])),
                    ("input", t.activations.layer(k - 1)),
                    ("delta", t.deltas.layer(k)),
                    ("parameters", t.parameters.layer(k)),
                    ("state", t.optimiser_state.layer(k)),
                ],
            )
        })
        .collect()
}
