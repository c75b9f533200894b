//! The kernels every schedule runs, and their bind groups: the first layer's forward pass over
//! the lit pixels and its update, the batch regrouped by pixel for that update, the dense
//! forward product (which the evaluation runs on every schedule) and the evaluation. Each
//! schedule's own kernels are in `schedules/`.

use super::bind_groups::{Group, Sources};
use super::layout::whole;
use super::record::PixelLists;
use super::upload::LitImages;
use crate::kernels::{Kernel, KernelDecl, KernelOptions, UniformReads, bindings, prelude, wgsl};

/// sparse_forward.wgsl with W1 read in four uniform pieces (`weights0` to `weights3`) of
/// whole rows.
const SPARSE_FORWARD_UNIFORM: KernelDecl = KernelDecl {
    name: "sparse_forward",
    files: wgsl!["sparse_forward_w1_uniform.wgsl", "sparse_forward.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, entries: ReadOnlyStorage, starts: ReadOnlyStorage,
        order: ReadOnlyStorage, parameters: ReadOnlyStorage, output: Storage,
        weights0: Uniform, weights1: Uniform, weights2: Uniform, weights3: Uniform,
    ],
};

/// sparse_forward.wgsl with W1 read from storage, as one piece: 7 storage buffers, within
/// WebGPU's default of 8 per stage.
const SPARSE_FORWARD_STORAGE: KernelDecl = KernelDecl {
    name: "sparse_forward",
    files: wgsl!["sparse_forward_w1_storage.wgsl", "sparse_forward.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, entries: ReadOnlyStorage, starts: ReadOnlyStorage,
        order: ReadOnlyStorage, parameters: ReadOnlyStorage, output: Storage,
        weights0: ReadOnlyStorage,
    ],
};

/// sparse_weights_update.wgsl with D1 read through a uniform binding (`delta4`).
const SPARSE_WEIGHTS_UPDATE_UNIFORM: KernelDecl = KernelDecl {
    name: "sparse_weights_update",
    files: wgsl![
        "optimiser_update.wgsl",
        "sparse_weights_update_d1_uniform.wgsl",
        "sparse_weights_update.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, columns: ReadOnlyStorage, spans: ReadOnlyStorage,
        delta: ReadOnlyStorage, parameters: Storage, state: Storage, delta4: Uniform,
    ],
};

/// sparse_weights_update.wgsl with D1 read from storage.
const SPARSE_WEIGHTS_UPDATE_STORAGE: KernelDecl = KernelDecl {
    name: "sparse_weights_update",
    files: wgsl![
        "optimiser_update.wgsl",
        "sparse_weights_update_d1_storage.wgsl",
        "sparse_weights_update.wgsl",
    ],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, columns: ReadOnlyStorage, spans: ReadOnlyStorage,
        delta: ReadOnlyStorage, parameters: Storage, state: Storage, delta4: ReadOnlyStorage,
    ],
};

const PIXEL_COLUMNS: KernelDecl = KernelDecl {
    name: "pixel_columns",
    files: wgsl!["pixel_columns.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, masks: ReadOnlyStorage, ranks: ReadOnlyStorage,
        entries: ReadOnlyStorage, order: ReadOnlyStorage, columns: Storage, spans: Storage,
    ],
};

pub(super) const LINEAR_FORWARD: KernelDecl = KernelDecl {
    name: "linear_forward",
    files: wgsl!["linear_forward.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, input: Storage, parameters: ReadOnlyStorage,
        output: Storage,
    ],
};

const EVALUATE: KernelDecl = KernelDecl {
    name: "evaluate",
    files: wgsl!["softmax_row.wgsl", "evaluate.wgsl"],
    bindings: bindings![
        step: DynamicUniform, layer: Uniform, activation: Storage, labels: ReadOnlyStorage,
        predictions: Storage, image_losses: Storage,
    ],
};

/// sparse_forward.wgsl's PIECE_PIXELS where W1 is read from storage: past every pixel index
/// (24 bits, as upload.rs packs them), with 3 times it still a u32.
const WHOLE_PIECE_PIXELS: u32 = 1 << 24;

