// Layers 2..L of a training step for one batch row per invocation: the forward pass
// Ak = f(A(k-1) Wk + bk) for k = 2..L, then D_L with the row's loss, then the hidden deltas
// Dk = (D(k+1) W(k+1)^T) ⊙ f'(Sk) for k = L-1..1. These are linear_forward, output_delta and
// hidden_delta fused: every value a row needs was made by the same invocation, so one dispatch
// does the work of 2L - 1 and no barrier is needed. For the seed network (layers 2..4 are
// 64-32-16-10) the dispatches cost far more than the arithmetic: on lavapipe each of the seven
// it replaces took 100-220 µs, most of it the cost of a dispatch.
//
// bindings: step (B rows from row_start), network: per layer k = 1..L (index k - 1) its sizes,
//           activation f and where its tensors start in the buffers below (DenseLayer);
//           parameters: every [Wk; bk], (in + 1, out); activations: every Ak, (B, out), A1
//           written by sparse_forward.wgsl; deltas: every Dk, (B, out);
//           labels: one u32 digit per image; order: row r of the data set's order is image
//           order[r]; row_losses: per batch row, its squared errors summed over the classes
//           (sigmoid output) or -ln A_L[label] (softmax), which layers_weights_update.wgsl
//           adds up in row order.
// Each invocation produces four values of a row at a time, reading the four weights beside
// each other; indices past a layer's edge are clamped for reading and skipped for writing.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<storage, read> network: array<DenseLayer>;
@group(0) @binding(2) var<storage, read> parameters: array<f32>;
@group(0) @binding(3) var<storage, read_write> activations: array<f32>;
@group(0) @binding(4) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read> order: array<u32>;
@group(0) @binding(7) var<storage, read_write> row_losses: array<f32>;
// The same parameters read four at a time, for layers whose `out` is a multiple of 4 (every
// layer's parameters start on a vec4): one load instead of four.
@group(0) @binding(8) var<storage, read> parameters4: array<vec4<f32>>;

// Four neighbouring indices from `first`, the ones past `last` clamped to it.
fn four_from(first: u32, last: u32) -> vec4<u32> {
    return min(vec4<u32>(first, first + 1u, first + 2u, first + 3u), vec4<u32>(last));
}

// A row's values of every layer 1..L, one after another (UNITS, the sum of the layers' widths,
// is set when the pipeline is built). An invocation keeps its row's activations and deltas in
// two such arrays: in private memory, where every invocation reads the same index at once, a
// CPU-hosted Vulkan (lavapipe) reads them as one vector, where a storage read of each
// invocation's own row costs one load per invocation.
alias Units = array<f32, UNITS>;

// Ak's row m from A(k-1)'s (linear_forward.wgsl for one row); A(k-1) at `a[at..]`, Ak after it.
// For a softmax output f is the identity here; output_delta_row normalises the logits.
fn linear_forward_row(m: u32, k: u32, at: u32, a: ptr<function, Units>) {
    let l = network[k];
    let output = l.activations + m * l.outputs;
    let bias_row = l.parameters + l.inputs * l.outputs;
    for (var n0 = 0u; n0 < l.outputs; n0 = n0 + 4u) {
        let cols = four_from(n0, l.outputs - 1u);
        var s = vec4<f32>(parameters[bias_row + cols.x], parameters[bias_row + cols.y],
                          parameters[bias_row + cols.z], parameters[bias_row + cols.w]);
        if (l.outputs % 4u == 0u) {
            for (var i = 0u; i < l.inputs; i = i + 1u) {
                s = s + (*a)[at + i] * parameters4[(l.parameters + i * l.outputs + n0) / 4u];
            }
        } else {
            for (var i = 0u; i < l.inputs; i = i + 1u) {
                let w_row = l.parameters + i * l.outputs;
                s = s + (*a)[at + i]
                    * vec4<f32>(parameters[w_row + cols.x], parameters[w_row + cols.y],
                                parameters[w_row + cols.z], parameters[w_row + cols.w]);
            }
        }
        for (var j = 0u; j < min(4u, l.outputs - n0); j = j + 1u) {
            let value = activate(s[j], l.activation);
            (*a)[at + l.inputs + n0 + j] = value;
            activations[output + n0 + j] = value;
        }
    }
}

