//! mlp-core's backend interface on the GPU. Parameters, both data sets, activations, deltas
//! and the batch losses all live in GPU buffers. Training steps are queued and recorded many
//! to a command buffer, one compute pass each; nothing is read back until the caller asks
//! for the epoch's loss, the parameters, an evaluation or a trace.

use std::ops::Range;

use mlp_core::Dataset;
use mlp_core::backend::{
    Backend, BackendError, Evaluation, KernelTime, StepKernels, StepTrace, TrainLoss,
};
use mlp_core::cpu::{AdamStep, check_order, check_output_width, reduction_scale};
use mlp_core::network::{Layer, Parameters};
use mlp_core::options::{Activation, Hyperparameters, Optimiser, Output};
use ndarray::{Array2, s};
use wgpu::util::DeviceExt;

use crate::context::GpuContext;
use crate::error::GpuError;
use crate::kernels::{Kernel, Kernels, UniformReads, WeightPieces};

/// Steps recorded per submission; also the slots of the per-step uniform buffer.
const STEP_SLOTS: usize = 256;
/// Batch losses kept on the GPU between read-backs (an epoch of MNIST in batches of 100 is 600).
const LOSS_SLOTS: usize = 4096;
/// Validation images per forward pass.
const EVAL_CHUNK: usize = 1000;
/// Output values per invocation along each axis of the matrix kernels, and invocations per
/// workgroup along each axis: a workgroup covers a 32 x 32 block.
const BLOCK: u32 = 4;
const GROUP: u32 = 8;
/// Invocations per workgroup of row_forward_backward.wgsl, one per batch row.
const ROW_GROUP: u32 = 16;
/// The most values a row may have in layers 1..L for row_forward_backward.wgsl, which keeps
/// them in private arrays; wider networks run the per-layer kernels.
const FUSED_UNITS: u32 = 512;
/// Invocations per workgroup of layers_weights_update.wgsl, one per 4 x 4 block.
const BLOCK_GROUP: u32 = 64;
/// Invocations per workgroup of pixel_columns.wgsl, one per pixel.
const PIXEL_GROUP: u32 = 64;

/// How the dense layers 2..L of a training step are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matmul {
    /// Two dispatches for all of them: one invocation per batch row runs the row through
    /// every layer's forward pass and back through every delta (row_forward_backward.wgsl),
    /// then one dispatch updates every layer (layers_weights_update.wgsl). For a network this
    /// small the dispatches, not the arithmetic, set the pace.
    #[default]
    Fused,
    /// Dispatches per layer, each product a 4 x 4 block per invocation in registers, no
    /// workgroup memory (linear_forward.wgsl).
    Registers,
    /// Dispatches per layer, the forward products in 16 x 16 tiles staged in workgroup memory
    /// (linear_forward_tiled.wgsl): what real GPUs are expected to favour for large layers.
    Tiled,
}

impl Matmul {
    pub const NAMES: [&'static str; 3] = ["fused", "registers", "tiled"];

    /// The name `--matmul` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fused => Self::NAMES[0],
            Self::Registers => Self::NAMES[1],
            Self::Tiled => Self::NAMES[2],
        }
    }
}

impl std::str::FromStr for Matmul {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "fused" => Ok(Self::Fused),
            "registers" => Ok(Self::Registers),
            "tiled" => Ok(Self::Tiled),
            _ => Err(format!(
                "unknown matmul kernel {name:?}: choose {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Rows and columns of the output block of a workgroup of linear_forward_tiled.wgsl.
const TILE: u32 = 16;

/// `Step` of common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct StepUniform {
    row_start: u32,
    rows: u32,
    loss_slot: u32,
    pixel_spans: u32,
    learning_rate: f32,
    gradient_scale: f32,
    correction1: f32,
    correction2: f32,
}

/// `Layer` of common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct LayerUniform {
    inputs: u32,
    outputs: u32,
    activation: u32,
    input_activation: u32,
    beta1: f32,
    beta2: f32,
    epsilon: f32,
}

/// `DenseLayer` of common.wgsl: offsets in f32s.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DenseLayerEntry {
    inputs: u32,
    outputs: u32,
    activation: u32,
    parameters: u32,
    state: u32,
    activations: u32,
    deltas: u32,
    pad: u32,
}

/// One buffer that holds a tensor per layer, layer k's bytes at `regions[k]`; each region
/// starts where the device allows a binding to start, so that a kernel of one layer binds
/// just its region, and a kernel of every layer binds the whole buffer.
struct PerLayer {
    buffer: wgpu::Buffer,
    regions: Vec<Range<u64>>,
}

impl PerLayer {
    /// Regions of `lengths` f32s each (at least one vec4, whole vec4s), each starting at a
    /// multiple of `align` bytes.
    fn regions(lengths: impl IntoIterator<Item = usize>, align: u64) -> Vec<Range<u64>> {
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
    fn size(regions: &[Range<u64>]) -> u64 {
        regions.last().map_or(16, |r| r.end)
    }

    /// Layer k's region, to bind.
    fn layer(&self, k: usize) -> wgpu::BufferBinding<'_> {
        let region = &self.regions[k];
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: region.start,
            size: wgpu::BufferSize::new(region.end - region.start),
        }
    }

    /// The first `bytes` of layer k's region, to bind.
    fn layer_start(&self, k: usize, bytes: u64) -> wgpu::BufferBinding<'_> {
        let region = &self.regions[k];
        debug_assert!(bytes <= region.end - region.start);
        wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: region.start,
            size: wgpu::BufferSize::new(bytes),
        }
    }

    /// Where layer k's region starts, in f32s.
    fn offset(&self, k: usize) -> u32 {
        (self.regions[k].start / 4) as u32
    }
}

/// The activation codes of common.wgsl.
fn activation_code(activation: Activation) -> u32 {
    match activation {
        Activation::Sigmoid => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
    }
}
const SOFTMAX: u32 = 3;

/// Where a training step finds its batch's lit pixels regrouped by pixel, for W1's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PixelSource {
    /// pixel_columns.wgsl regroups the batch, a dispatch in the step itself.
    PerStep,
    /// The lists built once at upload for the file order (`PixelLists`); this batch's spans
    /// start at this index.
    Cached { spans: u32 },
}

/// The lit pixels of every batch of the training set in its file order, regrouped by pixel
/// once at upload: the batches of that order are the same every epoch, so an epoch in it (the
/// seed's) needs no pixel_columns dispatch. Other orders, and batches that are not the
/// `batch`-sized ones from row 0, use the per-step kernel.
struct PixelLists {
    /// The batch size the lists were made for.
    batch: usize,
    /// sparse_weights_update.wgsl over these lists.
    sparse_weights_update: wgpu::BindGroup,
}

