//! The bind groups of every kernel, made once: which buffer (or region of one) each binding
//! of each shader sees, and how W1 is cut into pieces for uniform bindings.

use super::layout::{LayerTables, StepSlots, Tensors, whole};
use super::record::PixelLists;
use super::upload::{DataBuffers, LitImages};
use crate::context::GpuContext;
use crate::kernels::{
    FusedKernels, Kernel, Kernels, MultiStepKernel, PerLayerKernels, UniformReads, WeightPieces,
    WholeKernels,
};

pub(super) struct BindGroups {
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

pub(super) struct WholeGroups {
    pub(super) forward_backward: Group,
    pub(super) weights_update: Group,
}

pub(super) struct FusedGroups {
    pub(super) row_forward_backward: Group,
    pub(super) layers_weights_update: Group,
}

pub(super) struct PerLayerGroups {
    /// Per hidden layer k (all but the last): Ak -> Ãk, under dropout.
    pub(super) dropout_forward: Vec<Group>,
    pub(super) output_delta: Group,
    /// Per hidden layer k (all but the last): D(k+1) -> Dk.
    pub(super) hidden_delta: Vec<Group>,
    /// Per dense layer k ≥ 2, at index k − 2.
    pub(super) weights_update: Vec<Group>,
}

/// Which arrays the kernels read through uniform bindings on this device (see
/// kernels::UniformReads): D1 of a batch where its rows start on vec4s and it fits, the
/// parameters of layers 2..L (`dense_bytes` of them) where they fit, and W1 in four pieces.
pub(super) fn uniform_reads(
    context: &GpuContext,
    sizes: &[usize],
    max_batch: usize,
    dense_bytes: u64,
) -> UniformReads {
    let max_bytes = context.limits.max_uniform_buffer_binding_size;
    let first_deltas_bytes = (max_batch * sizes[1] * 4) as u64;
    UniformReads {
        first_deltas: (sizes[1].is_multiple_of(8) && first_deltas_bytes <= max_bytes)
            .then_some((first_deltas_bytes / 16) as u32),
        dense_parameters: (dense_bytes <= max_bytes).then_some((dense_bytes / 16) as u32),
        first_weights: first_weight_pieces(
            sizes[0] + 1,
            sizes[1],
            max_bytes,
            u64::from(context.limits.min_uniform_buffer_offset_alignment),
        ),
    }
}

/// What every bind group is made from.
pub(super) struct Sources<'a> {
    pub(super) device: &'a wgpu::Device,
    pub(super) kernels: &'a Kernels,
    pub(super) data: &'a DataBuffers,
    pub(super) tensors: &'a Tensors,
    pub(super) tables: &'a LayerTables,
    pub(super) steps: &'a StepSlots,
    pub(super) uniform: UniformReads,
}

/// A bind group, and the buffer ranges it binds in binding order, so that a step can be
/// written out as data (`GpuBackend::capture_step`).
#[derive(Clone)]
pub(super) struct Group {
    pub(super) bind_group: wgpu::BindGroup,
    pub(super) buffers: Vec<BoundBuffer>,
}

/// One binding of a [`Group`]: a buffer from `offset`, `size` bytes or to its end.
#[derive(Clone)]
pub(super) struct BoundBuffer {
    pub(super) buffer: wgpu::Buffer,
    pub(super) offset: u64,
    pub(super) size: Option<u64>,
}

