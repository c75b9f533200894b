// The second of a training step's two dispatches (the `whole` schedule): every layer's
// weights and biases move by the gradient scale * [A(k-1), 1]^T Dk, layer 1 a pixel row and 8
// columns per invocation (first_layer_update.wgsl), layers 2..L in 4 x 4 blocks
// (dense_blocks_update.wgsl), and the first invocation adds up the batch's loss.
//
// bindings: dense_update_bindings.wgsl's (prepended), with `layer` layer 1's sizes and
//           constants; and
//           images: every training image's bytes, four to a u32 (the first in the low bits);
//           order: row r of the data set's order is image order[r]

@group(0) @binding(9) var<storage, read> images: array<u32>;
@group(0) @binding(10) var<storage, read> order: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x == 0u) {
        losses[step.loss_slot] = batch_loss();
    }
    if (gid.x < step_update_tasks()) {
        step_update_task(gid.x);
    }
}
