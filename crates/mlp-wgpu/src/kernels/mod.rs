//! How a kernel is declared and built. Each kernel is one [`KernelDecl`]: its name, the WGSL
//! files it is made of (after `common.wgsl`, which every kernel starts with), and its bindings
//! by name and kind, in binding order. The pipeline's layout is made from that table, bind
//! groups are made by those names (`backend/bind_groups.rs`), and a test reads every pipeline's
//! WGSL with naga and checks its declarations against the table (`tests/webgpu.rs` of mlp-cli).
//! The source that runs is the files as written, after a prelude of `const`s that the
//! kernel's builder writes (sizes known when the pipeline is built); nothing else is changed.

mod options;

pub use options::{KernelOptions, UniformReads, WeightPieces};

pub struct Kernel {
    /// The shader's name, as its file and `bench --profile` name it.
    pub name: String,
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// What the pipeline was built from.
    pub spec: PipelineSpec,
}

/// A kernel as declared: its name, its WGSL files (name and text, in the order they are
/// joined), and its bindings from binding 0 in order.
pub struct KernelDecl {
    pub name: &'static str,
    pub files: &'static [(&'static str, &'static str)],
    pub bindings: &'static [Binding],
}

/// One binding of group 0: the name its WGSL variable has, and how it is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub name: &'static str,
    pub kind: BindingKind,
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
    pub bindings: Vec<Binding>,
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

    fn wgpu_type(self) -> wgpu::BufferBindingType {
        match self {
            Self::DynamicUniform | Self::Uniform => wgpu::BufferBindingType::Uniform,
            Self::ReadOnlyStorage => wgpu::BufferBindingType::Storage { read_only: true },
            Self::Storage => wgpu::BufferBindingType::Storage { read_only: false },
        }
    }
}

/// The files of `shaders/` named, each as (name, text).
macro_rules! wgsl {
    ($($file:literal),+ $(,)?) => {
        &[$(($file, include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shaders/", $file)))),+]
    };
}
pub(crate) use wgsl;

/// A table of bindings: `name: Kind` in binding order, the kinds those of [`BindingKind`].
macro_rules! bindings {
    ($($name:ident: $kind:ident),+ $(,)?) => {
        &[$($crate::kernels::Binding {
            name: stringify!($name),
            kind: $crate::kernels::BindingKind::$kind,
        }),+]
    };
}
pub(crate) use bindings;

const COMMON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shaders/common.wgsl"
));

impl KernelDecl {
    /// The WGSL that runs: `prelude` (the `const`s this build fixes), common.wgsl, then the
    /// kernel's files in order.
    pub fn source(&self, prelude: &str) -> String {
        let files = self.files.iter().map(|(_, text)| *text);
        std::iter::once(prelude)
            .chain(std::iter::once(COMMON))
            .chain(files)
            .collect()
    }

    /// The pipeline of this kernel (entry point `main`), its WGSL after `prelude`, with the
    /// values of its pipeline-overridable `constants`.
    pub fn build(&self, device: &wgpu::Device, prelude: &str, constants: &[(&str, f64)]) -> Kernel {
        let name = self.name;
        let entries: Vec<wgpu::BindGroupLayoutEntry> = (self.bindings.iter().enumerate())
            .map(|(binding, b)| wgpu::BindGroupLayoutEntry {
                binding: binding as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: b.kind.wgpu_type(),
                    has_dynamic_offset: b.kind.has_dynamic_offset(),
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
        let source = self.source(prelude);
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.as_str().into()),
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
                source,
                bindings: self.bindings.to_vec(),
                constants: constants.iter().map(|&(n, v)| (n.to_string(), v)).collect(),
            },
        }
    }
}

/// The prelude of `const`s `u32` named and valued as given.
pub fn prelude(constants: &[(&str, u32)]) -> String {
    (constants.iter())
        .map(|(name, value)| format!("const {name}: u32 = {value}u;\n"))
        .collect()
}
