// Layers 2..L of a training step for one batch row per invocation (forward_backward_row.wgsl,
// which is prepended): linear_forward, output_delta and hidden_delta fused, so one dispatch
// does the work of 2L - 1 and no barrier is needed. For a network as small as the seed's
// (layers 2..4 are 64-32-16-10) a dispatch costs more than its arithmetic, so fewer dispatches
// is what makes a step fast (docs/gpu.md).
//
// bindings: row_pass_bindings.wgsl's, which is prepended.

@compute @workgroup_size(ROW_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.x;
    if (m >= step.rows) {
        return;
    }
    var a: Units;
    var d: Units;
    // A1 as sparse_forward.wgsl made it.
    let first = network[0];
    for (var j = 0u; j < first.outputs; j = j + 1u) {
        a[j] = activations[first.activations + m * first.outputs + j];
    }
    forward_backward_row(m, &a, &d);
}
