//! The seed network on any GPU: WGSL compute shaders (in the workspace's `shaders/`) through
//! wgpu, behind mlp-core's [`Backend`](mlp_core::Backend) interface, checked against its CPU
//! reference.
//!
//! How a run flows through the crate, one file a concern:
//!
//! ```text
//! context        adapter, device, queue, limits, read-back
//!   -> backend/upload          the data sets as lit pixels, masks, per-batch pixel lists (once)
//!   -> backend/layout          the tensors' per-layer buffers, the uniform structs and tables
//!   -> kernels                 how a kernel is declared: its WGSL files and bindings by name
//!   -> backend/shared_kernels  the kernels every schedule runs (layer 1, evaluation) and
//!                              their bind groups
//!   -> backend/schedules/      one module a schedule of layers 2..L: its kernels, bind
//!                              groups, recording and dispatch count
//!   -> backend/bind_groups     bind groups made by binding name from the tensors' buffers
//!   -> backend/record          each step or evaluation chunk queued, then recorded
//!   -> backend/evaluate        the validation set: predictions and losses read back
//!   -> backend/timing          each dispatch of a step between GPU timestamps
//! tune           each variant timed on this device, the fastest cached for later runs
//! ```
//!
//! `backend/mod.rs` holds [`GpuBackend`]: its constructor runs those steps in that order, and
//! its [`Backend`](mlp_core::Backend) methods queue work and read results.

mod backend;
mod context;
mod error;
mod kernels;
pub mod tune;
mod variant;

pub use backend::{CapturedBinding, CapturedDispatch, GpuBackend, StepCapture};
pub use context::{AdapterSummary, GpuContext, ListedAdapter, list_adapters};
pub use error::GpuError;
pub use kernels::{Binding, BindingKind, PipelineSpec};
pub use variant::{DenseSchedule, Dispatches, KernelVariant, Reads};

/// How far the GPU may be from the CPU reference (`mlp_core::ReferenceBackend`), element by
/// element.
///
/// Both compute in f32 but sum in different orders (the reference's matrixmultiply blocks the
/// products, the GPU sums each dot product in one sequence over the lit pixels), and exp may
/// differ by an ulp.
/// A sum of K terms carries about √K·ε relative error of its magnitude: for the widest sum,
/// K = 784, that is 28 · 6e-8 ≈ 2e-6, and sigmoid's slope (≤ ¼) shrinks it in the activations.
/// Over hundreds of steps the parameters then drift apart by such amounts each step. 1e-4
/// absolute plus 1e-3 relative is far below any real error (a wrong index or a missing term
/// changes values by 1e-2 or more), and above the drift measured after 300 steps of `mlp-cli
/// check` on lavapipe (docs/performance.md): 0.004 of it for the seed network and 0.42 for the
/// modern preset, whose Adam steps are as large for a gradient that is a rounding error as for a
/// real one, so that a few near-cancelling weight gradients move apart by up to 5e-5.
pub const PARITY: mlp_core::compare::Tolerance = mlp_core::compare::Tolerance::new(1e-4, 1e-3);
