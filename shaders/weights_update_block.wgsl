// [Wk; bk] moves by the gradient scale * [A(k-1), 1]^T Dk: weights_gradient, bias_gradient and
// the optimiser update of cpu/mod.rs (gradient_descent_update, momentum_update or adam_update),
// fused, one 4 x 4 block of the parameters at a time. The gradient is never stored: the block
// is summed over the batch in registers and applied. Row `in` of the parameters is the bias,
// whose "input" is the constant 1, so its gradient is the column sum of Dk. The one body of
// this equation: weights_update.wgsl runs it for one layer, dense_blocks_update.wgsl for every
// layer in one dispatch.
//
// The including kernel declares `step`, the parameters and optimiser state that
// optimiser_update.wgsl updates (at `l.parameters` and `l.state`), and the reads
// activation_at(i) and delta_at(i) of one value of the Ak and Dk, and activation4(i) and
// delta4(i) of four from a multiple of 4 (Dk at `l.deltas`).

// The 4 x 4 block at block row `by`, block column `bx` of the [Wk; bk] of layer `l`, whose
// input A(k-1) starts at `input_start`.
fn weights_update_block(l: DenseLayer, input_start: u32, bx: u32, by: u32) {
    let n0 = bx * 4u;
    let i0 = by * 4u;
    let cols = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(l.outputs - 1u));
    let inputs = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u);
    let safe = min(inputs, vec4<u32>(l.inputs - 1u));
    let is_bias = inputs == vec4<u32>(l.inputs);
    let is_past = inputs > vec4<u32>(l.inputs);
    var g0 = vec4<f32>(0.0);
    var g1 = vec4<f32>(0.0);
    var g2 = vec4<f32>(0.0);
    var g3 = vec4<f32>(0.0);
    // Where the block's four inputs and four outputs each lie on a vec4 of their rows, both are
    // read a vec4 at a time; at a layer's edge, one value at a time, clamped into the layer,
    // the bias row's input 1 and rows past it 0. Two loops, as lavapipe runs a loop with a
    // branch inside slowly.
    if (l.inputs % 4u == 0u && i0 + 4u <= l.inputs && l.outputs % 4u == 0u) {
        for (var r = 0u; r < step.rows; r = r + 1u) {
            let a = activation4(input_start + r * l.inputs + i0);
            let d = delta4(l.deltas + r * l.outputs + n0);
            g0 = g0 + a.x * d;
            g1 = g1 + a.y * d;
            g2 = g2 + a.z * d;
            g3 = g3 + a.w * d;
        }
    } else {
        for (var r = 0u; r < step.rows; r = r + 1u) {
            let a_row = input_start + r * l.inputs;
            let d_row = l.deltas + r * l.outputs;
            let d = vec4<f32>(delta_at(d_row + cols.x), delta_at(d_row + cols.y),
                              delta_at(d_row + cols.z), delta_at(d_row + cols.w));
            var a = vec4<f32>(activation_at(a_row + safe.x), activation_at(a_row + safe.y),
                              activation_at(a_row + safe.z), activation_at(a_row + safe.w));
            a = select(a, vec4<f32>(1.0), is_bias);
            a = select(a, vec4<f32>(0.0), is_past);
            g0 = g0 + a.x * d;
            g1 = g1 + a.y * d;
            g2 = g2 + a.z * d;
            g3 = g3 + a.w * d;
        }
    }
    let gradients = array<vec4<f32>, 4>(g0, g1, g2, g3);
    let moments = (l.inputs + 1u) * l.outputs;
    for (var i = 0u; i < min(4u, l.inputs + 1u - i0); i = i + 1u) {
        for (var j = 0u; j < min(4u, l.outputs - n0); j = j + 1u) {
            let index = (i0 + i) * l.outputs + n0 + j;
            let decay = select(0.0, step.weight_decay, i0 + i < l.inputs);
            update_at(l.parameters + index, l.state + index, moments,
                      step.gradient_scale * gradients[i][j], decay);
        }
    }
}
