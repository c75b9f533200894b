// The first of a training step's two dispatches (the `whole` schedule): one invocation per
// batch row takes the row through layer 1 over its image's lit pixels (sparse_forward.wgsl
// for one row), then through layers 2..L and back through every delta down to D1
// (row_forward_backward.wgsl's forward_backward_row, which this file is appended to).
// step_weights_update.wgsl then updates every layer in the second.
//
// bindings: as row_forward_backward.wgsl, with `network` holding every layer's offsets in the
//           whole parameter buffer, which `parameters` binds (W1 included); and
//           entries: each image's lit pixels, one u32 each, the byte in the top 8 bits and
//           the pixel index in the low 24, pixels increasing; starts: image i's entries are
//           starts[i]..starts[i + 1]

@group(0) @binding(8) var<storage, read> entries: array<u32>;
@group(0) @binding(9) var<storage, read> starts: array<u32>;

// A1's row m into `a` and `activations`: b1 plus x · W1's row p for each lit pixel p of the
// row's image, in increasing order, then f. Under shifts each pixel moves by the row's offsets
// first (those moved out are left out); under input dropout x goes through the row's masks at
// the moved pixel, as sparse_forward.wgsl does.
fn first_layer_row(m: u32, a: ptr<function, Units>) {
    let l = network[0];
    let bias_row = l.parameters + l.inputs * l.outputs;
    for (var j = 0u; j < l.outputs; j = j + 1u) {
        (*a)[j] = weight(bias_row + j);
    }
    let image = order[step.row_start + m];
    let offsets = shift_offsets(step.shift_seed, step.shift_pixels, step.dropout_step, m);
    let row_hash = dropout_row_hash(step.input_dropout_seed, step.dropout_step, 0u, m);
    for (var e = starts[image]; e < starts[image + 1u]; e = e + 1u) {
        let entry = entries[e];
        let p = moved_pixel(entry & 0xffffffu, offsets, l.inputs);
        if (p == NOT_IN_IMAGE) {
            continue;
        }
        let factor = dropout_unit_factor(row_hash, p, step.input_dropout_threshold,
                                         step.input_dropout_scale);
        let x = f32(entry >> 24u) / 255.0 * factor;
        let w_row = l.parameters + p * l.outputs;
        for (var j = 0u; j < l.outputs; j = j + 1u) {
            (*a)[j] = (*a)[j] + x * weight(w_row + j);
        }
    }
    for (var j = 0u; j < l.outputs; j = j + 1u) {
        (*a)[j] = activate((*a)[j], l.activation);
        activations[l.activations + m * l.outputs + j] = (*a)[j];
    }
}

@compute @workgroup_size(ROW_GROUP)
fn step_main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.x;
    if (m >= step.rows) {
        return;
    }
    var a: Units;
    var d: Units;
    first_layer_row(m, &a);
    forward_backward_row(m, &a, &d);
}
