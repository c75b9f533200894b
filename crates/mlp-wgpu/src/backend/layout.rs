//! Where a step's tensors live on the GPU: the per-layer regions of the parameter, state,
//! activation and delta buffers, how a layer is packed into its region, and the workgroup sizes
//! the kernels are dispatched with.

use std::ops::Range;

use mlp_core::network::{Layer, Parameters};
use mlp_core::options::Hyperparameters;
use wgpu::util::DeviceExt;

use super::uniforms::{DenseLayerEntry, StepUniform, layer_uniforms};

use crate::context::GpuContext;
use crate::error::GpuError;

/// Steps recorded per submission; also the slots of the per-step uniform buffer.
pub(super) const STEP_SLOTS: usize = 256;
/// Batch losses kept on the GPU between read-backs (an epoch of MNIST in batches of 100 is 600).
pub(super) const LOSS_SLOTS: usize = 4096;
/// Validation images per forward pass.
pub(super) const EVAL_CHUNK: usize = 1000;
/// Output values per invocation along each axis of the matrix kernels, and invocations per
/// workgroup along each axis: a workgroup covers a 32 x 32 block.
pub(super) const BLOCK: u32 = 4;
pub(super) const GROUP: u32 = 8;
/// Invocations per workgroup of row_forward_backward.wgsl, one per batch row.
pub(super) const ROW_GROUP: u32 = 16;
/// The most values a row may have in layers 1..L for row_forward_backward.wgsl, which keeps
/// them in private arrays; wider networks run the per-layer kernels.
pub(super) const FUSED_UNITS: u32 = 512;
/// Invocations per workgroup of layers_weights_update.wgsl, one per 4 x 4 block.
pub(super) const BLOCK_GROUP: u32 = 64;
/// Invocations in multi_step.wgsl's one workgroup: the most WebGPU guarantees.
pub(super) const STEP_GROUP: u32 = 256;
/// Invocations per workgroup of pixel_columns.wgsl, one per pixel.
pub(super) const PIXEL_GROUP: u32 = 64;

/// Rows and columns of the output block of a workgroup of linear_forward_tiled.wgsl.
pub(super) const TILE: u32 = 16;

/// One buffer that holds a tensor per layer, layer k's bytes at `regions[k]`; each region
/// starts where the device allows a binding to start, so that a kernel of one layer binds
/// just its region, and a kernel of every layer binds the whole buffer.
pub(super) struct PerLayer {
    pub(super) buffer: wgpu::Buffer,
    pub(super) regions: Vec<Range<u64>>,
}

impl PerLayer {
    /// Regions of `lengths` f32s each (at least one vec4, whole vec4s), each starting at a
    /// multiple of `align` bytes.
    pub(super) fn regions(lengths: impl IntoIterator<Item = usize>, align: u64) -> Vec<Range<u64>> {
        let mut end = 0u64;
        lengths
            .into_iter()
            .map(|length| {
                let start = end.next_multiple_of(align);
                end = start + (length.max(1) as u64 * 4).next_multiple_of(16);
                start..end
            })
            .collect()
    }

    /// Bytes the buffer needs for `regions`.
    pub(super) fn size(regions: &[Range<u64>]) -> u64 {
        regions.last().map_or(16, |r| r.end)
    }

    /// Layer k's region, to bind.
    pub(super) fn layer(&self, k: usize) -> wgpu::BufferBinding<'_> {
        let region = &self.regions[k];
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: region.start,
            size: wgpu::BufferSize::new(region.end - region.start),
        }
    }

    /// The first `bytes` of layer k's region, to bind.
    pub(super) fn layer_start(&self, k: usize, bytes: u64) -> wgpu::BufferBinding<'_> {
        let region = &self.regions[k];
        debug_assert!(bytes <= region.end - region.start);
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: region.start,
            size: wgpu::BufferSize::new(bytes),
        }
    }

    /// Where layer k's region starts, in f32s.
    pub(super) fn offset(&self, k: usize) -> u32 {
        (self.regions[k].start / 4) as u32
    }
}

/// The 4 x 4 blocks of [Wk; bk] of every layer k = 2..L of a network of `sizes` units: the
/// tasks of dense_blocks_update.wgsl.
pub(super) fn dense_blocks(sizes: &[usize]) -> usize {
    sizes
        .windows(2)
        .skip(1)
        .map(|w| (w[0] + 1).div_ceil(4) * w[1].div_ceil(4))
        .sum()
}

/// The tasks of first_layer_update.wgsl: a pixel row of [W1; b1] over 8 columns each.
pub(super) fn first_layer_tasks(sizes: &[usize]) -> usize {
    sizes[1].div_ceil(8) * (sizes[0] + 1)
}

pub(super) fn div_ceil(value: usize, by: u32) -> u32 {
    (value as u32).div_ceil(by)
}

pub(super) fn whole(buffer: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
    buffer.as_entire_buffer_binding()
}

/// `bytes` with zeros after them up to a whole number of 4-byte words, and at least one word:
/// what a buffer of u32s that can be bound needs.
pub(super) fn padded_to_words(bytes: &[u8]) -> Vec<u8> {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
    padded
}

