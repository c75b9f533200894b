// [Wk; bk] moves by the gradient scale * [A(k-1), 1]^T Dk for every layer k = 2..L, the 4 x 4
// blocks of weights_update_block.wgsl of all those layers numbered one layer after another,
// and the batch's loss from the rows' losses, for the kernels that update several layers in
// one dispatch (layers_weights_update.wgsl, step_weights_update.wgsl, multi_step.wgsl).
//
// The including kernel declares `step`, `network` (LAYERS of them), `row_losses`, and what
// weights_update_block.wgsl reads, through every layer's buffers at the offsets of `network`.

// The batch's loss: the mean squared error over B x classes (squared_error_sum of cpu/mod.rs over
// its terms), or the mean cross-entropy over B.
fn batch_loss() -> f32 {
    let output = network[LAYERS - 1u];
    var terms = f32(step.rows * output.outputs);
    if (output.activation == SOFTMAX) {
        terms = f32(step.rows);
    }
    var sum = 0.0;
    for (var m = 0u; m < step.rows; m = m + 1u) {
        sum = sum + row_losses[m];
    }
    return sum / terms;
}

// Block `number` of layers 2..L, the blocks of each layer numbered after the layer before's
// (past the last, nothing).
fn dense_block_update(number: u32) {
    var block = number;
    for (var k = 1u; k < LAYERS; k = k + 1u) {
        let l = network[k];
        let across = (l.outputs + 3u) / 4u;
        let blocks = across * ((l.inputs + 4u) / 4u);
        if (block < blocks) {
            weights_update_block(l, network[k - 1u].activations, block % across, block / across);
            return;
        }
        block = block - blocks;
    }
}
