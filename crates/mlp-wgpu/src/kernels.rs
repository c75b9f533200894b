//! One compute pipeline per kernel file of `shaders/`, each with `common.wgsl` (and, where it
//! updates parameters, `optimiser_update.wgsl`) prepended, and the files of functions and of
//! shared bindings it includes.

/// How a kernel binds each of its buffers, in binding order.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The per-step uniform, bound at a dynamic offset.
    Step,
    Uniform,
    Read,
    Write,
}

pub struct Kernel {
    /// The shader's name, as its file and `bench --profile` name it.
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// What the pipeline was built from.
    pub spec: PipelineSpec,
}

/// A compute pipeline as the backend builds it, in terms any WebGPU implementation takes: the
/// WGSL it compiles (entry point `main`), its bind group's layout, and the values of its
/// overridable constants. The tests build each again in Chromium (`tests/webgpu.rs` of
/// mlp-cli).
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    pub name: String,
    pub source: String,
    /// Group 0's bindings, from binding 0 in order.
    pub bindings: Vec<BindingKind>,
    pub constants: Vec<(String, f64)>,
}

/// How one buffer is bound, in WebGPU's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKind {
    /// A uniform buffer bound at a dynamic offset (the per-step values).
    DynamicUniform,
    Uniform,
    ReadOnlyStorage,
    Storage,
}

impl BindingKind {
    /// The `buffer.type` of a WebGPU bind group layout entry.
    pub fn webgpu_type(self) -> &'static str {
        match self {
            Self::DynamicUniform | Self::Uniform => "uniform",
            Self::ReadOnlyStorage => "read-only-storage",
            Self::Storage => "storage",
        }
    }

    pub fn has_dynamic_offset(self) -> bool {
        self == Self::DynamicUniform
    }
}

impl From<Slot> for BindingKind {
    fn from(slot: Slot) -> Self {
        match slot {
            Step => Self::DynamicUniform,
            Uniform => Self::Uniform,
            Read => Self::ReadOnlyStorage,
            Write => Self::Storage,
        }
    }
}

/// The kernels every schedule runs: the first layer's, the dense forward product (which the
/// evaluation runs on every schedule) and the evaluation. The kernels of the schedule of
/// layers 2..L are the backend's `ScheduleStep`, built the first time a step runs it.
pub struct Kernels {
    pub sparse_forward: Kernel,
    pub pixel_columns: Kernel,
    pub sparse_weights_update: Kernel,
    pub linear_forward: Kernel,
    pub evaluate: Kernel,
}

/// Layers 2..L of a step in two dispatches (DenseSchedule::Fused).
pub struct FusedKernels {
    pub row_forward_backward: Kernel,
    pub layers_weights_update: Kernel,
}

/// The whole step, layer 1 included, in two dispatches (DenseSchedule::Whole).
pub struct WholeKernels {
    pub step_forward_backward: Kernel,
    pub step_weights_update: Kernel,
}

/// Up to STEP_SLOTS consecutive steps in one dispatch (DenseSchedule::MultiStep).
pub struct MultiStepKernel {
    pub multi_step: Kernel,
}

/// Layers 2..L of a step a dispatch per layer and quantity (DenseSchedule::Registers, Tiled).
pub struct PerLayerKernels {
    pub linear_forward_tiled: Kernel,
    /// E2d of each hidden layer, under dropout.
    pub dropout_forward: Kernel,
    pub output_delta: Kernel,
    pub hidden_delta: Kernel,
    pub weights_update: Kernel,
}

/// What the kernels of one backend are built for.
#[derive(Debug, Clone, Copy)]
pub struct KernelOptions {
    /// common.wgsl's code of the optimiser, a pipeline constant of the update kernels.
    pub optimiser: u32,
    /// Weight layers, and units in layers 1..L, for row_forward_backward.wgsl's arrays.
    pub layers: u32,
    pub units: u32,
    /// Invocations per workgroup of row_forward_backward.wgsl, one per batch row.
    pub row_group: u32,
    /// The most units the fused kernel is built for; wider networks get none.
    pub max_units: u32,
    /// The largest batch, which sizes multi_step.wgsl's rows' losses.
    pub max_batch: u32,
    /// The slots of the buffer of steps and the vec4s between one slot's Step and the next
    /// slot, for multi_step.wgsl.
    pub step_slots: (u32, u32),
    /// Invocations of multi_step.wgsl's one workgroup.
    pub step_group: u32,
    pub uniform: UniformReads,
}