/// [Wk; bk] as the shaders read it: the weights row by row, then the bias row.
pub(super) fn pack_layer(layer: &Layer) -> Vec<f32> {
    layer
        .weights
        .iter()
        .chain(layer.bias.iter())
        .copied()
        .collect()
}

/// A layer from the [Wk; bk] values `pack_layer` makes, (inputs + 1) x outputs.
pub(super) fn unpack_layer(values: Vec<f32>, inputs: usize, outputs: usize) -> Layer {
    let all = ndarray::Array2::from_shape_vec((inputs + 1, outputs), values)
        .expect("a layer holds (in + 1) x out values");
    Layer {
        weights: all.slice(ndarray::s![..inputs, ..]).to_owned(),
        bias: all.row(inputs).to_owned(),
    }
}

/// Makes the buffers of one backend on a device, each checked against the device's limits.
pub(super) struct BufferMaker<'a> {
    pub(super) context: &'a GpuContext,
    /// Where a binding may start: a region of a per-layer buffer starts on a multiple of this.
    align: u64,
}

impl<'a> BufferMaker<'a> {
    /// STORAGE, and UNIFORM too for the arrays that kernels read through uniform bindings where
    /// they fit (kernels::UniformReads); copies both ways for uploads and read-backs.
    pub(super) const DATA: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
        .union(wgpu::BufferUsages::UNIFORM)
        .union(wgpu::BufferUsages::COPY_SRC)
        .union(wgpu::BufferUsages::COPY_DST);

    pub(super) fn new(context: &'a GpuContext) -> Self {
        let limits = &context.limits;
        let align = limits
            .min_storage_buffer_offset_alignment
            .max(limits.min_uniform_buffer_offset_alignment);
        Self {
            context,
            align: u64::from(align),
        }
    }

    /// A buffer holding `contents`.
    pub(super) fn init(
        &self,
        label: &str,
        contents: &[u8],
        usage: wgpu::BufferUsages,
    ) -> wgpu::Buffer {
        // Copies out too, so that a captured step (`GpuBackend::capture_step`) can read it.
        self.context
            .device
            .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: usage | wgpu::BufferUsages::COPY_SRC,
            })
    }

    /// A data buffer of `bytes` zeros (at least one word, so that it can be bound).
    pub(super) fn zeroed(&self, label: &str, bytes: usize) -> wgpu::Buffer {
        self.context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4) as u64,
            usage: Self::DATA,
            mapped_at_creation: false,
        })
    }

    /// A data buffer of `lengths[k]` f32s for each layer k, holding `contents` (each layer's
    /// values) or zeros; `remedy` says what to change where it is too large for the device.
    pub(super) fn per_layer(
        &self,
        label: &str,
        lengths: Vec<usize>,
        contents: Option<Vec<Vec<f32>>>,
        remedy: &'static str,
    ) -> Result<PerLayer, GpuError> {
        let regions = PerLayer::regions(lengths, self.align);
        let size = PerLayer::size(&regions);
        let what = format!("the {label} of every layer");
        self.context.check_storage_size(&what, size, remedy)?;
        let buffer = match contents {
            Some(layers) => {
                let mut packed = vec![0f32; size as usize / 4];
                for (region, values) in regions.iter().zip(layers) {
                    let start = region.start as usize / 4;
                    packed[start..start + values.len()].copy_from_slice(&values);
                }
                self.init(label, bytemuck::cast_slice(&packed), Self::DATA)
            }
            None => self.zeroed(label, size as usize),
        };
        Ok(PerLayer { buffer, regions })
    }
}

/// The tensors of a training step, each in one buffer with a region per layer, and what the
/// losses and the evaluation write.
pub(super) struct Tensors {
    /// Per weight layer k: [Wk; bk], (in + 1, out), at index k − 1.
    pub(super) parameters: PerLayer,
    /// The optimiser's state, zero at the start; gradient descent has none, and its kernels
    /// never touch the stand-in regions.
    pub(super) optimiser_state: PerLayer,
    /// A1 .. AL at index k − 1, each (rows, units); A0 is never built: the first layer reads
    /// the images' lit pixels.
    pub(super) activations: PerLayer,
    /// D1 .. DL.
    pub(super) deltas: PerLayer,
    /// Each batch row's loss, summed in row order into the batch's slot of `losses`.
    pub(super) row_losses: wgpu::Buffer,
    /// One batch loss per slot, read back once an epoch.
    pub(super) losses: wgpu::Buffer,
    /// Per validation image: the predicted class, and its loss.
    pub(super) predictions: wgpu::Buffer,
    pub(super) image_losses: wgpu::Buffer,
}