/// A queued unit of GPU work.
#[derive(Debug, Clone)]
enum Work {
    Train {
        rows: Range<usize>,
        loss_slot: usize,
        learning_rate: f32,
        /// The step's number from 1, for Adam's bias corrections.
        t: u64,
        pixels: PixelSource,
    },
    Evaluate {
        rows: Range<usize>,
    },
}

impl Work {
    fn uniform(&self, hyper: &Hyperparameters) -> StepUniform {
        match self {
            Work::Train {
                rows,
                loss_slot,
                learning_rate,
                t,
                pixels,
            } => {
                let (correction1, correction2) = match hyper.optimiser {
                    Optimiser::Adam {
                        beta1,
                        beta2,
                        epsilon,
                    } => AdamStep {
                        beta1,
                        beta2,
                        epsilon,
                        t: *t,
                    }
                    .corrections(),
                    _ => (1.0, 1.0),
                };
                StepUniform {
                    row_start: rows.start as u32,
                    rows: rows.len() as u32,
                    loss_slot: *loss_slot as u32,
                    pixel_spans: match pixels {
                        PixelSource::PerStep => 0,
                        PixelSource::Cached { spans } => *spans,
                    },
                    learning_rate: *learning_rate,
                    gradient_scale: reduction_scale(hyper.reduction, rows.len()),
                    correction1,
                    correction2,
                }
            }
            Work::Evaluate { rows } => StepUniform {
                row_start: rows.start as u32,
                rows: rows.len() as u32,
                ..StepUniform::default()
            },
        }
    }
}

struct BindGroups {
    /// The training batch's lit pixels regrouped by pixel, and W1's update from them.
    pixel_columns: wgpu::BindGroup,
    sparse_weights_update: wgpu::BindGroup,
    /// The first layer from the lit pixels of the training and the validation images.
    sparse_forward_train: wgpu::BindGroup,
    sparse_forward_validation: wgpu::BindGroup,
    /// Per dense layer k ≥ 2, at index k − 2: A(k-1) -> Ak.
    forward: Vec<wgpu::BindGroup>,
    output_delta: wgpu::BindGroup,
    /// Per hidden layer k (all but the last): D(k+1) -> Dk.
    hidden_delta: Vec<wgpu::BindGroup>,
    /// Per dense layer k ≥ 2, at index k − 2.
    weights_update: Vec<wgpu::BindGroup>,
    /// Layers 2..L of a step, all at once (Matmul::Fused), where the kernel was built.
    row_forward_backward: Option<wgpu::BindGroup>,
    layers_weights_update: wgpu::BindGroup,
    evaluate: wgpu::BindGroup,
}

pub struct GpuBackend {
    context: GpuContext,
    kernels: Kernels,
    hyper: Hyperparameters,
    /// Training steps queued so far, for Adam's bias corrections.
    steps: u64,
    /// The training set's current order, u32 per image.
    train_order: wgpu::Buffer,
    /// Whether that order is the file order, where `pixel_lists` hold.
    file_order: bool,
    /// None where the lists would not fit in one binding.
    pixel_lists: Option<PixelLists>,
    /// Units per layer, input first.
    sizes: Vec<usize>,
    max_batch: usize,
    train_count: usize,
    validation_count: usize,
    /// Validation rows per evaluation dispatch (see evaluation_chunk).
    eval_chunk: usize,
    validation_labels: Vec<u8>,
    step_stride: u64,
    step_uniforms: wgpu::Buffer,
    /// Per weight layer k: [Wk; bk], (in + 1, out), at index k − 1.
    parameters: PerLayer,
    /// A1 .. AL at index k − 1, each (rows, units); A0 is never built.
    activations: PerLayer,
    /// D1 .. DL.
    deltas: PerLayer,
    losses: wgpu::Buffer,
    predictions: wgpu::Buffer,
    errors: wgpu::Buffer,
    bind: BindGroups,
    queued: Vec<Work>,
    /// The kernel of the dense layers' forward products.
    matmul: Matmul,
    /// Loss slots written since the last read.
    losses_used: usize,
    /// Batch losses already read back early (only when more than LOSS_SLOTS batches are
    /// trained between two reads).
    loss_carry: TrainLoss,
}

/// Rows of the validation set per evaluation dispatch. They pass through the training batch's
/// activation buffer, so a wide network gets fewer than EVAL_CHUNK: as many as fit one storage
/// binding, so that only the training batch itself can be too large for the device.
fn evaluation_chunk(context: &GpuContext, sizes: &[usize]) -> usize {
    let units: u64 = sizes[1..].iter().map(|&n| n as u64).sum();
    let alignment = u64::from(context.limits.min_storage_buffer_offset_alignment);
    let room = context
        .storage_limit()
        .saturating_sub(alignment * sizes.len() as u64);
    let fits = (room / (4 * units.max(1))) as usize;
    EVAL_CHUNK.min(fits).max(1)
}

fn div_ceil(value: usize, by: u32) -> u32 {
    (value as u32).div_ceil(by)
}

fn whole(buffer: &wgpu::Buffer) -> wgpu::BufferBinding<'_> {
    buffer.as_entire_buffer_binding()
}

fn pack_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
    padded
}

/// Bits of a lit pixel's entry that hold its index; the byte is above them.
const PIXEL_INDEX_BITS: u32 = 24;

/// The pixel index of a lit pixel's entry.
fn pixel_of(entry: u32) -> usize {
    (entry & ((1 << PIXEL_INDEX_BITS) - 1)) as usize
}

/// Each image's lit pixels as `lit_pixels` makes them: the entries, and where each image's
/// start.
type LitPixels = (Vec<u32>, Vec<u32>);

/// Each image's lit (non-zero) pixels, as sparse_forward.wgsl reads them: one u32 per pixel,
/// its byte in the top 8 bits and its index in the low 24; and where each image's start
/// (one more than there are images). Fails where an image has 2²⁴ pixels or more.
fn lit_pixels(set: &Dataset, name: &str) -> Result<LitPixels, GpuError> {
    let pixels = set.pixels();
    if pixels >= 1 << PIXEL_INDEX_BITS {
        return Err(GpuError::ImagesTooLarge {
            set: name.to_string(),
            problem: format!(
                "{pixels} pixels per image, where pixel indices have {PIXEL_INDEX_BITS} bits \
                 (at most {} pixels)",
                (1u32 << PIXEL_INDEX_BITS) - 1
            ),
        });
    }
    let mut entries = Vec::new();
    let mut starts = Vec::with_capacity(set.len() + 1);
    starts.push(0);
    for image in set.images.chunks_exact(pixels.max(1)).take(set.len()) {
        for (pixel, &byte) in image.iter().enumerate() {
            if byte != 0 {
                entries.push(u32::from(byte) << PIXEL_INDEX_BITS | pixel as u32);
            }
        }
        let count = u32::try_from(entries.len()).map_err(|_| GpuError::ImagesTooLarge {
            set: name.to_string(),
            problem: format!("over {} lit pixels in all (32-bit indices)", u32::MAX),
        })?;
        starts.push(count);
    }
    Ok((entries, starts))
}

