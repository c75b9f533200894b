// Dk = (D(k+1) W(k+1)^T) ⊙ f'(Sk): hidden_delta of cpu/mod.rs.
//
// bindings: step (B rows), layer: layer k+1's sizes (inputs = out_k, outputs = next) and
//           input_activation, the f that made Ak,
//           next_delta: D(k+1), (B, next); next_parameters: [W(k+1); b(k+1)], (out_k + 1, next),
//           of which only the weights are read; activation: Ak, (B, out_k); delta: Dk, (B, out_k)
// Each invocation computes a 4 x 4 block of Dk, as linear_forward does. Under dropout, Ak is
// the dropped one and the undropped waits in Dk's slot (dropout_forward.wgsl).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read_write> next_delta: array<f32>;
@group(0) @binding(3) var<storage, read> next_parameters: array<f32>;
@group(0) @binding(4) var<storage, read> activation: array<f32>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m0 = gid.y * 4u;
    let width = layer.inputs;   // out_k
    let next = layer.outputs;
    if (n0 >= width || m0 >= step.rows) {
        return;
    }
    let cols = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(width - 1u)) * next;
    let rows = min(vec4<u32>(m0, m0 + 1u, m0 + 2u, m0 + 3u), vec4<u32>(step.rows - 1u)) * next;
    var p0 = vec4<f32>(0.0);
    var p1 = vec4<f32>(0.0);
    var p2 = vec4<f32>(0.0);
    var p3 = vec4<f32>(0.0);
    for (var j = 0u; j < next; j = j + 1u) {
        let w = vec4<f32>(next_parameters[cols.x + j], next_parameters[cols.y + j],
                          next_parameters[cols.z + j], next_parameters[cols.w + j]);
        p0 = p0 + next_delta[rows.x + j] * w;
        p1 = p1 + next_delta[rows.y + j] * w;
        p2 = p2 + next_delta[rows.z + j] * w;
        p3 = p3 + next_delta[rows.w + j] * w;
    }
    let products = array<vec4<f32>, 4>(p0, p1, p2, p3);
    for (var i = 0u; i < 4u; i = i + 1u) {
        let m = m0 + i;
        if (m >= step.rows) {
            break;
        }
        for (var c = 0u; c < 4u; c = c + 1u) {
            let n = n0 + c;
            if (n < width) {
                let index = m * width + n;
                if (dropping()) {
                    // E4d: f' of the undropped Ak, which dropout_forward.wgsl left in Dk's
                    // slot, then Dk through layer k's masks.
                    delta[index] = products[i][c]
                        * activation_derivative(delta[index], layer.input_activation)
                        * dropout_factor(layer.number - 1u, m, n);
                } else {
                    delta[index] = products[i][c]
                        * activation_derivative(activation[index], layer.input_activation);
                }
            }
        }
    }
}
