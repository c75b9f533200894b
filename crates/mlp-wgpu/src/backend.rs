//! mlp-core's backend interface on the GPU. Parameters, both data sets, activations, deltas
//! and the batch losses all live in GPU buffers. Training steps are queued and recorded many
//! to a command buffer, one compute pass each; nothing is read back until the caller asks
//! for the epoch's loss, the parameters, an evaluation or a trace.

use std::ops::Range;

use mlp_core::Dataset;
use mlp_core::backend::{Backend, BackendError, Evaluation, KernelTime, StepTrace, TrainLoss};
use mlp_core::cpu::{AdamStep, check_order, check_output_width, reduction_scale};
use mlp_core::network::{Layer, Parameters};
use mlp_core::options::{Activation, Hyperparameters, Optimiser, Output};
use ndarray::{Array2, s};
use wgpu::util::DeviceExt;

use crate::context::GpuContext;
use crate::error::GpuError;
use crate::kernels::{Kernel, Kernels};

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
/// Invocations per workgroup of pixel_columns.wgsl, one per pixel.
const PIXEL_GROUP: u32 = 64;

/// How the dense layers' forward products are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Matmul {
    /// A 4 x 4 block per invocation in registers, no workgroup memory (linear_forward.wgsl):
    /// the faster on lavapipe, the only device measured so far.
    #[default]
    Registers,
    /// 16 x 16 tiles staged in workgroup memory (linear_forward_tiled.wgsl): what real GPUs are
    /// expected to favour; not yet measured on one.
    Tiled,
}

