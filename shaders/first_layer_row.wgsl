// Layer 1 of one batch row, A1 = f(X W1 + b1) over the row's lit pixels, read from the
// image's bytes, for the kernels that give each row one invocation through every layer
// (step_forward_backward.wgsl, multi_step.wgsl).
//
// The including kernel declares what forward_backward_row.wgsl and image_bytes.wgsl need.

// A1's row m into `a` and `activations`: b1 plus x · W1's row p for each lit pixel p of the
// row's image, in increasing order (the order of sparse_forward.wgsl's lists), then f. Under
// shifts each pixel moves by the row's offsets first (those moved out are left out); under
// input dropout x goes through the row's masks at the moved pixel, as sparse_forward.wgsl
// does.
fn first_layer_row(m: u32, a: ptr<function, Units>) {
    let l = network[0];
    let bias_row = l.parameters + l.inputs * l.outputs;
    for (var j = 0u; j < l.outputs; j = j + 1u) {
        (*a)[j] = weight(bias_row + j);
    }
    let image = order[step.row_start + m];
    let offsets = shift_offsets(step.shift_seed, step.shift_pixels, step.dropout_step, m);
    let row_hash = dropout_row_hash(step.input_dropout_seed, step.dropout_step, 0u, m);
    // The image's bytes a word of four at a time, a word of unlit pixels skipped whole.
    let first = image * l.inputs;
    let end = first + l.inputs;
    for (var word = first / 4u; word * 4u < end; word = word + 1u) {
        let bytes = images[word];
        if (bytes == 0u) {
            continue;
        }
        for (var i = max(word * 4u, first); i < min(word * 4u + 4u, end); i = i + 1u) {
            let byte = (bytes >> (8u * (i % 4u))) & 0xffu;
            if (byte == 0u) {
                continue;
            }
            let p = moved_pixel(i - first, offsets, l.inputs);
            if (p == NOT_IN_IMAGE) {
                continue;
            }
            let factor = dropout_unit_factor(row_hash, p, step.input_dropout_threshold,
                                             step.input_dropout_scale);
            let x = f32(byte) / 255.0 * factor;
            add_scaled_weights(a, l.parameters + p * l.outputs, x, l.outputs);
        }
    }
    for (var j = 0u; j < l.outputs; j = j + 1u) {
        (*a)[j] = activate((*a)[j], l.activation);
        activations[l.activations + m * l.outputs + j] = (*a)[j];
    }
}

// a[0..outputs] += x · the `outputs` weights from w_row: four at a time where the row is whole
// vec4s, each unit's sum in the same order either way. Fewer iterations also keep a row within
// llvmpipe's 65,535 loop iterations per invocation (docs/gpu.md).
fn add_scaled_weights(a: ptr<function, Units>, w_row: u32, x: f32, outputs: u32) {
    if (outputs % 4u == 0u) {
        for (var j = 0u; j < outputs; j = j + 4u) {
            let w = weights4(w_row + j);
            (*a)[j] = (*a)[j] + x * w.x;
            (*a)[j + 1u] = (*a)[j + 1u] + x * w.y;
            (*a)[j + 2u] = (*a)[j + 2u] + x * w.z;
            (*a)[j + 3u] = (*a)[j + 3u] + x * w.w;
        }
    } else {
        for (var j = 0u; j < outputs; j = j + 1u) {
            (*a)[j] = (*a)[j] + x * weight(w_row + j);
        }
    }
}
