// Layer 1's [W1; b1] moves by the gradient scale * [X, 1]^T D1, as sparse_weights_update.wgsl
// moves it, each task one pixel's row of W1 over 8 columns: it walks the batch's rows in order
// and adds only those where its pixel is lit, which it finds in the image's bytes (no
// regrouping of the batch by pixel, so any training order and any shift takes the same
// dispatch). With dense_blocks_update.wgsl's blocks, the tasks of a whole step's update
// (step_weights_update.wgsl, multi_step.wgsl).
//
// The including kernel declares `step`, `network`, `order`, the reads delta_at(i), and what
// dense_blocks_update.wgsl, optimiser_update.wgsl and image_bytes.wgsl need.

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

// The tasks of a step's update: a pixel row of [W1; b1] over 8 columns each, then the 4 x 4
// blocks of layers 2..L (dense_block_update).
fn step_update_tasks() -> u32 {
    var tasks = first_layer_tasks();
    for (var k = 1u; k < LAYERS; k = k + 1u) {
        let l = network[k];
        tasks = tasks + (l.outputs + 3u) / 4u * ((l.inputs + 4u) / 4u);
    }
    return tasks;
}

fn first_layer_tasks() -> u32 {
    let first = network[0];
    return (first.outputs + 7u) / 8u * (first.inputs + 1u);
}

// Task `task` of step_update_tasks.
fn step_update_task(task: u32) {
    let across = (network[0].outputs + 7u) / 8u;
    if (task < first_layer_tasks()) {
        first_layer_update(task / across, (task % across) * 8u);
    } else {
        dense_block_update(task - first_layer_tasks());
    }
}