impl Tensors {
    /// The tensors of `parameters` trained with `hyper`, for batches of up to `max_batch` rows
    /// and evaluation chunks that make `capacity` rows in all, over `validation_count` images.
    pub(super) fn new(
        make: &BufferMaker,
        parameters: &Parameters,
        hyper: &Hyperparameters,
        (max_batch, capacity): (usize, usize),
        validation_count: usize,
    ) -> Result<Self, GpuError> {
        let sizes = parameters.sizes();
        let parameter_counts: Vec<usize> = sizes.windows(2).map(|w| (w[0] + 1) * w[1]).collect();
        let layers_remedy = "use fewer or narrower --layers";
        let rows_remedy = "use a smaller --batch-size or narrower --layers";
        let state = hyper.optimiser.state_per_parameter();
        let unit_counts = || sizes[1..].iter().map(|&n| capacity * n).collect();
        Ok(Self {
            parameters: make.per_layer(
                "parameters",
                parameter_counts.clone(),
                Some(parameters.layers.iter().map(pack_layer).collect()),
                layers_remedy,
            )?,
            optimiser_state: make.per_layer(
                "optimiser state",
                parameter_counts.iter().map(|&n| n * state).collect(),
                None,
                layers_remedy,
            )?,
            activations: make.per_layer("activations", unit_counts(), None, rows_remedy)?,
            deltas: make.per_layer("deltas", unit_counts(), None, rows_remedy)?,
            row_losses: make.zeroed("row losses", max_batch * 4),
            losses: make.zeroed("losses", LOSS_SLOTS * 4),
            predictions: make.zeroed("predictions", validation_count * 4),
            image_losses: make.zeroed("image losses", validation_count * 4),
        })
    }
}

/// The uniform buffer of STEP_SLOTS per-unit slots (a StepUniform each), bound at a dynamic
/// offset of `stride` bytes per slot.
pub(super) struct StepSlots {
    pub(super) buffer: wgpu::Buffer,
    pub(super) stride: u64,
}

impl StepSlots {
    pub(super) fn new(context: &GpuContext) -> Self {
        // Each slot starts at a multiple of the device's alignment for dynamic offsets, with
        // at least a vec4 after its Step, which multi_step.wgsl's StepSlot pads with (WGSL
        // has no empty arrays).
        let align = u64::from(context.limits.min_uniform_buffer_offset_alignment);
        let stride = (std::mem::size_of::<StepUniform>() as u64 + 16).div_ceil(align) * align;
        let buffer = context.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("steps"),
            size: stride * STEP_SLOTS as u64,
            usage: wgpu::BufferUsages::UNIFORM
                | wgpu::BufferUsages::COPY_DST
                | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        Self { buffer, stride }
    }

    /// The vec4s between one slot's Step and the next slot.
    pub(super) fn pad_vec4s(&self) -> u32 {
        ((self.stride - std::mem::size_of::<StepUniform>() as u64) / 16) as u32
    }

    /// The binding of one slot, which a dispatch moves by its dynamic offset.
    pub(super) fn binding(&self) -> wgpu::BufferBinding<'_> {
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: 0,
            size: wgpu::BufferSize::new(std::mem::size_of::<StepUniform>() as u64),
        }
    }
}

/// What the kernels read of each layer's shape and functions: a LayerUniform per layer for the
/// per-layer kernels, and the network table (a DenseLayerEntry per layer) for the fused ones.
pub(super) struct LayerTables {
    pub(super) layers: Vec<wgpu::Buffer>,
    pub(super) network: wgpu::Buffer,
    /// The table as row_forward_backward.wgsl reads it: parameter offsets counted from layer
    /// 2's region, which is where its binding of the parameters starts.
    pub(super) row_network: wgpu::Buffer,
    /// Where layer 2's parameters start in the parameter buffer, and how many bytes follow.
    pub(super) dense_start: u64,
    pub(super) dense_bytes: u64,
}

const UNIFORM: wgpu::BufferUsages = wgpu::BufferUsages::UNIFORM;

impl LayerTables {
    pub(super) fn new(
        make: &BufferMaker,
        sizes: &[usize],
        hyper: &Hyperparameters,
        t: &Tensors,
    ) -> Self {
        let uniforms = layer_uniforms(sizes, hyper);
        let layers = (uniforms.iter())
            .map(|uniform| make.init("layer", bytemuck::bytes_of(uniform), UNIFORM))
            .collect();
        let entries: Vec<DenseLayerEntry> = (uniforms.iter().enumerate())
            .map(|(k, uniform)| DenseLayerEntry {
                inputs: uniform.inputs,
                outputs: uniform.outputs,
                activation: uniform.activation,
                parameters: t.parameters.offset(k),
                state: t.optimiser_state.offset(k),
                activations: t.activations.offset(k),
                deltas: t.deltas.offset(k),
                pad: 0,
            })
            .collect();
        let network = make.init("network", bytemuck::cast_slice(&entries), UNIFORM);
        let dense_start = t.parameters.regions.get(1).map_or(0, |r| r.start);
        let dense_bytes = t.parameters.buffer.size() - dense_start;
        let from_layer_2: Vec<DenseLayerEntry> = entries
            .iter()
            .map(|&entry| DenseLayerEntry {
                parameters: entry.parameters.saturating_sub((dense_start / 4) as u32),
                ..entry
            })
            .collect();
        let row_network = make.init(
            "network from layer 2",
            bytemuck::cast_slice(&from_layer_2),
            UNIFORM,
        );
        Self {
            layers,
            network,
            row_network,
            dense_start,
            dense_bytes,
        }
    }
}