/// Which pixels of each image are lit, as pixel_columns.wgsl reads them, from the images'
/// lit pixels (`lit_pixels`): per image, ceil(pixels / 32) words with bit p % 32 of word p / 32
/// set where pixel p is lit; and per image and word, where in the entries the first lit pixel
/// of the word is (or would be).
fn pixel_masks(pixels: usize, (entries, starts): &LitPixels) -> (Vec<u32>, Vec<u32>) {
    let words = pixels.div_ceil(32);
    let images = starts.len() - 1;
    let mut masks = vec![0u32; images * words];
    let mut ranks = vec![0u32; images * words];
    for (i, range) in starts.windows(2).enumerate() {
        for &entry in &entries[range[0] as usize..range[1] as usize] {
            let p = pixel_of(entry);
            masks[i * words + p / 32] |= 1 << (p % 32);
        }
        let mut lit = range[0];
        for w in 0..words {
            ranks[i * words + w] = lit;
            lit += masks[i * words + w].count_ones();
        }
    }
    (masks, ranks)
}

/// The lit pixels of each batch of `batch` consecutive images (the last may be shorter),
/// regrouped by pixel as pixel_columns.wgsl regroups one batch: the pairs (row in the batch,
/// byte) of every pixel, rows increasing, one batch after another; and per batch and pixel,
/// (first, length) of its pairs. Each list holds at least one pair (unused where there is
/// nothing to list), so that its buffer can be bound.
fn pixel_lists(
    pixels: usize,
    (entries, starts): &LitPixels,
    batch: usize,
) -> (Vec<[u32; 2]>, Vec<[u32; 2]>) {
    let images = starts.len() - 1;
    let lit = |image: usize| &entries[starts[image] as usize..starts[image + 1] as usize];
    let mut columns = vec![[0u32; 2]; entries.len().max(1)];
    let mut spans = Vec::with_capacity(images.div_ceil(batch.max(1)) * pixels);
    let mut next = vec![0u32; pixels];
    let mut first = 0u32;
    for start in (0..images).step_by(batch.max(1)) {
        let rows = start..(start + batch).min(images);
        let mut lengths = vec![0u32; pixels];
        for image in rows.clone() {
            for &entry in lit(image) {
                lengths[pixel_of(entry)] += 1;
            }
        }
        for (p, &length) in lengths.iter().enumerate() {
            spans.push([first, length]);
            next[p] = first;
            first += length;
        }
        for (row, image) in rows.enumerate() {
            for &entry in lit(image) {
                let p = pixel_of(entry);
                columns[next[p] as usize] = [row as u32, entry >> PIXEL_INDEX_BITS];
                next[p] += 1;
            }
        }
    }
    if spans.is_empty() {
        spans.push([0, 0]);
    }
    (columns, spans)
}

