// The first of a training step's two dispatches (the `whole` schedule): one invocation per
// batch row takes the row through layer 1 over its image's lit pixels (first_layer_row.wgsl),
// then through layers 2..L and back through every delta down to D1 (forward_backward_row.wgsl).
// step_weights_update.wgsl then updates every layer in the second.
//
// bindings: row_pass_bindings.wgsl's (prepended), with `network` holding every layer's
//           offsets in the whole parameter buffer, which `parameters` binds (W1 included),
//           read from storage; and images: every training image's bytes, four to a u32

@group(0) @binding(8) var<storage, read> images: array<u32>;

@compute @workgroup_size(ROW_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.x;
    if (m >= step.rows) {
        return;
    }
    var a: Units;
    var d: Units;
    first_layer_row(m, &a);
    forward_backward_row(m, &a, &d);
}