/// The kernels every schedule runs.
pub(super) struct SharedKernels {
    pub(super) sparse_forward: Kernel,
    pub(super) pixel_columns: Kernel,
    pub(super) sparse_weights_update: Kernel,
    pub(super) linear_forward: Kernel,
    pub(super) evaluate: Kernel,
}

impl SharedKernels {
    /// The kernels every schedule runs, for `options`: the first layer's update built for its
    /// optimiser, and the arrays of `options.uniform` read through uniform bindings.
    pub(super) fn new(device: &wgpu::Device, options: &KernelOptions) -> Self {
        let optimiser = options.optimiser_constant();
        let update = match options.uniform.first_deltas {
            Some(vec4s) => SPARSE_WEIGHTS_UPDATE_UNIFORM.build(
                device,
                &prelude(&[("D1_VEC4S", vec4s)]),
                &optimiser,
            ),
            None => SPARSE_WEIGHTS_UPDATE_STORAGE.build(device, "", &optimiser),
        };
        Self {
            sparse_forward: sparse_forward(device, &options.uniform),
            pixel_columns: PIXEL_COLUMNS.build(device, "", &[]),
            sparse_weights_update: update,
            linear_forward: LINEAR_FORWARD.build(device, "", &[]),
            evaluate: EVALUATE.build(device, "", &[]),
        }
    }

    pub(super) fn all(&self) -> Vec<&Kernel> {
        vec![
            &self.sparse_forward,
            &self.pixel_columns,
            &self.sparse_weights_update,
            &self.linear_forward,
            &self.evaluate,
        ]
    }
}

/// sparse_forward, W1 read in four uniform pieces where `uniform` says, else from storage.
fn sparse_forward(device: &wgpu::Device, uniform: &UniformReads) -> Kernel {
    match uniform.first_weights {
        Some(pieces) => {
            let mut constants = vec![("PIECE_PIXELS", pieces.rows)];
            let names = [
                "W1_PIECE_VEC4S_0",
                "W1_PIECE_VEC4S_1",
                "W1_PIECE_VEC4S_2",
                "W1_PIECE_VEC4S_3",
            ];
            constants.extend(names.into_iter().zip(pieces.lengths));
            SPARSE_FORWARD_UNIFORM.build(device, &prelude(&constants), &[])
        }
        None => {
            let constants = prelude(&[("PIECE_PIXELS", WHOLE_PIECE_PIXELS)]);
            SPARSE_FORWARD_STORAGE.build(device, &constants, &[])
        }
    }
}

/// The bind groups of the kernels every schedule runs.
pub(super) struct SharedGroups {
    /// The training batch's lit pixels regrouped by pixel, and W1's update from them.
    pub(super) pixel_columns: Group,
    pub(super) sparse_weights_update: Group,
    /// The first layer from the lit pixels of the training and the validation images.
    pub(super) sparse_forward_train: Group,
    pub(super) sparse_forward_validation: Group,
    /// Per dense layer k ≥ 2, at index k − 2: A(k-1) -> Ak.
    pub(super) forward: Vec<Group>,
    pub(super) evaluate: Group,
}

impl SharedGroups {
    /// The bind groups of `kernels`, and W1's update over the pixel lists built at upload,
    /// where they were (for batches of `max_batch`).
    pub(super) fn new(
        sources: &Sources,
        kernels: &SharedKernels,
        max_batch: usize,
    ) -> (Self, Option<PixelLists>) {
        let data = sources.data;
        let update = &kernels.sparse_weights_update;
        let pixel_lists = (data.cached_pixel_lists.as_ref()).map(|[columns, spans]| PixelLists {
            batch: max_batch,
            sparse_weights_update: sparse_weights_update(sources, update, columns, spans),
        });
        let (columns, spans) = (&data.pixel_columns, &data.pixel_spans);
        let groups = Self {
            pixel_columns: pixel_columns(sources, &kernels.pixel_columns),
            sparse_weights_update: sparse_weights_update(sources, update, columns, spans),
            sparse_forward_train: sparse_forward_group(
                sources,
                &kernels.sparse_forward,
                &data.train,
            ),
            sparse_forward_validation: sparse_forward_group(
                sources,
                &kernels.sparse_forward,
                &data.validation,
            ),
            forward: linear_forward(sources, &kernels.linear_forward),
            evaluate: evaluate(sources, &kernels.evaluate),
        };
        (groups, pixel_lists)
    }
}