impl Sources<'_> {
    /// A bind group of `kernel`: the step slot at binding 0, then `buffers` in order.
    fn group(&self, kernel: &Kernel, buffers: &[wgpu::BufferBinding]) -> Group {
        let bindings: Vec<wgpu::BufferBinding> = std::iter::once(self.steps.binding())
            .chain(buffers.iter().cloned())
            .collect();
        let entries: Vec<wgpu::BindGroupEntry> = (bindings.iter().enumerate())
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &kernel.layout,
            entries: &entries,
        });
        let buffers = (bindings.iter())
            .map(|b| BoundBuffer {
                buffer: b.buffer.clone(),
                offset: b.offset,
                size: b.size.map(u64::from),
            })
            .collect();
        Group {
            bind_group,
            buffers,
        }
    }

    /// W1's update from a batch's lit pixels by pixel, `columns` and `spans`.
    fn sparse_weights_update(&self, columns: &wgpu::Buffer, spans: &wgpu::Buffer) -> Group {
        let (t, first_layer) = (self.tensors, &self.tables.layers[0]);
        let first_deltas = match self.uniform.first_deltas {
            Some(vec4s) => t.deltas.layer_start(0, u64::from(vec4s) * 16),
            None => t.deltas.layer(0),
        };
        self.group(
            &self.kernels.sparse_weights_update,
            &[
                whole(first_layer),
                whole(columns),
                whole(spans),
                t.deltas.layer(0),
                t.parameters.layer(0),
                t.optimiser_state.layer(0),
                first_deltas,
            ],
        )
    }

    /// The first layer's forward pass over the lit pixels of `images`. W1's four pieces are
    /// each all of W1 where W1 is read from storage.
    fn sparse_forward(&self, images: &LitImages) -> Group {
        let t = self.tensors;
        let piece = |piece: usize| match self.uniform.first_weights {
            Some(pieces) => wgpu::BufferBinding {
                buffer: &t.parameters.buffer,
                offset: t.parameters.regions[0].start + u64::from(pieces.starts[piece]) * 16,
                size: wgpu::BufferSize::new(u64::from(pieces.lengths[piece]) * 16),
            },
            None => t.parameters.layer(0),
        };
        let mut buffers = vec![
            whole(&self.tables.layers[0]),
            whole(&images.entries),
            whole(&images.starts),
            whole(&images.order),
            t.parameters.layer(0),
            t.activations.layer(0),
            piece(0),
        ];
        // Read from storage, W1 is one piece (kernels::sparse_forward_source).
        if self.uniform.first_weights.is_some() {
            buffers.extend([piece(1), piece(2), piece(3)]);
        }
        self.group(&self.kernels.sparse_forward, &buffers)
    }

    fn pixel_columns(&self) -> Group {
        let data = self.data;
        self.group(
            &self.kernels.pixel_columns,
            &[
                whole(&self.tables.layers[0]),
                whole(&data.train_masks),
                whole(&data.train_ranks),
                whole(&data.train.entries),
                whole(&data.train.order),
                whole(&data.pixel_columns),
                whole(&data.pixel_spans),
            ],
        )
    }
}

impl BindGroups {
    /// Every kernel's bind groups, and the W1 update over the pixel lists built at upload,
    /// where they were (for batches of `max_batch`).
    pub(super) fn new(sources: &Sources, max_batch: usize) -> (Self, Option<PixelLists>) {
        let data = sources.data;
        let pixel_lists = data
            .cached_pixel_lists
            .as_ref()
            .map(|[columns, spans]| PixelLists {
                batch: max_batch,
                sparse_weights_update: sources.sparse_weights_update(columns, spans),
            });
        let bind = Self {
            pixel_columns: sources.pixel_columns(),
            sparse_weights_update: sources
                .sparse_weights_update(&data.pixel_columns, &data.pixel_spans),
            sparse_forward_train: sources.sparse_forward(&data.train),
            sparse_forward_validation: sources.sparse_forward(&data.validation),
            forward: sources.per_layer_forward(),
            evaluate: sources.evaluate(),
        };
        (bind, pixel_lists)
    }
}

