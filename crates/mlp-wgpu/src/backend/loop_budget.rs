//! How many loop iterations one invocation of the whole step's kernels can run, for a driver
//! that ends an invocation's loops past a budget (`GpuContext::loop_iteration_limit`,
//! llvmpipe's 65,535): there the whole step runs only where one row's pass fits, and the
//! multi-step kernel runs as many steps per dispatch as fit. Each count is an upper bound:
//! every pixel lit, every loop's exit test counted, dropout on.

use super::layout::{dense_blocks, first_layer_tasks};

/// Iterations of one row's pass (first_layer_row.wgsl, then forward_backward_row.wgsl) through
/// layers of `sizes` units, input first.
pub(super) fn row_pass(sizes: &[usize]) -> u64 {
    let (pixels, first) = (sizes[0] as u64, sizes[1] as u64);
    // add_scaled_weights: four columns an iteration where the layer is whole vec4s.
    let per_pixel = if first % 4 == 0 { first / 4 } else { first } + 1;
    let words = pixels.div_ceil(4) + 2;
    let first_layer = (first + 1) + words * 5 + pixels * per_pixel + (first + 1);
    let dropout = first + 1;
    let dense: u64 = sizes
        .windows(2)
        .skip(1)
        .map(|w| {
            let (inputs, outputs) = (w[0] as u64, w[1] as u64);
            let forward = outputs.div_ceil(4) * (inputs + 6) + 1;
            // hidden_delta_row of the layer before: a sum along each row of this layer.
            let delta = inputs * (outputs + 2) + 1;
            forward + delta
        })
        .sum();
    let classes = *sizes.last().expect("an output layer") as u64;
    let output_delta = 3 * (classes + 1);
    first_layer + dropout + dense + output_delta + 2 * sizes.len() as u64
}

/// Iterations of one invocation's share of a step's update in a workgroup of `group`
/// invocations (first_layer_update.wgsl's and dense_blocks_update.wgsl's tasks), with the
/// batch's loss, for batches of `batch` rows.
pub(super) fn update_share(sizes: &[usize], batch: usize, group: usize) -> u64 {
    let tasks = (first_layer_tasks(sizes) + dense_blocks(sizes)) as u64;
    let depth = sizes.len() as u64;
    // A task walks the batch's rows, then its 8 (or 4 x 4) parameters.
    let per_task = batch as u64 + 1 + 18 + 2 * depth;
    let batch_loss = batch as u64 + 1;
    tasks.div_ceil(group as u64) * per_task + batch_loss + 2 * depth
}
