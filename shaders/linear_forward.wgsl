// Ak = f(A(k-1) Wk + bk): linear_forward and activation_forward of cpu/mod.rs, fused so that Sk
// never goes to memory. For a softmax output layer f is the identity here: output_delta and
// evaluate normalise the logits, which needs the whole row.
//
// bindings: step (B rows), layer (in, out, activation f),
//           input: A(k-1), (B, in); parameters: [Wk; bk], (in + 1, out); output: Ak, (B, out)
// Each invocation computes a 4 x 4 block of Ak in registers (4 rows, 4 columns), reading its
// operands straight from memory with no workgroup barriers, which is what a CPU-hosted Vulkan
// (lavapipe) runs fastest; linear_forward_tiled.wgsl is the workgroup-memory variant for real
// GPUs (docs/performance.md has both measured). Indices past the edge are clamped for reading
// and skipped for writing, so any B, in, out works.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read_write> input: array<f32>;
@group(0) @binding(3) var<storage, read> parameters: array<f32>;
@group(0) @binding(4) var<storage, read_write> output: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 4u;
    let n_in = layer.inputs;
    let n_out = layer.outputs;
    if (n0 >= n_out || m0 >= step.rows) {
        return;
    }
    let last_row = step.rows - 1u;
    let cols = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(n_out - 1u));
    let rows = min(vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u), vec4<u32>(last_row)) * n_in;

    let bias_row = n_in * n_out;
    let bias = vec4<f32>(parameters[bias_row + cols.x], parameters[bias_row + cols.y],
                         parameters[bias_row + cols.z], parameters[bias_row + cols.w]);
    var s0 = bias;
    var s1 = bias;
    var s2 = bias;
    var s3 = bias;
    for (var k = 0u; k < n_in; k = k + 1u) {
        let w_row = k * n_out;
        let w = vec4<f32>(parameters[w_row + cols.x], parameters[w_row + cols.y],
                          parameters[w_row + cols.z], parameters[w_row + cols.w]);
        s0 = s0 + input[rows.x + k] * w;
        s1 = s1 + input[rows.y + k] * w;
        s2 = s2 + input[rows.z + k] * w;
        s3 = s3 + input[rows.w + k] * w;
    }
    let sums = array<vec4<f32>, 4>(s0, s1, s2, s3);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = m0 + i;
        if (m >= step.rows) {
            break;
        }
        for (var j = 0u; j < 4u; j = j + 1u) {
            let n = n0 + j;
            if (n < n_out) {
                output[m * n_out + n] = activate(sums[i][j], layer.activation);
            }
        }
    }
}