impl Sources<'_> {
    fn depth(&self) -> usize {
        self.tables.layers.len()
    }

    /// Per dense layer k ≥ 2: A(k−1) → Ak.
    fn per_layer_forward(&self) -> Vec<Group> {
        let (t, layers) = (self.tensors, &self.tables.layers);
        (1..self.depth())
            .map(|k| {
                self.group(
                    &self.kernels.linear_forward,
                    &[
                        whole(&layers[k]),
                        t.activations.layer(k - 1),
                        t.parameters.layer(k),
                        t.activations.layer(k),
                    ],
                )
            })
            .collect()
    }

    /// The bind groups of the fused kernels.
    pub(super) fn fused(&self, kernels: &FusedKernels) -> FusedGroups {
        FusedGroups {
            row_forward_backward: self.row_forward_backward(&kernels.row_forward_backward),
            layers_weights_update: self.layers_weights_update(&kernels.layers_weights_update),
        }
    }

    /// The bind groups of the whole step's two kernels: every layer's tensors and parameters
    /// whole, at the network table's offsets, with the training images' bytes.
    pub(super) fn whole(&self, kernels: &WholeKernels) -> WholeGroups {
        let (t, tables, data) = (self.tensors, self.tables, self.data);
        let bytes = data
            .train_bytes
            .as_ref()
            .expect("the images' bytes are uploaded for the whole step");
        WholeGroups {
            forward_backward: self.group(
                &kernels.step_forward_backward,
                &[
                    whole(&tables.network),
                    whole(&t.parameters.buffer),
                    whole(&t.activations.buffer),
                    whole(&t.deltas.buffer),
                    whole(&data.train.labels),
                    whole(&data.train.order),
                    whole(&t.row_losses),
                    whole(bytes),
                ],
            ),
            weights_update: self.group(
                &kernels.step_weights_update,
                &[
                    self.every_layer_update(),
                    vec![whole(bytes), whole(&data.train.order)],
                ]
                .concat(),
            ),
        }
    }

    /// The bind group of the multi-step kernel: the step slots twice, the run's first at its
    /// dynamic offset and all of them whole, then what the whole step's kernels bind between
    /// them.
    pub(super) fn multi_step(&self, kernel: &MultiStepKernel) -> Group {
        let (t, tables, data) = (self.tensors, self.tables, self.data);
        let bytes = data
            .train_bytes
            .as_ref()
            .expect("the images' bytes are uploaded for the multi-step kernel");
        self.group(
            &kernel.multi_step,
            &[
                whole(&self.steps.buffer),
                whole(&tables.layers[0]),
                whole(&tables.network),
                whole(&t.parameters.buffer),
                whole(&t.optimiser_state.buffer),
                whole(&t.activations.buffer),
                whole(&t.deltas.buffer),
                whole(&data.train.labels),
                whole(&data.train.order),
                whole(&t.losses),
                whole(bytes),
            ],
        )
    }

    /// The bind groups of the per-layer kernels.
    pub(super) fn per_layer(&self, kernels: &PerLayerKernels) -> PerLayerGroups {
        PerLayerGroups {
            dropout_forward: self.dropout_forward(&kernels.dropout_forward),
            output_delta: self.output_delta(&kernels.output_delta),
            hidden_delta: self.hidden_delta(&kernels.hidden_delta),
            weights_update: self.weights_update(&kernels.weights_update),
        }
    }

    fn output_delta(&self, kernel: &Kernel) -> Group {
        let (t, last) = (self.tensors, self.depth() - 1);
        self.group(
            kernel,
            &[
                whole(&self.tables.layers[last]),
                t.activations.layer(last),
                whole(&self.data.train.labels),
                whole(&self.data.train.order),
                t.deltas.layer(last),
                whole(&t.losses),
            ],
        )
    }

    /// Per hidden layer k (all but the last): Ak → Ãk, the undropped Ak into Dk's slot.
    fn dropout_forward(&self, kernel: &Kernel) -> Vec<Group> {
        let (t, layers) = (self.tensors, &self.tables.layers);
        (0..self.depth() - 1)
            .map(|k| {
                self.group(
                    kernel,
                    &[whole(&layers[k]), t.activations.layer(k), t.deltas.layer(k)],
                )
            })
            .collect()
    }

    /// Per hidden layer k (all but the last): D(k+1) → Dk.
    fn hidden_delta(&self, kernel: &Kernel) -> Vec<Group> {
        let (t, layers) = (self.tensors, &self.tables.layers);
        (0..self.depth() - 1)
            .map(|k| {
                self.group(
                    kernel,
                    &[
                        whole(&layers[k + 1]),
                        t.deltas.layer(k + 1),
                        t.parameters.layer(k + 1),
                        t.activations.layer(k),
                        t.deltas.layer(k),
                    ],
                )
            })
            .collect()
    }

    /// Per dense layer k ≥ 2: its gradient and update.
    fn weights_update(&self, kernel: &Kernel) -> Vec<Group> {
        let (t, layers) = (self.tensors, &self.tables.layers);
        (1..self.depth())
            .map(|k| {
                self.group(
                    kernel,
                    &[
                        whole(&layers[k]),
                        t.activations.layer(k - 1),
                        t.deltas.layer(k),
                        t.parameters.layer(k),
                        t.optimiser_state.layer(k),
                    ],
                )
            })
            .collect()
    }

    /// Layers 2..L forward and back, one invocation per row, where the kernel was built.
    fn row_forward_backward(&self, kernel: &Kernel) -> Group {
        let (t, tables) = (self.tensors, self.tables);
        let dense_parameters = wgpu::BufferBinding {
            buffer: &t.parameters.buffer,
            offset: tables.dense_start,
            size: wgpu::BufferSize::new(tables.dense_bytes),
        };
        self.group(
            kernel,
            &[
                whole(&tables.row_network),
                dense_parameters,
                whole(&t.activations.buffer),
                whole(&t.deltas.buffer),
                whole(&self.data.train.labels),
                whole(&self.data.train.order),
                whole(&t.row_losses),
            ],
        )
    }

    /// Every dense layer's gradient and update, and the batch loss from the rows' losses.
    fn layers_weights_update(&self, kernel: &Kernel) -> Group {
        self.group(kernel, &self.every_layer_update())
    }

    /// What layers_weights_update.wgsl binds: every layer's parameters, state and tensors whole,
    /// at the network table's offsets, and the losses.
    fn every_layer_update(&self) -> Vec<wgpu::BufferBinding<'_>> {
        let t = self.tensors;
        vec![
            whole(&self.tables.layers[0]),
            whole(&self.tables.network),
            whole(&t.parameters.buffer),
            whole(&t.optimiser_state.buffer),
            whole(&t.row_losses),
            whole(&t.losses),
            whole(&t.activations.buffer),
            whole(&t.deltas.buffer),
        ]
    }

    fn evaluate(&self) -> Group {
        let (t, last) = (self.tensors, self.depth() - 1);
        self.group(
            &self.kernels.evaluate,
            &[
                whole(&self.tables.layers[last]),
                t.activations.layer(last),
                whole(&self.data.validation.labels),
                whole(&t.predictions),
                whole(&t.image_losses),
            ],
        )
    }
}