/// Read-only arrays of vec4s that kernels read through a uniform binding instead of a storage
/// one, where the device can bind them so (at most its max_uniform_buffer_binding_size, 64 KiB
/// on lavapipe and most GPUs): each the vec4s it holds, or None for storage. A CPU Vulkan
/// (lavapipe) loads a storage buffer one invocation at a time, a branch and a bounds check
/// each, and a uniform buffer as one gather, so these reads are faster there
/// (docs/performance.md has the figures). On a real GPU the choice is still to be measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UniformReads {
    /// D1 in sparse_weights_update.wgsl (`delta4`).
    pub first_deltas: Option<u32>,
    /// The parameters of layers 2..L in row_forward_backward.wgsl (`parameters`).
    pub dense_parameters: Option<u32>,
    /// W1 in sparse_forward.wgsl, in four pieces (`weights0` to `weights3`) of whole rows.
    pub first_weights: Option<WeightPieces>,
}

/// W1 in four pieces of `rows` rows each: where each piece starts in W1 and how long it is, in
/// vec4s, all but the last as long as the first (a piece past the rows W1 needs is the last
/// real one again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightPieces {
    pub rows: u32,
    pub starts: [u32; 4],
    pub lengths: [u32; 4],
}

/// sparse_forward.wgsl's PIECE_PIXELS where W1 is read from storage: past every pixel index
/// (24 bits, as backend.rs packs them), with 3 times it still a u32.
const WHOLE_PIECE_PIXELS: u32 = 1 << 24;

macro_rules! shader {
    ($($file:literal),+) => {
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            $(include_str!(concat!("../../../shaders/", $file))),+
        )
    };
}

use Slot::{Read, Step, Uniform, Write};

/// sparse_forward.wgsl and its bindings, W1 read in four uniform pieces where `uniform` says,
/// else as one storage binding: 7 storage buffers, within WebGPU's default of 8 per stage.
fn sparse_forward_source(uniform: &UniformReads) -> (String, Vec<Slot>) {
    let mut slots = vec![Step, Uniform, Read, Read, Read, Read, Write];
    match uniform.first_weights {
        Some(pieces) => {
            let lengths = pieces.lengths.iter().enumerate();
            let prelude: String = lengths
                .map(|(c, length)| format!("const W1_PIECE_VEC4S_{c}: u32 = {length}u;\n"))
                .collect();
            slots.extend([Uniform; 4]);
            let source = format!(
                "const PIECE_PIXELS: u32 = {}u;\n{prelude}{}",
                pieces.rows,
                shader!("sparse_forward_w1_uniform.wgsl", "sparse_forward.wgsl")
            );
            (source, slots)
        }
        None => {
            slots.push(Read);
            let source = format!(
                "const PIECE_PIXELS: u32 = {WHOLE_PIECE_PIXELS}u;\n{}",
                shader!("sparse_forward_w1_storage.wgsl", "sparse_forward.wgsl")
            );
            (source, slots)
        }
    }
}

/// sparse_weights_update.wgsl and its bindings, D1 read through a uniform where `uniform` says.
fn sparse_weights_update_source(uniform: &UniformReads) -> (String, [Slot; 8]) {
    match uniform.first_deltas {
        Some(length) => (
            format!(
                "const D1_VEC4S: u32 = {length}u;\n{}",
                shader!(
                    "optimiser_update.wgsl",
                    "sparse_weights_update_d1_uniform.wgsl",
                    "sparse_weights_update.wgsl"
                )
            ),
            [Step, Uniform, Read, Read, Read, Write, Write, Uniform],
        ),
        None => (
            shader!(
                "optimiser_update.wgsl",
                "sparse_weights_update_d1_storage.wgsl",
                "sparse_weights_update.wgsl"
            )
            .to_string(),
            [Step, Uniform, Read, Read, Read, Write, Write, Read],
        ),
    }
}

/// row_forward_backward.wgsl for `layers` layers of `units` units in all, and its bindings,
/// the dense parameters read through a uniform where `uniform` says.
fn row_forward_backward_source(
    layers: u32,
    units: u32,
    uniform: &UniformReads,
) -> (String, [Slot; 8]) {
    let sizes = format!("const LAYERS: u32 = {layers}u;\nconst UNITS: u32 = {units}u;\n");
    match uniform.dense_parameters {
        Some(length) => (
            format!(
                "{sizes}const DENSE_PARAMETER_VEC4S: u32 = {length}u;\n{}",
                shader!(
                    "row_pass_bindings.wgsl",
                    "row_parameters_uniform.wgsl",
                    "forward_backward_row.wgsl",
                    "row_forward_backward.wgsl"
                )
            ),
            [Step, Uniform, Uniform, Write, Write, Read, Read, Write],
        ),
        None => (
            sizes
                + shader!(
                    "row_pass_bindings.wgsl",
                    "row_parameters_storage.wgsl",
                    "forward_backward_row.wgsl",
                    "row_forward_backward.wgsl"
                ),
            [Step, Uniform, Read, Write, Write, Read, Read, Write],
        ),
    }
}

