//! The seed network on any GPU: WGSL compute shaders (in the workspace's `shaders/`) through
//! wgpu, behind mlp-core's [`Backend`](mlp_core::Backend) interface, checked against its CPU
//! reference.

mod backend;
mod context;
mod error;
mod kernels;

pub use backend::GpuBackend;
pub use context::{AdapterSummary, GpuContext, list_adapters};
pub use error::GpuError;
