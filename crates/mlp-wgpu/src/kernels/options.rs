//! What the kernels of one backend are built for: the network's sizes, the optimiser, and
//! which read-only arrays are read through uniform bindings on this device.

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
    /// The most units the kernels that keep a row in private arrays are built for.
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

impl KernelOptions {
    /// The pipeline constant of the kernels that update parameters.
    pub fn optimiser_constant(&self) -> [(&'static str, f64); 1] {
        [("OPTIMISER", f64::from(self.optimiser))]
    }

    /// The pipeline constant of the kernels that give each batch row an invocation.
    pub fn row_group_constant(&self) -> [(&'static str, f64); 1] {
        [("ROW_GROUP", f64::from(self.row_group))]
    }
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