impl Kernels {
    /// The kernels every schedule runs, for `options`: the first layer's update built for its
    /// optimiser, and the arrays of `uniform` read through uniform bindings.
    pub fn new(device: &wgpu::Device, options: &KernelOptions) -> Self {
        let optimiser = &[("OPTIMISER", f64::from(options.optimiser))];
        let (forward_source, forward_slots) = sparse_forward_source(&options.uniform);
        let (update_source, update_slots) = sparse_weights_update_source(&options.uniform);
        let pixel_columns_slots = [Step, Uniform, Read, Read, Read, Read, Write, Write];
        let (sparse_forward, sparse_weights_update) = ("sparse_forward", "sparse_weights_update");
        Self {
            sparse_forward: build(device, sparse_forward, &forward_source, &forward_slots, &[]),
            pixel_columns: build(
                device,
                "pixel_columns",
                shader!("pixel_columns.wgsl"),
                &pixel_columns_slots,
                &[],
            ),
            sparse_weights_update: build(
                device,
                sparse_weights_update,
                &update_source,
                &update_slots,
                optimiser,
            ),
            linear_forward: build(
                device,
                "linear_forward",
                shader!("linear_forward.wgsl"),
                &[Step, Uniform, Write, Read, Write],
                &[],
            ),
            evaluate: build(
                device,
                "evaluate",
                shader!("softmax_row.wgsl", "evaluate.wgsl"),
                &[Step, Uniform, Write, Read, Write, Write],
                &[],
            ),
        }
    }
}

impl Kernels {
    /// The kernels every schedule runs.
    pub(crate) fn built_kernels(&self) -> Vec<&Kernel> {
        let kernels = vec![
            &self.sparse_forward,
            &self.pixel_columns,
            &self.sparse_weights_update,
            &self.linear_forward,
            &self.evaluate,
        ];
        kernels
    }
}

impl FusedKernels {
    /// The fused kernels of `options`, where its layers have at most `max_units` units:
    /// row_forward_backward keeps a row's values in private arrays, and lavapipe's time to
    /// build it grows steeply with them (docs/gpu.md).
    pub fn new(device: &wgpu::Device, options: &KernelOptions) -> Option<Self> {
        if options.units > options.max_units {
            return None;
        }
        let (row_source, row_slots) =
            row_forward_backward_source(options.layers, options.units, &options.uniform);
        let update_slots = [
            Step, Uniform, Uniform, Write, Write, Read, Write, Read, Read,
        ];
        let update_source = format!(
            "const LAYERS: u32 = {}u;\n{}",
            options.layers,
            shader!(
                "optimiser_update.wgsl",
                "dense_update_bindings.wgsl",
                "dense_blocks_update.wgsl",
                "layers_weights_update.wgsl"
            )
        );
        Some(Self {
            row_forward_backward: build(
                device,
                "row_forward_backward",
                &row_source,
                &row_slots,
                &[("ROW_GROUP", f64::from(options.row_group))],
            ),
            layers_weights_update: build(
                device,
                "layers_weights_update",
                &update_source,
                &update_slots,
                &[("OPTIMISER", f64::from(options.optimiser))],
            ),
        })
    }
}

impl WholeKernels {
    /// The two kernels of the whole step, where the network has at most `max_units` units in
    /// layers 1..L (row_forward_backward's private arrays, as FusedKernels). Every array is
    /// read from storage: the step binds the whole parameter buffer, W1 with the rest.
    pub fn new(device: &wgpu::Device, options: &KernelOptions) -> Option<Self> {
        if options.units > options.max_units {
            return None;
        }
        let sizes = format!(
            "const LAYERS: u32 = {}u;\nconst UNITS: u32 = {}u;\n",
            options.layers, options.units
        );
        let forward_source = sizes.clone()
            + shader!(
                "row_pass_bindings.wgsl",
                "row_parameters_storage.wgsl",
                "forward_backward_row.wgsl",
                "image_bytes.wgsl",
                "first_layer_row.wgsl",
                "step_forward_backward.wgsl"
            );
        let forward_slots = [Step, Uniform, Read, Write, Write, Read, Read, Write, Read];
        let update_source = sizes
            + shader!(
                "optimiser_update.wgsl",
                "dense_update_bindings.wgsl",
                "dense_blocks_update.wgsl",
                "image_bytes.wgsl",
                "first_layer_update.wgsl",
                "step_weights_update.wgsl"
            );
        let update_slots = [
            Step, Uniform, Uniform, Write, Write, Read, Write, Read, Read, Read, Read,
        ];
        let row_group = [("ROW_GROUP", f64::from(options.row_group))];
        let optimiser = [("OPTIMISER", f64::from(options.optimiser))];
        Some(Self {
            step_forward_backward: build(
                device,
                "step_forward_backward",
                &forward_source,
                &forward_slots,
                &row_group,
            ),
            step_weights_update: build(
                device,
                "step_weights_update",
                &update_source,
                &update_slots,
                &optimiser,
            ),
        })
    }
}