// D_L's row m and the row's loss, as output_delta.wgsl computes them for a whole batch; A_L
// and D_L at `at` in `a` and `d`.
fn output_delta_row(m: u32, at: u32, a: ptr<function, Units>, d: ptr<function, Units>) -> f32 {
    let l = network[arrayLength(&network) - 1u];
    let classes = l.outputs;
    let first = l.activations + m * classes;
    let delta = l.deltas + m * classes;
    let label = labels[order[step.row_start + m]];
    var loss = 0.0;
    if (l.activation == SOFTMAX) {
        var largest = (*a)[at];
        for (var c = 1u; c < classes; c = c + 1u) {
            largest = max(largest, (*a)[at + c]);
        }
        var total = 0.0;
        for (var c = 0u; c < classes; c = c + 1u) {
            let e = exp((*a)[at + c] - largest);
            (*a)[at + c] = e;
            total = total + e;
        }
        for (var c = 0u; c < classes; c = c + 1u) {
            let p = (*a)[at + c] / total;
            let value = p - select(0.0, 1.0, label == c);
            activations[first + c] = p;
            (*d)[at + c] = value;
            deltas[delta + c] = value;
            if (label == c) {
                loss = -log(max(p, PROBABILITY_FLOOR));
            }
        }
    } else {
        for (var c = 0u; c < classes; c = c + 1u) {
            let y = select(0.0, 1.0, label == c);
            let value = (*a)[at + c];
            let error = value - y;
            (*d)[at + c] = error * activation_derivative(value, SIGMOID);
            deltas[delta + c] = (*d)[at + c];
            loss = loss + error * error;
        }
    }
    return loss;
}

// D(k)'s row m (layer index k - 1) from D(k+1)'s (hidden_delta.wgsl for one row); both layers'
// values at `at` in `a` and `d`, layer k + 1's right after.
fn hidden_delta_row(m: u32, k: u32, at: u32, a: ptr<function, Units>, d: ptr<function, Units>) {
    let l = network[k - 1u];
    let next = network[k];
    let width = l.outputs;
    let next_at = at + width;
    let row = l.deltas + m * width;
    for (var n0 = 0u; n0 < width; n0 = n0 + 4u) {
        let cols = next.parameters + four_from(n0, width - 1u) * next.outputs;
        var p = vec4<f32>(0.0);
        for (var j = 0u; j < next.outputs; j = j + 1u) {
            p = p + (*d)[next_at + j]
                * vec4<f32>(parameters[cols.x + j], parameters[cols.y + j],
                            parameters[cols.z + j], parameters[cols.w + j]);
        }
        for (var c = 0u; c < min(4u, width - n0); c = c + 1u) {
            let value = p[c] * activation_derivative((*a)[at + n0 + c], l.activation);
            (*d)[at + n0 + c] = value;
            deltas[row + n0 + c] = value;
        }
    }
}

// Rows per workgroup, set when the pipeline is built.
override ROW_GROUP: u32 = 16u;

@compute @workgroup_size(ROW_GROUP)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = gid.x;
    if (m >= step.rows) {
        return;
    }
    var a: Units;
    var d: Units;
    let depth = arrayLength(&network);
    let first = network[0];
    for (var j = 0u; j < first.outputs; j = j + 1u) {
        a[j] = activations[first.activations + m * first.outputs + j];
    }
    // Where A(k-1) starts in `a`.
    var at = 0u;
    for (var k = 1u; k < depth; k = k + 1u) {
        linear_forward_row(m, k, at, &a);
        at = at + network[k].inputs;
    }
    row_losses[m] = output_delta_row(m, at, &a, &d);
    for (var k = depth - 1u; k > 0u; k = k - 1u) {
        at = at - network[k - 1u].outputs;
        hidden_delta_row(m, k, at, &a, &d);
    }
}
