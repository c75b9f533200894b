//! One training step as data, for another WebGPU implementation to run again: the pipelines it
//! dispatches, every buffer they bind as it is just before the step, and the dispatches in
//! order with their bindings, dynamic offsets and workgroups (`tests/webgpu.rs` of mlp-cli
//! replays it in Chromium).

use std::ops::Range;

use mlp_core::backend::{Backend, BackendError};
use mlp_core::network::Parameters;

use super::GpuBackend;
use super::layout::unpack_layer;
use super::recorder::Dispatched;
use crate::PipelineSpec;
use crate::context::GpuContext;
use crate::error::GpuError;

/// A captured training step (see the module's documentation).
#[derive(Debug, Clone)]
pub struct StepCapture {
    /// Each pipeline the step dispatches, once.
    pub pipelines: Vec<PipelineSpec>,
    /// Each buffer the step binds, its bytes before the step.
    pub buffers: Vec<Vec<u8>>,
    pub dispatches: Vec<CapturedDispatch>,
    /// Which of `buffers` holds the parameters ([`GpuBackend::parameters_from_bytes`] reads
    /// them).
    pub parameters_buffer: usize,
}

#[derive(Debug, Clone)]
pub struct CapturedDispatch {
    /// Index into [`StepCapture::pipelines`].
    pub pipeline: usize,
    /// Group 0's bindings, from binding 0.
    pub bindings: Vec<CapturedBinding>,
    /// The dynamic offset of binding 0 (the step's uniform).
    pub dynamic_offset: u32,
    pub workgroups: (u32, u32),
}

/// A buffer range bound: into [`StepCapture::buffers`], from `offset`, `size` bytes or to the
/// buffer's end.
#[derive(Debug, Clone, Copy)]
pub struct CapturedBinding {
    pub buffer: usize,
    pub offset: u64,
    pub size: Option<u64>,
}

/// What a flush keeps while it records a captured step.
#[derive(Default)]
pub(super) struct Capture {
    pub(super) dispatched: Vec<Dispatched>,
    buffers: Vec<(wgpu::Buffer, Vec<u8>)>,
}

impl Capture {
    /// Reads every buffer the dispatched groups bind, before the step is submitted.
    pub(super) fn read_buffers(&mut self, context: &GpuContext) -> Result<(), GpuError> {
        for dispatched in &self.dispatched {
            for bound in &dispatched.group.buffers {
                if self.buffers.iter().all(|(b, _)| *b != bound.buffer) {
                    let bytes = context.read_buffer(&bound.buffer, 0, bound.buffer.size())?;
                    self.buffers.push((bound.buffer.clone(), bytes));
                }
            }
        }
        Ok(())
    }

    fn into_step(self, parameters: &wgpu::Buffer) -> StepCapture {
        let buffers = &self.buffers;
        let index = |buffer: &wgpu::Buffer| {
            (buffers.iter().position(|(b, _)| b == buffer)).expect("every bound buffer was read")
        };
        let mut pipelines: Vec<PipelineSpec> = Vec::new();
        let dispatches = (self.dispatched.iter())
            .map(|d| {
                let pipeline = match pipelines.iter().position(|p| *p == d.kernel) {
                    Some(i) => i,
                    None => {
                        pipelines.push(d.kernel.clone());
                        pipelines.len() - 1
                    }
                };
                let bindings = (d.group.buffers.iter())
                    .map(|b| CapturedBinding {
                        buffer: index(&b.buffer),
                        offset: b.offset,
                        size: b.size,
                    })
                    .collect();
                CapturedDispatch {
                    pipeline,
                    bindings,
                    dynamic_offset: d.offset,
                    workgroups: d.workgroups,
                }
            })
            .collect();
        StepCapture {
            pipelines,
            parameters_buffer: index(parameters),
            buffers: self.buffers.into_iter().map(|(_, bytes)| bytes).collect(),
            dispatches,
        }
    }
}

impl GpuBackend {
    /// One training step on `rows`, as [`Backend::train_batch`] takes it, returned as data.
    pub fn capture_step(&mut self, rows: Range<usize>) -> Result<StepCapture, BackendError> {
        self.flush()?;
        self.train_batch(rows)?;
        let mut capture = Capture::default();
        self.flush_captured(None, Some(&mut capture))?;
        Ok(capture.into_step(&self.tensors.parameters.buffer))
    }

    /// The parameters in `bytes`, a copy of the parameter buffer (a captured step's, say).
    pub fn parameters_from_bytes(&self, bytes: &[u8]) -> Parameters {
        let regions = self.tensors.parameters.regions.iter();
        let layers = (regions.zip(self.sizes.windows(2)))
            .map(|(region, w)| {
                let (inputs, outputs) = (w[0], w[1]);
                let start = region.start as usize;
                let end = start + (inputs + 1) * outputs * 4;
                unpack_layer(
                    bytemuck::pod_collect_to_vec(&bytes[start..end]),
                    inputs,
                    outputs,
                )
            })
            .collect();
        Parameters { layers }
    }
}