impl MultiStepKernel {
    /// The multi-step kernel of `options`, which the backend builds only where it fits the
    /// device (`multi_step_fits`).
    pub fn new(device: &wgpu::Device, options: &KernelOptions) -> Self {
        let (slots, pad) = options.step_slots;
        let source = format!(
            "const LAYERS: u32 = {}u;\nconst UNITS: u32 = {}u;\nconst MAX_ROWS: u32 = {}u;\n\
             const STEP_SLOTS: u32 = {slots}u;\nconst STEP_PAD: u32 = {}u;\n\
             const STEP_GROUP: u32 = {}u;\n{}",
            options.layers,
            options.units,
            options.max_batch,
            pad,
            options.step_group,
            shader!(
                "optimiser_update.wgsl",
                "forward_backward_row.wgsl",
                "dense_blocks_update.wgsl",
                "image_bytes.wgsl",
                "first_layer_row.wgsl",
                "first_layer_update.wgsl",
                "multi_step.wgsl"
            )
        );
        let slots = [
            Step, Uniform, Uniform, Uniform, Write, Write, Write, Write, Read, Read, Write, Read,
        ];
        let optimiser = [("OPTIMISER", f64::from(options.optimiser))];
        Self {
            multi_step: build(device, "multi_step", &source, &slots, &optimiser),
        }
    }
}

impl PerLayerKernels {
    pub fn new(device: &wgpu::Device, options: &KernelOptions) -> Self {
        let optimiser = &[("OPTIMISER", f64::from(options.optimiser))];
        Self {
            linear_forward_tiled: build(
                device,
                "linear_forward_tiled",
                shader!("linear_forward_tiled.wgsl"),
                &[Step, Uniform, Write, Read, Write],
                &[],
            ),
            dropout_forward: build(
                device,
                "dropout_forward",
                shader!("dropout_forward.wgsl"),
                &[Step, Uniform, Write, Write],
                &[],
            ),
            output_delta: build(
                device,
                "output_delta",
                shader!("softmax_row.wgsl", "output_delta.wgsl"),
                &[Step, Uniform, Write, Read, Read, Write, Write],
                &[],
            ),
            hidden_delta: build(
                device,
                "hidden_delta",
                shader!("hidden_delta.wgsl"),
                &[Step, Uniform, Write, Read, Read, Write],
                &[],
            ),
            weights_update: build(
                device,
                "weights_update",
                shader!("optimiser_update.wgsl", "weights_update.wgsl"),
                &[Step, Uniform, Read, Read, Write, Write],
                optimiser,
            ),
        }
    }
}

/// The pipeline of kernel `name` (its entry point `main`), its buffers bound as `slots` say,
/// with the values of its pipeline-overridable `constants`.
fn build(
    device: &wgpu::Device,
    name: &str,
    source: &str,
    slots: &[Slot],
    constants: &[(&str, f64)],
) -> Kernel {
    let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
        .iter()
        .enumerate()
        .map(|(binding, slot)| wgpu::BindGroupLayoutEntry {
            binding: binding as u32,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: match slot {
                    Step | Uniform => wgpu::BufferBindingType::Uniform,
                    Read => wgpu::BufferBindingType::Storage { read_only: true },
                    Write => wgpu::BufferBindingType::Storage { read_only: false },
                },
                has_dynamic_offset: matches!(slot, Step),
                min_binding_size: None,
            },
            count: None,
        })
        .collect();
    let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(name),
        entries: &entries,
    });
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(name),
        bind_group_layouts: &[Some(&layout)],
        immediate_size: 0,
    });
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some(name),
        source: wgpu::ShaderSource::Wgsl(source.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: Some(&pipeline_layout),
        module: &module,
        entry_point: Some("main"),
        compilation_options: wgpu::PipelineCompilationOptions {
            constants,
            ..Default::default()
        },
        cache: None,
    });
    Kernel {
        name: name.to_string(),
        pipeline,
        layout,
        spec: PipelineSpec {
            name: name.to_string(),
            source: source.to_string(),
            bindings: slots.iter().map(|&s| s.into()).collect(),
            constants: constants.iter().map(|&(n, v)| (n.to_string(), v)).collect(),
        },
    }
}