/// W1, `rows` rows (the bias's included) of `outputs` f32, in four pieces of whole rows that
/// each fit in a uniform binding of `max_bytes` starting on a multiple of `align` bytes. None
/// where W1's rows do not start on vec4s (sparse_forward then reads them one at a time) or four
/// pieces are too few.
fn first_weight_pieces(
    rows: usize,
    outputs: usize,
    max_bytes: u64,
    align: u64,
) -> Option<WeightPieces> {
    let row_bytes = outputs as u64 * 4;
    if outputs % 8 != 0 || row_bytes == 0 {
        return None;
    }
    let piece_rows = (1..=max_bytes / row_bytes)
        .rev()
        .find(|&n| n * row_bytes % align == 0)?;
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

/// [Wk; bk] as the shaders read it: the weights row by row, then the bias row.
fn pack_layer(layer: &Layer) -> Vec<f32> {
    layer
        .weights
        .iter()
        .chain(layer.bias.iter())
        .copied()
        .collect()
}

impl GpuBackend {
    /// Uploads `parameters` and both data sets once; `max_batch` is the largest batch that
    /// [`Backend::train_batch`] will be given.
    pub fn new(
        context: GpuContext,
        parameters: &Parameters,
        hyper: &Hyperparameters,
        max_batch: usize,
        train: &Dataset,
        validation: &Dataset,
    ) -> Result<Self, BackendError> {
        mlp_core::cpu::check_input_width(parameters, train)?;
        mlp_core::cpu::check_input_width(parameters, validation)?;
        check_output_width(parameters, hyper.output)?;
        let sizes = parameters.sizes();
        let device = &context.device;
        let eval_chunk = evaluation_chunk(&context, &sizes);
        let capacity = max_batch.max(eval_chunk);
        // A0 is never stored: the first layer reads the images' lit pixels.
        let widest = sizes[1..].iter().copied().max().unwrap_or(1);
        context.check_storage_size(
            &format!("a batch of {capacity} rows of {widest} activations"),
            (capacity * widest * 4) as u64,
            "use a smaller --batch-size",
        )?;
        context.check_storage_size(
            &format!("the lit pixels of a batch of {max_batch} images, by pixel"),
            (max_batch * train.pixels() * 8) as u64,
            "use a smaller --batch-size",
        )?;
        let groups_needed = div_ceil(capacity.max(train.pixels() + 1), GROUP);
        if groups_needed > context.limits.max_compute_workgroups_per_dimension {
            return Err(GpuError::LimitExceeded {
                what: format!("a batch of {capacity} images of {} pixels", train.pixels()),
                remedy: "use a smaller --batch-size",
                needed: u64::from(groups_needed),
                limit: "max_compute_workgroups_per_dimension",
                allowed: u64::from(context.limits.max_compute_workgroups_per_dimension),
                adapter: context.adapter.name.clone(),
            }
            .into());
        }

        // UNIFORM too, for the arrays that kernels read through uniform bindings where they fit
        // (kernels::UniformReads).
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::UNIFORM
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let init = |label: &str, contents: &[u8], usage| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage,
            })
        };
        let zeroed = |label: &str, bytes: usize| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes.max(4) as u64,
                usage: storage,
                mapped_at_creation: false,
            })
        };
        let labels_u32 = |set: &Dataset| -> Vec<u8> {
            let words: Vec<u32> = set.labels.iter().map(|&l| u32::from(l)).collect();
            pack_bytes(bytemuck::cast_slice(&words))
        };
        let upload_lit = |name: &str, lit: &LitPixels| -> Result<[wgpu::Buffer; 2], GpuError> {
            let (entries, starts) = lit;
            context.check_storage_size(
                &format!("the lit pixels of the {name}"),
                entries.len() as u64 * 4,
                "use fewer training images (--limit)",
            )?;
            Ok([
                init(name, &pack_bytes(bytemuck::cast_slice(entries)), storage),
                init(name, bytemuck::cast_slice(starts), storage),
            ])
        };
        let train_lit = lit_pixels(train, "training images")?;
        let [train_entries, train_starts] = upload_lit("training images", &train_lit)?;
        let validation_lit = lit_pixels(validation, "validation images")?;
        let [validation_entries, validation_starts] =
            upload_lit("validation images", &validation_lit)?;
        let (masks, ranks) = pixel_masks(train.pixels(), &train_lit);
        context.check_storage_size(
            "the lit-pixel masks of the training images",
            masks.len() as u64 * 4,
            "use fewer training images (--limit)",
        )?;
        let train_masks = init(
            "train masks",
            &pack_bytes(bytemuck::cast_slice(&masks)),
            storage,
        );
        let train_ranks = init(
            "train ranks",
            &pack_bytes(bytemuck::cast_slice(&ranks)),
            storage,
        );
        let pixel_columns = zeroed("pixel columns", max_batch * train.pixels() * 8);
        let pixel_spans = zeroed("pixel spans", train.pixels() * 8);
        let (cached_columns, cached_spans) = pixel_lists(train.pixels(), &train_lit, max_batch);
        let fits = |pairs: &Vec<[u32; 2]>| context.storage_allows(pairs.len() as u64 * 8);
        let cached_pixel_lists = (fits(&cached_columns) && fits(&cached_spans)).then(|| {
            [
                init(
                    "cached pixel columns",
                    bytemuck::cast_slice(&cached_columns),
                    storage,
                ),
                init(
                    "cached pixel spans",
                    bytemuck::cast_slice(&cached_spans),
                    storage,
                ),
            ]
        });
        let train_labels = init("train labels", &labels_u32(train), storage);
        let validation_labels = init("validation labels", &labels_u32(validation), storage);
        let in_file_order = |count: usize| {
            let rows: Vec<u32> = (0..count as u32).collect();
            pack_bytes(bytemuck::cast_slice(&rows))
        };
        let train_order = init("train order", &in_file_order(train.len()), storage);
        let validation_order = init(
            "validation order",
            &in_file_order(validation.len()),
            storage,
        );
        let align = u64::from(
            context
                .limits
                .min_storage_buffer_offset_alignment
                .max(context.limits.min_uniform_buffer_offset_alignment),
        );
        // `contents`: each layer's values, where the buffer does not start at zero.
        let per_layer = |label: &str, lengths: Vec<usize>, contents: Option<Vec<Vec<f32>>>| {
            let regions = PerLayer::regions(lengths, align);
            let size = PerLayer::size(&regions);
            let remedy = match label {
                "activations" | "deltas" => "use a smaller --batch-size or narrower --layers",
                _ => "use fewer or narrower --layers",
            };
            context.check_storage_size(&format!("the {label} of every layer"), size, remedy)?;
            let buffer = match contents {
                Some(layers) => {
                    let mut packed = vec![0f32; size as usize / 4];
                    for (region, values) in regions.iter().zip(layers) {
                        let start = region.start as usize / 4;
                        packed[start..start + values.len()].copy_from_slice(&values);
                    }
                    init(label, bytemuck::cast_slice(&packed), storage)
                }
                None => zeroed(label, size as usize),
            };
            Ok::<_, GpuError>(PerLayer { buffer, regions })
        };
        let parameter_counts: Vec<usize> = sizes.windows(2).map(|w| (w[0] + 1) * w[1]).collect();
        let parameter_buffers = per_layer(
            "parameters",
            parameter_counts.clone(),
            Some(parameters.layers.iter().map(pack_layer).collect()),
        )?;
        // The optimiser's state, zero at the start; gradient descent has none, and its kernels
        // never touch the stand-in regions.
        let optimiser_state = per_layer(
            "optimiser state",
            parameter_counts
                .iter()
                .map(|&n| n * hyper.optimiser.state_per_parameter())
                .collect(),
            None,
        )?;
        // A1..AL (A0 is never built: the first layer reads the images' lit pixels).
        let unit_counts = |rows: usize| sizes[1..].iter().map(|&n| rows * n).collect();
        let activations = per_layer("activations", unit_counts(capacity), None)?;
        let deltas = per_layer("deltas", unit_counts(capacity), None)?;
        let row_losses = zeroed("row losses", max_batch * 4);
        let losses = zeroed("losses", LOSS_SLOTS * 4);
        let predictions = zeroed("predictions", validation.len() * 4);
        let errors = zeroed("errors", validation.len() * 4);

        let step_stride = u64::from(context.limits.min_uniform_buffer_offset_alignment)
            .max(std::mem::size_of::<StepUniform>() as u64);
        let step_uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("steps"),
            size: step_stride * STEP_SLOTS as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let (optimiser, beta1, beta2, epsilon) = match hyper.optimiser {
            Optimiser::GradientDescent => (0, 0.0, 0.0, 0.0),
            Optimiser::Momentum { momentum } => (1, momentum, 0.0, 0.0),
            Optimiser::Adam {
                beta1,
                beta2,
                epsilon,
            } => (2, beta1, beta2, epsilon),
        };
        let depth = sizes.len() - 1;
        let hidden = activation_code(hyper.activation);
        let output_code = match hyper.output {
            Output::SigmoidMse => activation_code(Activation::Sigmoid),
            Output::SoftmaxCrossEntropy => SOFTMAX,
        };
        // Layer k (from 0): its output's f, and the f of its input (none for the images).
        let layer_uniform = |k: usize, inputs: usize, outputs: usize| {
            let uniform = LayerUniform {
                inputs: inputs as u32,
                outputs: outputs as u32,
                activation: if k + 1 == depth { output_code } else { hidden },
                input_activation: hidden,
                beta1,
                beta2,
                epsilon,
            };
            init(
                "layer",
                bytemuck::bytes_of(&uniform),
                wgpu::BufferUsages::UNIFORM,
            )
        };
        let layer_uniforms: Vec<wgpu::Buffer> = sizes
            .windows(2)
            .enumerate()
            .map(|(k, w)| layer_uniform(k, w[0], w[1]))
            .collect();

        let network_entries: Vec<DenseLayerEntry> = (0..depth)
            .map(|k| DenseLayerEntry {
                inputs: sizes[k] as u32,
                outputs: sizes[k + 1] as u32,
                activation: if k + 1 == depth { output_code } else { hidden },
                parameters: parameter_buffers.offset(k),
                state: optimiser_state.offset(k),
                activations: activations.offset(k),
                deltas: deltas.offset(k),
                pad: 0,
            })
            .collect();
        let network = init(
            "network",
            bytemuck::cast_slice(&network_entries),
            wgpu::BufferUsages::STORAGE,
        );
        // row_forward_backward reads the parameters of layers 2..L only, bound from where
        // layer 2's start, and counts their offsets from there.
        let dense_start = parameter_buffers.regions.get(1).map_or(0, |r| r.start);
        let dense_bytes = parameter_buffers.buffer.size() - dense_start;
        let row_network_entries: Vec<DenseLayerEntry> = network_entries
            .iter()
            .map(|&entry| DenseLayerEntry {
                parameters: entry.parameters.saturating_sub((dense_start / 4) as u32),
                ..entry
            })
            .collect();
        let row_network = init(
            "network from layer 2",
            bytemuck::cast_slice(&row_network_entries),
            wgpu::BufferUsages::UNIFORM,
        );

        let units = sizes[1..].iter().sum::<usize>() as u32;
        // D1 of a batch through a uniform binding, where its rows start on vec4s and it fits.
        let first_deltas_bytes = (max_batch * sizes[1] * 4) as u64;
        let uniform = UniformReads {
            first_deltas: (sizes[1] % 8 == 0
                && first_deltas_bytes <= context.limits.max_uniform_buffer_binding_size)
                .then_some((first_deltas_bytes / 16) as u32),
            dense_parameters: (dense_bytes <= context.limits.max_uniform_buffer_binding_size)
                .then_some((dense_bytes / 16) as u32),
            first_weights: first_weight_pieces(
                sizes[0] + 1,
                sizes[1],
                context.limits.max_uniform_buffer_binding_size,
                u64::from(context.limits.min_uniform_buffer_offset_alignment),
            ),
        };
        let kernels = Kernels::new(
            device,
            optimiser,
            depth as u32,
            ROW_GROUP,
            units,
            FUSED_UNITS,
            uniform,
        );
        let step_binding = wgpu::BufferBinding {
            buffer: &step_uniforms,
            offset: 0,
            size: wgpu::BufferSize::new(std::mem::size_of::<StepUniform>() as u64),
        };
        let group = |kernel: &Kernel, buffers: &[wgpu::BufferBinding]| {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(step_binding.clone()),
            }];
            entries.extend(
                buffers
                    .iter()
                    .enumerate()
                    .map(|(i, b)| wgpu::BindGroupEntry {
                        binding: i as u32 + 1,
                        resource: wgpu::BindingResource::Buffer(b.clone()),
                    }),
            );
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &kernel.layout,
                entries: &entries,
            })
        };
        let sparse_weights_update = |columns: &wgpu::Buffer, spans: &wgpu::Buffer| {
            group(
                &kernels.sparse_weights_update,
                &[
                    whole(&layer_uniforms[0]),
                    whole(columns),
                    whole(spans),
                    deltas.layer(0),
                    parameter_buffers.layer(0),
                    optimiser_state.layer(0),
                    match uniform.first_deltas {
                        Some(vec4s) => deltas.layer_start(0, u64::from(vec4s) * 16),
                        None => deltas.layer(0),
                    },
                ],
            )
        };
        let pixel_lists = cached_pixel_lists.map(|[columns, spans]| PixelLists {
            batch: max_batch,
            sparse_weights_update: sparse_weights_update(&columns, &spans),
        });
        // W1's four pieces as sparse_forward reads them: each all of W1 where they are storage.
        let first_weights: [wgpu::BufferBinding; 4] =
            std::array::from_fn(|piece| match uniform.first_weights {
                Some(pieces) => wgpu::BufferBinding {
                    buffer: &parameter_buffers.buffer,
                    offset: parameter_buffers.regions[0].start
                        + u64::from(pieces.starts[piece]) * 16,
                    size: wgpu::BufferSize::new(u64::from(pieces.lengths[piece]) * 16),
                },
                None => parameter_buffers.layer(0),
            });
        let bind = BindGroups {
            pixel_columns: group(
                &kernels.pixel_columns,
                &[
                    whole(&layer_uniforms[0]),
                    whole(&train_masks),
                    whole(&train_ranks),
                    whole(&train_entries),
                    whole(&train_order),
                    whole(&pixel_columns),
                    whole(&pixel_spans),
                ],
            ),
            sparse_weights_update: sparse_weights_update(&pixel_columns, &pixel_spans),
            sparse_forward_train: group(
                &kernels.sparse_forward,
                &[
                    whole(&layer_uniforms[0]),
                    whole(&train_entries),
                    whole(&train_starts),
                    whole(&train_order),
                    parameter_buffers.layer(0),
                    activations.layer(0),
                    first_weights[0].clone(),
                    first_weights[1].clone(),
                    first_weights[2].clone(),
                    first_weights[3].clone(),
                ],
            ),
            sparse_forward_validation: group(
                &kernels.sparse_forward,
                &[
                    whole(&layer_uniforms[0]),
                    whole(&validation_entries),
                    whole(&validation_starts),
                    whole(&validation_order),
                    parameter_buffers.layer(0),
                    activations.layer(0),
                    first_weights[0].clone(),
                    first_weights[1].clone(),
                    first_weights[2].clone(),
                    first_weights[3].clone(),
                ],
            ),
            forward: (1..depth)
                .map(|k| {
                    group(
                        &kernels.linear_forward,
                        &[
                            whole(&layer_uniforms[k]),
                            activations.layer(k - 1),
                            parameter_buffers.layer(k),
                            activations.layer(k),
                        ],
                    )
                })
                .collect(),
            output_delta: group(
                &kernels.output_delta,
                &[
                    whole(&layer_uniforms[depth - 1]),
                    activations.layer(depth - 1),
                    whole(&train_labels),
                    whole(&train_order),
                    deltas.layer(depth - 1),
                    whole(&losses),
                ],
            ),
            hidden_delta: (0..depth - 1)
                .map(|k| {
                    group(
                        &kernels.hidden_delta,
                        &[
                            whole(&layer_uniforms[k + 1]),
                            deltas.layer(k + 1),
                            parameter_buffers.layer(k + 1),
                            activations.layer(k),
                            deltas.layer(k),
                        ],
                    )
                })
                .collect(),
            weights_update: (1..depth)
                .map(|k| {
                    group(
                        &kernels.weights_update,
                        &[
                            whole(&layer_uniforms[k]),
                            activations.layer(k - 1),
                            deltas.layer(k),
                            parameter_buffers.layer(k),
                            optimiser_state.layer(k),
                        ],
                    )
                })
                .collect(),
            row_forward_backward: kernels.row_forward_backward.as_ref().map(|kernel| {
                group(
                    kernel,
                    &[
                        whole(&row_network),
                        wgpu::BufferBinding {
                            buffer: &parameter_buffers.buffer,
                            offset: dense_start,
                            size: wgpu::BufferSize::new(dense_bytes),
                        },
                        whole(&activations.buffer),
                        whole(&deltas.buffer),
                        whole(&train_labels),
                        whole(&train_order),
                        whole(&row_losses),
                    ],
                )
            }),
            layers_weights_update: group(
                &kernels.layers_weights_update,
                &[
                    whole(&layer_uniforms[0]),
                    whole(&network),
                    whole(&activations.buffer),
                    whole(&deltas.buffer),
                    whole(&parameter_buffers.buffer),
                    whole(&optimiser_state.buffer),
                    whole(&row_losses),
                    whole(&losses),
                    whole(&activations.buffer),
                    whole(&deltas.buffer),
                ],
            ),
            evaluate: group(
                &kernels.evaluate,
                &[
                    whole(&layer_uniforms[depth - 1]),
                    activations.layer(depth - 1),
                    whole(&validation_labels),
                    whole(&predictions),
                    whole(&errors),
                ],
            ),
        };
        context.check()?;
        Ok(Self {
            context,
            kernels,
            hyper: *hyper,
            steps: 0,
            train_order,
            file_order: true,
            pixel_lists,
            sizes,
            max_batch,
            train_count: train.len(),
            validation_count: validation.len(),
            eval_chunk,
            validation_labels: validation.labels.clone(),
            step_stride,
            step_uniforms,
            parameters: parameter_buffers,
            activations,
            deltas,
            losses,
            predictions,
            errors,
            bind,
            queued: Vec::new(),
            matmul: Matmul::default(),
            losses_used: 0,
            loss_carry: TrainLoss::default(),
        })
    }

    /// Chooses how the layers after the first are computed from the next step on.
    pub fn set_matmul(&mut self, matmul: Matmul) {
        self.matmul = matmul;
    }

    /// How the layers after the first are computed: as chosen, except that a network with
    /// more than FUSED_UNITS units in layers 1..L runs Matmul::Fused as Matmul::Registers.
    pub fn matmul(&self) -> Matmul {
        match (self.matmul, &self.bind.row_forward_backward) {
            (Matmul::Fused, None) => Matmul::Registers,
            (matmul, _) => matmul,
        }
    }

    /// The adapter's name.
    pub fn adapter_name(&self) -> &str {
        &self.context.adapter.name
    }

    /// Dispatches per training step of a whole batch in the current order (see
    /// [`Self::dispatches`]).
    pub fn dispatches_per_step(&self) -> usize {
        let first_batch = 0..self.max_batch.min(self.train_count);
        self.dispatches(self.pixel_source(&first_batch))
    }

    /// Dispatches of a training step that finds its pixel lists in `pixels`: the batch by
    /// pixel (where not cached), the first layer's forward pass and update, and for the layers
    /// after it either two (fused) or forward per layer, output delta, hidden deltas and
    /// updates per layer.
    fn dispatches(&self, pixels: PixelSource) -> usize {
        let depth = self.sizes.len() - 1;
        let regroup = usize::from(pixels == PixelSource::PerStep);
        regroup
            + match self.matmul() {
                Matmul::Fused => 4,
                Matmul::Registers | Matmul::Tiled => depth + 1 + (depth - 1) + depth,
            }
    }

    /// Where the step of `rows` finds its batch's lit pixels by pixel: in the lists cached
    /// at upload where the order is the file order and `rows` is one of their batches.
    fn pixel_source(&self, rows: &Range<usize>) -> PixelSource {
        match &self.pixel_lists {
            Some(lists)
                if self.file_order
                    && rows.start % lists.batch == 0
                    && rows.len() == lists.batch.min(self.train_count - rows.start) =>
            {
                PixelSource::Cached {
                    spans: (rows.start / lists.batch * self.sizes[0]) as u32,
                }
            }
            _ => PixelSource::PerStep,
        }
    }

    /// Records and submits everything queued, STEP_SLOTS units per submission.
    fn flush(&mut self) -> Result<(), GpuError> {
        self.flush_timed(None).map(|_| ())
    }

    /// [`Self::flush`], with a timestamp before each dispatch of the last queued unit and after
    /// it written to `timer`, where given. Returns those dispatches' names.
    fn flush_timed(&mut self, timer: Option<&wgpu::QuerySet>) -> Result<Vec<String>, GpuError> {
        let queued = std::mem::take(&mut self.queued);
        let mut timed = Vec::new();
        for chunk in queued.chunks(STEP_SLOTS) {
            let mut uniforms = vec![0u8; self.step_stride as usize * chunk.len()];
            for (slot, work) in chunk.iter().enumerate() {
                let at = slot * self.step_stride as usize;
                uniforms[at..at + std::mem::size_of::<StepUniform>()]
                    .copy_from_slice(bytemuck::bytes_of(&work.uniform(&self.hyper)));
            }
            self.context
                .queue
                .write_buffer(&self.step_uniforms, 0, &uniforms);
            let mut encoder =
                self.context
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("steps"),
                    });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("steps"),
                    timestamp_writes: None,
                });
                for (slot, work) in chunk.iter().enumerate() {
                    let offset = (slot as u64 * self.step_stride) as u32;
                    let last = slot + 1 == chunk.len();
                    timed = self.record(&mut pass, work, offset, timer.filter(|_| last));
                }
            }
            self.context.queue.submit([encoder.finish()]);
        }
        self.context.check()?;
        Ok(timed)
    }

    /// Records one unit's dispatches; with a `timer`, a timestamp before each and one after
    /// the last, and returns their names.
    fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        work: &Work,
        offset: u32,
        timer: Option<&wgpu::QuerySet>,
    ) -> Vec<String> {
        let k = &self.kernels;
        let b = &self.bind;
        let sizes = &self.sizes;
        let depth = sizes.len() - 1;
        let mut names = Vec::new();
        // `what` names the dispatch by the layer k it works on, only when it is timed.
        let mut dispatch = |kernel: &Kernel, group: &wgpu::BindGroup, what: (&str, usize), x, y| {
            if let Some(timer) = timer {
                pass.write_timestamp(timer, names.len() as u32);
                names.push(format!("{} {}", what.0, what.1));
            }
            pass.set_pipeline(&kernel.pipeline);
            pass.set_bind_group(0, group, &[offset]);
            pass.dispatch_workgroups(x, y, 1);
        };
        let (rows, first_layer) = match work {
            Work::Train { rows, .. } => (rows.len(), &b.sparse_forward_train),
            Work::Evaluate { rows } => (rows.len(), &b.sparse_forward_validation),
        };
        let blocks = |n: usize| div_ceil(n, BLOCK * GROUP);
        if let Work::Train {
            pixels: PixelSource::PerStep,
            ..
        } = work
        {
            // The batch by pixel, for the first layer's weight update.
            let what = ("pixel_columns layer", 1);
            let groups = div_ceil(sizes[0], PIXEL_GROUP);
            dispatch(&k.pixel_columns, &b.pixel_columns, what, groups, 1);
        }
        dispatch(
            &k.sparse_forward,
            first_layer,
            ("sparse_forward layer", 1),
            div_ceil(sizes[1], 8 * GROUP),
            div_ceil(rows, GROUP),
        );
        let fused = self.matmul() == Matmul::Fused && matches!(work, Work::Train { .. });
        for layer in (1..depth).filter(|_| !fused) {
            let (kernel, x, y) = match self.matmul() {
                Matmul::Registers | Matmul::Fused => {
                    (&k.linear_forward, blocks(sizes[layer + 1]), blocks(rows))
                }
                Matmul::Tiled => (
                    &k.linear_forward_tiled,
                    div_ceil(sizes[layer + 1], TILE),
                    div_ceil(rows, TILE),
                ),
            };
            let what = ("linear_forward layer", layer + 1);
            dispatch(kernel, &b.forward[layer - 1], what, x, y);
        }
        match work {
            Work::Evaluate { .. } => {
                let what = ("evaluate layer", depth);
                dispatch(&k.evaluate, &b.evaluate, what, div_ceil(rows, 64), 1);
            }
            Work::Train { .. } if fused => {
                let what = ("row_forward_backward layers 2 to", depth);
                let groups = div_ceil(rows, ROW_GROUP);
                if let (Some(kernel), Some(group)) =
                    (&k.row_forward_backward, &b.row_forward_backward)
                {
                    dispatch(kernel, group, what, groups, 1);
                }
                let blocks: usize = sizes
                    .windows(2)
                    .skip(1)
                    .map(|w| (w[0] + 1).div_ceil(4) * w[1].div_ceil(4))
                    .sum();
                let what = ("layers_weights_update layers 2 to", depth);
                let groups = div_ceil(blocks.max(1), BLOCK_GROUP);
                dispatch(
                    &k.layers_weights_update,
                    &b.layers_weights_update,
                    what,
                    groups,
                    1,
                );
            }
            Work::Train { .. } => {
                let what = ("output_delta layer", depth);
                dispatch(&k.output_delta, &b.output_delta, what, 1, 1);
                for layer in (0..depth - 1).rev() {
                    dispatch(
                        &k.hidden_delta,
                        &b.hidden_delta[layer],
                        ("hidden_delta layer", layer + 1),
                        blocks(sizes[layer + 1]),
                        blocks(rows),
                    );
                }
                for layer in 1..depth {
                    dispatch(
                        &k.weights_update,
                        &b.weights_update[layer - 1],
                        ("weights_update layer", layer + 1),
                        blocks(sizes[layer + 1]),
                        blocks(sizes[layer] + 1),
                    );
                }
            }
        }
        if let Work::Train { pixels, .. } = work {
            let group = match (pixels, &self.pixel_lists) {
                (PixelSource::Cached { .. }, Some(lists)) => &lists.sparse_weights_update,
                _ => &b.sparse_weights_update,
            };
            dispatch(
                &k.sparse_weights_update,
                group,
                ("sparse_weights_update layer", 1),
                div_ceil(sizes[1], 8 * GROUP),
                div_ceil(sizes[0] + 1, GROUP),
            );
        }
        if let Some(timer) = timer {
            pass.write_timestamp(timer, names.len() as u32);
        }
        names
    }

    /// Reads `count` f32 values from the start of `buffer`.
    fn read_f32(&self, buffer: &wgpu::Buffer, count: usize) -> Result<Vec<f32>, GpuError> {
        self.read_f32_at(buffer, 0, count)
    }

    /// Reads `count` f32 values of `buffer` from byte `offset`.
    fn read_f32_at(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        count: usize,
    ) -> Result<Vec<f32>, GpuError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let bytes = self
            .context
            .read_buffer(buffer, offset, (count * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads the batch losses since the last read into the carry, and frees their slots.
    fn collect_losses(&mut self) -> Result<(), GpuError> {
        self.flush()?;
        let losses = self.read_f32(&self.losses, self.losses_used)?;
        for loss in losses {
            self.loss_carry.add(f64::from(loss));
        }
        self.losses_used = 0;
        Ok(())
    }
}

impl Backend for GpuBackend {
    fn step_kernels(&self) -> StepKernels {
        let depth = self.sizes.len() - 1;
        let per_layer = |first: &str, rest: &str| -> Vec<String> {
            (0..depth)
                .map(|k| if k == 0 { first } else { rest }.to_string())
                .collect()
        };
        let forward = match self.matmul() {
            Matmul::Tiled => "linear_forward_tiled",
            _ => "linear_forward",
        };
        match self.matmul() {
            Matmul::Fused => StepKernels {
                activations: per_layer("sparse_forward", "row_forward_backward"),
                deltas: per_layer("row_forward_backward", "row_forward_backward"),
                parameters: per_layer("sparse_weights_update", "layers_weights_update"),
            },
            Matmul::Registers | Matmul::Tiled => StepKernels {
                activations: per_layer("sparse_forward", forward),
                deltas: (0..depth)
                    .map(|k| {
                        if k + 1 == depth {
                            "output_delta"
                        } else {
                            "hidden_delta"
                        }
                        .into()
                    })
                    .collect(),
                parameters: per_layer("sparse_weights_update", "weights_update"),
            },
        }
    }

    fn name(&self) -> String {
        let a = &self.context.adapter;
        let per_step = self.dispatches(PixelSource::PerStep);
        let dispatches = match self.pixel_lists {
            Some(_) => format!(
                "{} dispatches per step in the file order, {per_step} shuffled",
                self.dispatches(PixelSource::Cached { spans: 0 })
            ),
            None => format!("{per_step} dispatches per step"),
        };
        format!(
            "gpu ({}, {} {}; {} kernels, {dispatches})",
            a.name,
            a.backend,
            a.device_type,
            self.matmul().name(),
        )
    }

    fn set_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError> {
        parameters.check_shapes(&Parameters::layer_sizes_of(&self.sizes))?;
        // Steps queued before this call must still see the old parameters.
        self.flush()?;
        for (region, layer) in self.parameters.regions.iter().zip(&parameters.layers) {
            self.context.queue.write_buffer(
                &self.parameters.buffer,
                region.start,
                bytemuck::cast_slice(&pack_layer(layer)),
            );
        }
        Ok(())
    }

    fn parameters(&mut self) -> Result<Parameters, BackendError> {
        self.flush()?;
        let mut layers = Vec::new();
        for (region, w) in self.parameters.regions.iter().zip(self.sizes.windows(2)) {
            let (inputs, outputs) = (w[0], w[1]);
            let values = self.read_f32_at(
                &self.parameters.buffer,
                region.start,
                (inputs + 1) * outputs,
            )?;
            let all = Array2::from_shape_vec((inputs + 1, outputs), values)
                .expect("buffer holds (in + 1) x out values");
            layers.push(Layer {
                weights: all.slice(s![..inputs, ..]).to_owned(),
                bias: all.row(inputs).to_owned(),
            });
        }
        Ok(Parameters { layers })
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), BackendError> {
        // Each queued step keeps the rate it was queued with.
        self.hyper.learning_rate = learning_rate;
        Ok(())
    }

    fn set_order(&mut self, order: &[u32]) -> Result<(), BackendError> {
        check_order(order, self.train_count)?;
        // Steps queued before this call must still read the old order.
        self.flush()?;
        self.context
            .queue
            .write_buffer(&self.train_order, 0, bytemuck::cast_slice(order));
        self.file_order = order.iter().enumerate().all(|(i, &o)| o as usize == i);
        Ok(())
    }

    fn train_batch(&mut self, rows: Range<usize>) -> Result<(), BackendError> {
        mlp_core::backend::check_rows(&rows, self.train_count)?;
        if rows.len() > self.max_batch {
            return Err(BackendError::Device {
                backend: self.name(),
                message: format!(
                    "a batch of {} rows is larger than the {} this backend was built for",
                    rows.len(),
                    self.max_batch
                ),
            });
        }
        if self.losses_used == LOSS_SLOTS {
            self.collect_losses()?;
        }
        self.steps += 1;
        let pixels = self.pixel_source(&rows);
        self.queued.push(Work::Train {
            rows,
            loss_slot: self.losses_used,
            learning_rate: self.hyper.learning_rate,
            t: self.steps,
            pixels,
        });
        self.losses_used += 1;
        if self.queued.len() >= STEP_SLOTS {
            self.flush()?;
        }
        Ok(())
    }

    fn kernel_times(&mut self, rows: Range<usize>) -> Result<Vec<KernelTime>, BackendError> {
        self.train_batch(rows)?;
        let Some(period) = self.context.timestamp_period else {
            return Ok(Vec::new());
        };
        let device = &self.context.device;
        let capacity = self.dispatches(PixelSource::PerStep) as u32 + 1;
        let timer = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel times"),
            ty: wgpu::QueryType::Timestamp,
            count: capacity,
        });
        let names = self.flush_timed(Some(&timer))?;
        let count = names.len() as u32 + 1;
        let device = &self.context.device;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel times"),
            size: u64::from(count) * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.resolve_query_set(&timer, 0..count, &resolved, 0);
        self.context.queue.submit([encoder.finish()]);
        let bytes = self
            .context
            .read_buffer(&resolved, 0, u64::from(count) * 8)?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(names
            .into_iter()
            .zip(ticks.windows(2))
            .map(|(kernel, pair)| KernelTime {
                kernel,
                seconds: pair[1].saturating_sub(pair[0]) as f64 * f64::from(period) * 1e-9,
            })
            .collect())
    }

    fn take_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        self.collect_losses()?;
        Ok(std::mem::take(&mut self.loss_carry))
    }

    fn trace_batch(&mut self, rows: Range<usize>) -> Result<StepTrace, BackendError> {
        let b = rows.len();
        self.train_batch(rows)?;
        self.flush()?;
        let read = |tensors: &PerLayer, widths: &[usize]| -> Result<Vec<Array2<f32>>, GpuError> {
            tensors
                .regions
                .iter()
                .zip(widths)
                .map(|(region, &n)| {
                    let values = self.read_f32_at(&tensors.buffer, region.start, b * n)?;
                    Ok(Array2::from_shape_vec((b, n), values).expect("b x n values"))
                })
                .collect()
        };
        Ok(StepTrace {
            activations: read(&self.activations, &self.sizes[1..])?,
            deltas: read(&self.deltas, &self.sizes[1..])?,
        })
    }

    fn evaluate(&mut self) -> Result<Evaluation, BackendError> {
        for start in (0..self.validation_count).step_by(self.eval_chunk) {
            self.queued.push(Work::Evaluate {
                rows: start..(start + self.eval_chunk).min(self.validation_count),
            });
        }
        self.flush()?;
        let errors = self.read_f32(&self.errors, self.validation_count)?;
        let predictions: Vec<u8> = if self.validation_count == 0 {
            Vec::new()
        } else {
            let bytes = self.context.read_buffer(
                &self.predictions,
                0,
                (self.validation_count * 4) as u64,
            )?;
            bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)
                .into_iter()
                .map(|p| p as u8)
                .collect()
        };
        let classes = *self.sizes.last().unwrap_or(&0);
        Ok(Evaluation::new(
            errors.iter().map(|&e| f64::from(e)).sum(),
            mlp_core::cpu::loss_terms(self.hyper.output, predictions.len(), classes),
            predictions,
            &self.validation_labels,
            classes,
        ))
    }

    fn validation_outputs(&mut self) -> Result<Array2<f32>, BackendError> {
        let classes = *self.sizes.last().unwrap_or(&0);
        let depth = self.sizes.len() - 1;
        let mut outputs = Vec::with_capacity(self.validation_count * classes);
        for start in (0..self.validation_count).step_by(self.eval_chunk) {
            let rows = start..(start + self.eval_chunk).min(self.validation_count);
            let count = rows.len();
            self.queued.push(Work::Evaluate { rows });
            self.flush()?;
            let region = &self.activations.regions[depth - 1];
            outputs.extend(self.read_f32_at(
                &self.activations.buffer,
                region.start,
                count * classes,
            )?);
        }
        Ok(
            Array2::from_shape_vec((self.validation_count, classes), outputs)
                .expect("images x classes values"),
        )
    }
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
