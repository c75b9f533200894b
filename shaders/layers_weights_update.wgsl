// [Wk; bk] moves by the gradient scale * [A(k-1), 1]^T Dk for every layer k = 2..L in one
// dispatch (dense_blocks_update.wgsl, which is prepended), so that one dispatch does the work
// of L - 1. The first invocation also adds up the rows' losses that row_forward_backward.wgsl
// left, in row order, into the batch's loss slot.
//
// bindings: dense_update_bindings.wgsl's, which is prepended.

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x == 0u) {
        losses[step.loss_slot] = batch_loss();
    }
    dense_block_update(gid.x);
}