/// W1, `rows` rows (the bias's included) of `outputs` f32, in four pieces of whole rows that
/// each fit in a uniform binding of `max_bytes` starting on a multiple of `align` bytes. None
/// where W1's rows do not start on vec4s (sparse_forward then reads them one at a time) or four
/// pieces are too few.
pub(super) fn first_weight_pieces(
    rows: usize,
    outputs: usize,
    max_bytes: u64,
    align: u64,
) -> Option<WeightPieces> {
    let row_bytes = outputs as u64 * 4;
    if !outputs.is_multiple_of(8) || row_bytes == 0 {
        return None;
    }
    let piece_rows = (1..=max_bytes / row_bytes)
        .rev()
        .find(|&n| (n * row_bytes).is_multiple_of(align))?;
    let rows = rows as u64;
    let needed = rows.div_ceil(piece_rows);
    if needed > 4 {
        return None;
    }
    // A piece past the rows W1 needs binds the last real one again.
    let real = |piece: usize| (piece as u64).min(needed - 1);
    Some(WeightPieces {
        rows: piece_rows as u32,
        starts: std::array::from_fn(|piece| (real(piece) * piece_rows * row_bytes / 16) as u32),
        lengths: std::array::from_fn(|piece| {
            let rows_here = piece_rows.min(rows - real(piece) * piece_rows);
            (rows_here * row_bytes / 16) as u32
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::{WeightPieces, first_weight_pieces};

    #[test]
    fn the_seed_w1_fits_in_four_uniform_pieces_of_whole_rows() {
        // 785 rows of 64 f32 (256 bytes): 256 rows per 64 KiB piece, the last 17 rows.
        assert_eq!(
            first_weight_pieces(785, 64, 65536, 256),
            Some(WeightPieces {
                rows: 256,
                starts: [0, 4096, 2 * 4096, 3 * 4096],
                lengths: [4096, 4096, 4096, 17 * 64 / 4]
            })
        );
    }

    #[test]
    fn a_short_w1_binds_its_one_piece_four_times() {
        // 600 f32 a row (2,400 bytes): a piece starts on 256 bytes only every 8 rows.
        assert_eq!(
            first_weight_pieces(21, 600, 65536, 256),
            Some(WeightPieces {
                rows: 24,
                starts: [0; 4],
                lengths: [21 * 150; 4]
            })
        );
    }

    #[test]
    fn w1_that_needs_more_pieces_or_unaligned_rows_stays_in_storage() {
        // The modern preset's 785 x 256 needs 13 pieces of 64 rows.
        assert_eq!(first_weight_pieces(785, 256, 65536, 256), None);
        assert_eq!(first_weight_pieces(38, 45, 65536, 256), None);
    }
}
