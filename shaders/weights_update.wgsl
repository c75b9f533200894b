// [Wk; bk] moves by the gradient scale * [A(k-1), 1]^T Dk: weights_gradient, bias_gradient and
// the optimiser update of cpu/mod.rs (gradient_descent_update, momentum_update or adam_update),
// fused. The gradient is never stored: each invocation sums its 4 x 4 block over the batch in
// registers and applies it. Row `in` of the parameters is the bias, whose "input" is the
// constant 1, so its gradient is the column sum of Dk.
//
// bindings: step (B rows, learning rate, gradient scale, Adam's corrections),
//           layer (in, out, the optimiser's constants),
//           input: A(k-1), (B, in); delta: Dk, (B, out);
//           parameters: [Wk; bk], (in + 1, out), updated in place;
//           state: the optimiser's, shaped like the parameters (optimiser_update.wgsl)

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> delta: array<f32>;
@group(0) @binding(4) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let i0 = gid.y * 4u;
    let n_in = layer.inputs;
    let n_out = layer.outputs;
    if (n0 >= n_out || i0 > n_in) {
        return;
    }
    let cols = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(n_out - 1u));
    let inputs = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u);
    // Columns of A(k-1) to read, clamped; `is_bias` marks the constant-1 column, `is_past`
    // rows beyond the bias, which are read as 0 and never written.
    let safe = min(inputs, vec4<u32>(n_in - 1u));
    let is_bias = inputs == vec4<u32>(n_in);
    let is_past = inputs > vec4<u32>(n_in);
    var g0 = vec4<f32>(0.0);
    var g1 = vec4<f32>(0.0);
    var g2 = vec4<f32>(0.0);
    var g3 = vec4<f32>(0.0);
    for (var r = 0u; r < step.rows; r = r + 1u) {
        let a_row = r * n_in;
        let d_row = r * n_out;
        let d = vec4<f32>(delta[d_row + cols.x], delta[d_row + cols.y],
                          delta[d_row + cols.z], delta[d_row + cols.w]);
        var a = vec4<f32>(input[a_row + safe.x], input[a_row + safe.y],
                          input[a_row + safe.z], input[a_row + safe.w]);
        a = select(a, vec4<f32>(1.0), is_bias);
        a = select(a, vec4<f32>(0.0), is_past);
        g0 = g0 + a.x * d;
        g1 = g1 + a.y * d;
        g2 = g2 + a.z * d;
        g3 = g3 + a.w * d;
    }
    let gradients = array<vec4<f32>, 4>(g0, g1, g2, g3);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let row = i0 + i;
        if (row > n_in) {
            break;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = n0 + j;
            if (n < n_out) {
                update(row * n_out + n, step.gradient_scale * gradients[i][j]);
            }
        }
    }
}