impl Matmul {
    pub const NAMES: [&'static str; 2] = ["registers", "tiled"];
}

impl std::str::FromStr for Matmul {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "registers" => Ok(Self::Registers),
            "tiled" => Ok(Self::Tiled),
            _ => Err(format!(
                "unknown matmul kernel {name:?}: choose {}",
                Self::NAMES.join(" or ")
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
    pad: u32,
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

/// The activation codes of common.wgsl.
fn activation_code(activation: Activation) -> u32 {
    match activation {
        Activation::Sigmoid => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
    }
}
const SOFTMAX: u32 = 3;

/// A queued unit of GPU work.
#[derive(Debug, Clone)]
enum Work {
    Train {
        rows: Range<usize>,
        loss_slot: usize,
        learning_rate: f32,
        /// The step's number from 1, for Adam's bias corrections.
        t: u64,
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
                    pad: 0,
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
    /// Units per layer, input first.
    sizes: Vec<usize>,
    max_batch: usize,
    train_count: usize,
    validation_count: usize,
    validation_labels: Vec<u8>,
    step_stride: u64,
    step_uniforms: wgpu::Buffer,
    /// Per weight layer k: [Wk; bk], (in + 1, out).
    parameters: Vec<wgpu::Buffer>,
    /// A1 .. AL at index k − 1, each (rows, units); A0 is never built.
    activations: Vec<wgpu::Buffer>,
    /// D1 .. DL.
    deltas: Vec<wgpu::Buffer>,
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

fn div_ceil(value: usize, by: u32) -> u32 {
    (value as u32).div_ceil(by)
}

fn pack_bytes(bytes: &[u8]) -> Vec<u8> {
    let mut padded = bytes.to_vec();
    padded.resize(bytes.len().div_ceil(4).max(1) * 4, 0);
    padded
}

/// Bits of a lit pixel's entry that hold its index; the byte is above them.
const PIXEL_INDEX_BITS: u32 = 24;

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
/// set where pixel p is lit; and per image and word, how many pixels are lit in the image's
/// words before it.
fn pixel_masks(pixels: usize, (entries, starts): &LitPixels) -> (Vec<u32>, Vec<u32>) {
    let words = pixels.div_ceil(32);
    let images = starts.len() - 1;
    let mut masks = vec![0u32; images * words];
    let mut ranks = vec![0u32; images * words];
    for (i, range) in starts.windows(2).enumerate() {
        for &entry in &entries[range[0] as usize..range[1] as usize] {
            let p = (entry & ((1 << PIXEL_INDEX_BITS) - 1)) as usize;
            masks[i * words + p / 32] |= 1 << (p % 32);
        }
        let mut lit = 0;
        for w in 0..words {
            ranks[i * words + w] = lit;
            lit += masks[i * words + w].count_ones();
        }
    }
    (masks, ranks)
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
        let capacity = max_batch.max(EVAL_CHUNK);
        // A0 is never stored: the first layer reads the images' lit pixels.
        let widest = sizes[1..].iter().copied().max().unwrap_or(1);
        context.check_storage_size(
            &format!("a batch of {capacity} rows of {widest} activations"),
            (capacity * widest * 4) as u64,
        )?;
        context.check_storage_size(
            &format!("the lit pixels of a batch of {max_batch} images, by pixel"),
            (max_batch * train.pixels() * 8) as u64,
        )?;
        let groups_needed = div_ceil(capacity.max(train.pixels() + 1), GROUP);
        if groups_needed > context.limits.max_compute_workgroups_per_dimension {
            return Err(GpuError::LimitExceeded {
                what: format!("a batch of {capacity} images of {} pixels", train.pixels()),
                needed: u64::from(groups_needed),
                limit: "max_compute_workgroups_per_dimension",
                allowed: u64::from(context.limits.max_compute_workgroups_per_dimension),
                adapter: context.adapter.name.clone(),
            }
            .into());
        }

        let storage = wgpu::BufferUsages::STORAGE
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
        let pixel_lengths = zeroed("pixel lengths", train.pixels() * 4);
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
        // The optimiser's state per layer, zero at the start; a 4-byte stand-in for plain
        // gradient descent, whose kernel never touches it.
        let optimiser_state: Vec<wgpu::Buffer> = parameters
            .layers
            .iter()
            .enumerate()
            .map(|(k, layer)| {
                let values = (layer.weights.len() + layer.bias.len())
                    * hyper.optimiser.state_per_parameter();
                zeroed(&format!("optimiser state {}", k + 1), values * 4)
            })
            .collect();
        let parameter_buffers: Vec<wgpu::Buffer> = parameters
            .layers
            .iter()
            .enumerate()
            .map(|(k, layer)| {
                // Whole vec4s, for sparse_forward.wgsl's four-at-a-time view.
                let mut values = pack_layer(layer);
                values.resize(values.len().div_ceil(4) * 4, 0.0);
                init(
                    &format!("parameters {}", k + 1),
                    bytemuck::cast_slice(&values),
                    storage,
                )
            })
            .collect();
        // A1..AL (A0 is never built: the first layer reads the images' lit pixels).
        let activations: Vec<wgpu::Buffer> = sizes[1..]
            .iter()
            .enumerate()
            .map(|(k, &n)| zeroed(&format!("A{}", k + 1), capacity * n * 4))
            .collect();
        let deltas: Vec<wgpu::Buffer> = sizes[1..]
            .iter()
            .enumerate()
            .map(|(k, &n)| zeroed(&format!("D{}", k + 1), capacity * n * 4))
            .collect();
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

        let kernels = Kernels::new(device, optimiser);
        let step_binding = wgpu::BufferBinding {
            buffer: &step_uniforms,
            offset: 0,
            size: wgpu::BufferSize::new(std::mem::size_of::<StepUniform>() as u64),
        };
        let group = |kernel: &Kernel, buffers: &[&wgpu::Buffer]| {
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
                        resource: b.as_entire_binding(),
                    }),
            );
            device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &kernel.layout,
                entries: &entries,
            })
        };
        let bind = BindGroups {
            pixel_columns: group(
                &kernels.pixel_columns,
                &[
                    &layer_uniforms[0],
                    &train_masks,
                    &train_ranks,
                    &train_entries,
                    &train_starts,
                    &train_order,
                    &pixel_columns,
                    &pixel_lengths,
                ],
            ),
            sparse_weights_update: group(
                &kernels.sparse_weights_update,
                &[
                    &layer_uniforms[0],
                    &pixel_columns,
                    &pixel_lengths,
                    &deltas[0],
                    &parameter_buffers[0],
                    &optimiser_state[0],
                    &deltas[0],
                ],
            ),
            sparse_forward_train: group(
                &kernels.sparse_forward,
                &[
                    &layer_uniforms[0],
                    &train_entries,
                    &train_starts,
                    &train_order,
                    &parameter_buffers[0],
                    &activations[0],
                    &parameter_buffers[0],
                ],
            ),
            sparse_forward_validation: group(
                &kernels.sparse_forward,
                &[
                    &layer_uniforms[0],
                    &validation_entries,
                    &validation_starts,
                    &validation_order,
                    &parameter_buffers[0],
                    &activations[0],
                    &parameter_buffers[0],
                ],
            ),
            forward: (1..depth)
                .map(|k| {
                    group(
                        &kernels.linear_forward,
                        &[
                            &layer_uniforms[k],
                            &activations[k - 1],
                            &parameter_buffers[k],
                            &activations[k],
                        ],
                    )
                })
                .collect(),
            output_delta: group(
                &kernels.output_delta,
                &[
                    &layer_uniforms[depth - 1],
                    &activations[depth - 1],
                    &train_labels,
                    &train_order,
                    &deltas[depth - 1],
                    &losses,
                ],
            ),
            hidden_delta: (0..depth - 1)
                .map(|k| {
                    group(
                        &kernels.hidden_delta,
                        &[
                            &layer_uniforms[k + 1],
                            &deltas[k + 1],
                            &parameter_buffers[k + 1],
                            &activations[k],
                            &deltas[k],
                        ],
                    )
                })
                .collect(),
            weights_update: (1..depth)
                .map(|k| {
                    group(
                        &kernels.weights_update,
                        &[
                            &layer_uniforms[k],
                            &activations[k - 1],
                            &deltas[k],
                            &parameter_buffers[k],
                            &optimiser_state[k],
                        ],
                    )
                })
                .collect(),
            evaluate: group(
                &kernels.evaluate,
                &[
                    &layer_uniforms[depth - 1],
                    &activations[depth - 1],
                    &validation_labels,
                    &predictions,
                    &errors,
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
            sizes,
            max_batch,
            train_count: train.len(),
            validation_count: validation.len(),
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

    /// Chooses the kernel of the dense layers' forward products from the next step on.
    pub fn set_matmul(&mut self, matmul: Matmul) {
        self.matmul = matmul;
    }

    /// The adapter's name.
    pub fn adapter_name(&self) -> &str {
        &self.context.adapter.name
    }

    /// Dispatches per training step: the batch by pixel, forward per layer, output delta,
    /// hidden deltas, updates per layer.
    pub fn dispatches_per_step(&self) -> usize {
        let depth = self.sizes.len() - 1;
        1 + depth + 1 + (depth - 1) + depth
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
        if let Work::Train { .. } = work {
            // The batch by pixel, for the first layer's weight update.
            let what = ("pixel_columns layer", 1);
            let groups = div_ceil(sizes[0], PIXEL_GROUP);
            dispatch(&k.pixel_columns, &b.pixel_columns, what, groups, 1);
        }
        dispatch(
            &k.sparse_forward,
            first_layer,
            ("sparse_forward layer", 1),
            blocks(sizes[1]),
            div_ceil(rows, GROUP),
        );
        for layer in 1..depth {
            let (kernel, x, y) = match self.matmul {
                Matmul::Registers => (&k.linear_forward, blocks(sizes[layer + 1]), blocks(rows)),
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
                dispatch(
                    &k.sparse_weights_update,
                    &b.sparse_weights_update,
                    ("sparse_weights_update layer", 1),
                    blocks(sizes[1]),
                    div_ceil(sizes[0] + 1, GROUP),
                );
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
        if let Some(timer) = timer {
            pass.write_timestamp(timer, names.len() as u32);
        }
        names
    }

    /// Reads `count` f32 values from the start of `buffer`.
    fn read_f32(&self, buffer: &wgpu::Buffer, count: usize) -> Result<Vec<f32>, GpuError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let bytes = self.context.read_buffer(buffer, (count * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads the batch losses since the last read into the carry, and frees their slots.
    fn collect_losses(&mut self) -> Result<(), GpuError> {
        self.flush()?;
        let losses = self.read_f32(&self.losses, self.losses_used)?;
        self.loss_carry.batch_loss_sum += losses.iter().map(|&l| f64::from(l)).sum::<f64>();
        self.loss_carry.batches += losses.len();
        self.losses_used = 0;
        Ok(())
    }
}

impl Backend for GpuBackend {
    fn name(&self) -> String {
        let a = &self.context.adapter;
        format!("gpu ({}, {} {})", a.name, a.backend, a.device_type)
    }

    fn set_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError> {
        parameters.check_shapes(&Parameters::layer_sizes_of(&self.sizes))?;
        // Steps queued before this call must still see the old parameters.
        self.flush()?;
        for (buffer, layer) in self.parameters.iter().zip(&parameters.layers) {
            self.context
                .queue
                .write_buffer(buffer, 0, bytemuck::cast_slice(&pack_layer(layer)));
        }
        Ok(())
    }

    fn parameters(&mut self) -> Result<Parameters, BackendError> {
        self.flush()?;
        let mut layers = Vec::new();
        for (buffer, w) in self.parameters.iter().zip(self.sizes.windows(2)) {
            let (inputs, outputs) = (w[0], w[1]);
            let values = self.read_f32(buffer, (inputs + 1) * outputs)?;
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
        Ok(())
    }

    fn train_batch(&mut self, rows: Range<usize>) -> Result<(), BackendError> {
        if rows.start >= rows.end || rows.end > self.train_count {
            return Err(BackendError::RowsOutOfRange {
                start: rows.start,
                end: rows.end,
                len: self.train_count,
            });
        }
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
        self.queued.push(Work::Train {
            rows,
            loss_slot: self.losses_used,
            learning_rate: self.hyper.learning_rate,
            t: self.steps,
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
        let count = self.dispatches_per_step() as u32 + 1;
        let timer = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel times"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let names = self.flush_timed(Some(&timer))?;
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
        let bytes = self.context.read_buffer(&resolved, u64::from(count) * 8)?;
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
        let read =
            |buffers: &[wgpu::Buffer], widths: &[usize]| -> Result<Vec<Array2<f32>>, GpuError> {
                buffers
                    .iter()
                    .zip(widths)
                    .map(|(buffer, &n)| {
                        Ok(
                            Array2::from_shape_vec((b, n), self.read_f32(buffer, b * n)?)
                                .expect("b x n values"),
                        )
                    })
                    .collect()
            };
        Ok(StepTrace {
            activations: read(&self.activations, &self.sizes[1..])?,
            deltas: read(&self.deltas, &self.sizes[1..])?,
        })
    }

    fn evaluate(&mut self) -> Result<Evaluation, BackendError> {
        for start in (0..self.validation_count).step_by(EVAL_CHUNK) {
            self.queued.push(Work::Evaluate {
                rows: start..(start + EVAL_CHUNK).min(self.validation_count),
            });
        }
        self.flush()?;
        let errors = self.read_f32(&self.errors, self.validation_count)?;
        let predictions: Vec<u8> = if self.validation_count == 0 {
            Vec::new()
        } else {
            let bytes = self
                .context
                .read_buffer(&self.predictions, (self.validation_count * 4) as u64)?;
            bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)
                .into_iter()
                .map(|p| p as u8)
                .collect()
        };
        let correct = predictions
            .iter()
            .zip(&self.validation_labels)
            .filter(|(p, l)| p == l)
            .count();
        let classes = *self.sizes.last().unwrap_or(&0);
        Ok(Evaluation {
            loss_sum: errors.iter().map(|&e| f64::from(e)).sum(),
            loss_terms: mlp_core::cpu::loss_terms(self.hyper.output, predictions.len(), classes),
            correct,
            predictions,
            classes,
        })
    }

    fn validation_outputs(&mut self) -> Result<Array2<f32>, BackendError> {
        let classes = *self.sizes.last().unwrap_or(&0);
        let depth = self.sizes.len() - 1;
        let mut outputs = Vec::with_capacity(self.validation_count * classes);
        for start in (0..self.validation_count).step_by(EVAL_CHUNK) {
            let rows = start..(start + EVAL_CHUNK).min(self.validation_count);
            let count = rows.len();
            self.queued.push(Work::Evaluate { rows });
            self.flush()?;
            outputs.extend(self.read_f32(&self.activations[depth - 1], count * classes)?);
        }
        Ok(
            Array2::from_shape_vec((self.validation_count, classes), outputs)
                .expect("images x classes values"),
        )
    }
}
