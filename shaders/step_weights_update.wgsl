// The second of a training step's two dispatches (the `whole` schedule): every layer's
// weights and biases move by the gradient scale * [A(k-1), 1]^T Dk. Layer 1's rows come first,
// as sparse_weights_update.wgsl moves them, each invocation one pixel's row of W1 over 8
// columns: it walks the batch's rows in order and adds only those where its pixel is lit, which
// it finds in the image's bytes (no regrouping of the batch by pixel, so any training order and
// any shift takes the same two dispatches). Then the blocks of layers 2..L and the batch loss,
// as layers_weights_update.wgsl (which this file is appended to) does them.
//
// bindings: as layers_weights_update.wgsl, with `layer` layer 1's sizes and constants; and
//           images: every training image's bytes, four to a u32 (the first in the low bits);
//           order: row r of the data set's order is image order[r]

@group(0) @binding(9) var<storage, read> images: array<u32>;
@group(0) @binding(10) var<storage, read> order: array<u32>;

// Byte `i` of the training images.
fn image_byte(i: u32) -> u32 {
    return (images[i / 4u] >> (8u * (i % 4u))) & 0xffu;
}

// Pixel p's input on batch row r: its byte / 255 through the input dropout (0 where unlit).
fn first_layer_input(p: u32, r: u32) -> f32 {
    // Where p of row r came from in its image: the row's shift undone.
    let offsets = shift_offsets(step.shift_seed, step.shift_pixels, step.dropout_step, r);
    let source = moved_pixel(p, -offsets, layer.inputs);
    if (source == NOT_IN_IMAGE) {
        return 0.0;
    }
    let image = order[step.row_start + r];
    let byte = image_byte(image * layer.inputs + source);
    if (byte == 0u) {
        return 0.0;
    }
    let row_hash = dropout_row_hash(step.input_dropout_seed, step.dropout_step, 0u, r);
    let factor = dropout_unit_factor(row_hash, p, step.input_dropout_threshold,
                                     step.input_dropout_scale);
    return f32(byte) / 255.0 * factor;
}

// Row p of [W1; b1] (p = inputs is the bias, whose input is 1), columns n0..n0 + 7.
fn first_layer_update(p: u32, n0: u32) {
    let l = network[0];
    let cols = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(l.outputs - 1u));
    let high = min(cols + vec4<u32>(4u), vec4<u32>(l.outputs - 1u));
    var g_low = vec4<f32>(0.0);
    var g_high = vec4<f32>(0.0);
    for (var r = 0u; r < step.rows; r = r + 1u) {
        var x = 1.0;
        if (p < l.inputs) {
            x = first_layer_input(p, r);
            if (x == 0.0) {
                continue;
            }
        }
        let d_row = l.deltas + r * l.outputs;
        g_low = g_low + x * vec4<f32>(delta_at(d_row + cols.x), delta_at(d_row + cols.y),
                                      delta_at(d_row + cols.z), delta_at(d_row + cols.w));
        g_high = g_high + x * vec4<f32>(delta_at(d_row + high.x), delta_at(d_row + high.y),
                                        delta_at(d_row + high.z), delta_at(d_row + high.w));
    }
    let moments = (l.inputs + 1u) * l.outputs;
    let decay = select(0.0, step.weight_decay, p < l.inputs);
    for (var j = 0u; j < min(8u, l.outputs - n0); j = j + 1u) {
        var g = g_low[j % 4u];
        if (j >= 4u) {
            g = g_high[j % 4u];
        }
        let index = p * l.outputs + n0 + j;
        update_at(l.parameters + index, l.state + index, moments, step.gradient_scale * g, decay);
    }
}

@compute @workgroup_size(64)
fn step_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x == 0u) {
        losses[step.loss_slot] = batch_loss();
    }
    let first = network[0];
    let across = (first.outputs + 7u) / 8u;
    let first_tasks = across * (first.inputs + 1u);
    if (gid.x < first_tasks) {
        first_layer_update(gid.x / across, (gid.x % across) * 8u);
    } else {
        dense_block_update(gid.x - first_tasks);
    }
}