/// W1's update from a batch's lit pixels by pixel, `columns` and `spans`.
fn sparse_weights_update(
    sources: &Sources,
    kernel: &Kernel,
    columns: &wgpu::Buffer,
    spans: &wgpu::Buffer,
) -> Group {
    let t = sources.tensors;
    let first_deltas = match sources.uniform.first_deltas {
        Some(vec4s) => t.deltas.layer_start(0, u64::from(vec4s) * 16),
        None => t.deltas.layer(0),
    };
    sources.group(
        kernel,
        &[
            ("layer", whole(&sources.tables.layers[0])),
            ("columns", whole(columns)),
            ("spans", whole(spans)),
            ("delta", t.deltas.layer(0)),
            ("parameters", t.parameters.layer(0)),
            ("state", t.optimiser_state.layer(0)),
            ("delta4", first_deltas),
        ],
    )
}

/// The first layer's forward pass over the lit pixels of `images`. W1's four pieces are each
/// their rows of W1 where it is read through uniform bindings, else `weights0` is all of W1.
fn sparse_forward_group(sources: &Sources, kernel: &Kernel, images: &LitImages) -> Group {
    let t = sources.tensors;
    let piece = |piece: usize| match sources.uniform.first_weights {
        Some(pieces) => wgpu::BufferBinding {
            buffer: &t.parameters.buffer,
            offset: t.parameters.regions[0].start + u64::from(pieces.starts[piece]) * 16,
            size: wgpu::BufferSize::new(u64::from(pieces.lengths[piece]) * 16),
        },
        None => t.parameters.layer(0),
    };
    let mut buffers = vec![
        ("layer", whole(&sources.tables.layers[0])),
        ("entries", whole(&images.entries)),
        ("starts", whole(&images.starts)),
        ("order", whole(&images.order)),
        ("parameters", t.parameters.layer(0)),
        ("output", t.activations.layer(0)),
        ("weights0", piece(0)),
    ];
    if sources.uniform.first_weights.is_some() {
        buffers.extend([
            ("weights1", piece(1)),
            ("weights2", piece(2)),
            ("weights3", piece(3)),
        ]);
    }
    sources.group(kernel, &buffers)
}

fn pixel_columns(sources: &Sources, kernel: &Kernel) -> Group {
    let data = sources.data;
    sources.group(
        kernel,
        &[
            ("layer", whole(&sources.tables.layers[0])),
            ("masks", whole(&data.train_masks)),
            ("ranks", whole(&data.train_ranks)),
            ("entries", whole(&data.train.entries)),
            ("order", whole(&data.train.order)),
            ("columns", whole(&data.pixel_columns)),
            ("spans", whole(&data.pixel_spans)),
        ],
    )
}

/// Per dense layer k ≥ 2: A(k−1) → Ak.
fn linear_forward(sources: &Sources, kernel: &Kernel) -> Vec<Group> {
    let (t, layers) = (sources.tensors, &sources.tables.layers);
    (1..sources.depth())
        .map(|k| {
            sources.group(
                kernel,
                &[
                    ("layer", whole(&layers[k])),
                    ("input", t.activations.layer(k - 1)),
                    ("parameters", t.parameters.layer(k)),
                    ("output", t.activations.layer(k)),
                ],
            )
        })
        .collect()
}

fn evaluate(sources: &Sources, kernel: &Kernel) -> Group {
    let (t, last) = (sources.tensors, sources.depth() - 1);
    sources.group(
        kernel,
        &[
            ("layer", whole(&sources.tables.layers[last])),
            ("activation", t.activations.layer(last)),
            ("labels", whole(&sources.data.validation.labels)),
            ("predictions", whole(&t.predictions)),
            ("image_losses", whole(&t.image_losses)),
        ],
    )
}
