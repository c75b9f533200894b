//! One compute pipeline per kernel file of `shaders/`, each with `common.wgsl` (and, where it
//! updates parameters, `optimiser_update.wgsl`) prepended.

/// How a kernel binds each of its buffers, in binding order.
#[derive(Clone, Copy)]
enum Slot {
    /// The per-step uniform, bound at a dynamic offset.
    Step,
    Uniform,
    Read,
    Write,
}

pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

pub struct Kernels {
    pub sparse_forward: Kernel,
    pub pixel_columns: Kernel,
    pub sparse_weights_update: Kernel,
    pub linear_forward: Kernel,
    pub linear_forward_tiled: Kernel,
    pub output_delta: Kernel,
    pub hidden_delta: Kernel,
    pub weights_update: Kernel,
    /// None where a row's values are too many for private arrays (see `new`).
    pub row_forward_backward: Option<Kernel>,
    pub layers_weights_update: Kernel,
    pub evaluate: Kernel,
}

macro_rules! shader {
    ($($file:literal),+) => {
        concat!(
            include_str!("../../../shaders/common.wgsl"),
            $(include_str!(concat!("../../../shaders/", $file))),+
        )
    };
}

use Slot::{Read, Step, Uniform, Write};

impl Kernels {
    /// The kernels, the update kernels built for the optimiser of `optimiser_code` (one of
    /// common.wgsl's GRADIENT_DESCENT, MOMENTUM, ADAM), row_forward_backward with `row_group`
    /// rows per workgroup and room for `units` values of a row (the widths of layers 1..L),
    /// where that is at most `max_units`: lavapipe's time to build it grows steeply with them
    /// (measured: 5 s for 410, 29 s for 1,010, over 300 s for 4,106).
    pub fn new(
        device: &wgpu::Device,
        optimiser_code: u32,
        row_group: u32,
        units: u32,
        max_units: u32,
    ) -> Self {
        let optimiser = &[("OPTIMISER", f64::from(optimiser_code))];
        Self {
            sparse_forward: build(
                device,
                "sparse_forward",
                shader!("sparse_forward.wgsl"),
                &[Step, Uniform, Read, Read, Read, Read, Write, Read],
                &[],
            ),
            pixel_columns: build(
                device,
                "pixel_columns",
                shader!("pixel_columns.wgsl"),
                &[Step, Uniform, Read, Read, Read, Read, Write, Write],
                &[],
            ),
            sparse_weights_update: build(
                device,
                "sparse_weights_update",
                shader!("optimiser_update.wgsl", "sparse_weights_update.wgsl"),
                &[Step, Uniform, Read, Read, Read, Write, Write, Read],
                optimiser,
            ),
            linear_forward: build(
                device,
                "linear_forward",
                shader!("linear_forward.wgsl"),
                &[Step, Uniform, Write, Read, Write],
                &[],
            ),
            linear_forward_tiled: build(
                device,
                "linear_forward_tiled",
                shader!("linear_forward_tiled.wgsl"),
                &[Step, Uniform, Write, Read, Write],
                &[],
            ),
            output_delta: build(
                device,
                "output_delta",
                shader!("output_delta.wgsl"),
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
            row_forward_backward: (units <= max_units).then(|| {
                build(
                    device,
                    "row_forward_backward",
                    &format!(
                        "const UNITS: u32 = {units}u;\n{}",
                        shader!("row_forward_backward.wgsl")
                    ),
                    &[Step, Read, Read, Write, Write, Read, Read, Write, Read],
                    &[("ROW_GROUP", f64::from(row_group))],
                )
            }),
            layers_weights_update: build(
                device,
                "layers_weights_update",
                shader!("optimiser_update.wgsl", "layers_weights_update.wgsl"),
                &[Step, Uniform, Read, Read, Read, Write, Write, Read, Write],
                optimiser,
            ),
            evaluate: build(
                device,
                "evaluate",
                shader!("evaluate.wgsl"),
                &[Step, Uniform, Write, Read, Write, Write],
                &[],
            ),
        }
    }
}

/// The pipeline of kernel `name`, its buffers bound as `slots` say, with the values of its
/// pipeline-overridable `constants`.
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
    Kernel { pipeline, layout }
}
