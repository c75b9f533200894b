// One batch row's pass through layers 2..L and back, for the kernels that give each row one
// invocation (row_forward_backward.wgsl, step_forward_backward.wgsl, multi_step.wgsl): the
// forward pass Ak = f(A(k-1) Wk + bk) for k = 2..L, then D_L with the row's loss, then the
// hidden deltas Dk = (D(k+1) W(k+1)^T) ⊙ f'(Sk) for k = L-1..1. linear_forward, output_delta
// and hidden_delta for one row: every value a row needs is made by the same invocation.
//
// The including kernel declares `step`, `network` (DenseLayer, LAYERS of them), `activations`
// and `deltas` (every Ak and Dk as f32s, written), `labels`, `order` and `row_losses`, and the
// reads weight(i) and weights4(i) of the parameters; LAYERS and UNITS are set when the
// pipeline is built. The forward pass produces four values of a row at a time, reading the four
// weights beside each other; indices past a layer's edge are clamped for reading and skipped
// for writing. The deltas read each row of W(k+1) four weights at a time.

// Four neighbouring indices from `first`, the ones past `last` clamped to it.
fn four_from(first: u32, last: u32) -> vec4<u32> {
    return min(vec4<u32>(first, first + 1u, first + 2u, first + 3u), vec4<u32>(last));
}

// A row's values of every layer 1..L, one after another (UNITS, the sum of the layers' widths,
// is set when the pipeline is built). An invocation keeps its row's activations and deltas in
// two such arrays: in private memory, where every invocation reads the same index at once, a
// CPU-hosted Vulkan (lavapipe) reads them as one vector, where a storage read of each
// invocation's own row costs one load per invocation.
//
// So the three functions below are second bodies of linear_forward.wgsl's, output_delta.wgsl's
// and hidden_delta.wgsl's equations, written apart from them because they read and write these
// private arrays where those read storage: a WGSL function takes a pointer to function memory
// or to a storage binding, not either, and the per-batch kernels' blocks span four rows where
// these make one. The parity tests hold every schedule to the reference's functions.
alias Units = array<f32, UNITS>;

// Ak's row m from A(k-1)'s (linear_forward.wgsl for one row); A(k-1) at `a[at..]`, Ak after it.
// For a softmax output f is the identity here; output_delta_row normalises the logits.
fn linear_forward_row(m: u32, k: u32, at: u32, a: ptr<function, Units>, d: ptr<function, Units>) {
    let l = network[k];
    let output = l.activations + m * l.outputs;
    let bias_row = l.parameters + l.inputs * l.outputs;
    for (var n0 = 0u; n0 < l.outputs; n0 = n0 + 4u) {
        let cols = four_from(n0, l.outputs - 1u);
        var s: vec4<f32>;
        if (l.outputs % 4u == 0u) {
            s = weights4(bias_row + n0);
            for (var i = 0u; i < l.inputs; i = i + 1u) {
                s = s + (*a)[at + i] * weights4(l.parameters + i * l.outputs + n0);
            }
        } else {
            s = vec4<f32>(weight(bias_row + cols.x), weight(bias_row + cols.y),
                          weight(bias_row + cols.z), weight(bias_row + cols.w));
            for (var i = 0u; i < l.inputs; i = i + 1u) {
                let w_row = l.parameters + i * l.outputs;
                s = s + (*a)[at + i]
                    * vec4<f32>(weight(w_row + cols.x), weight(w_row + cols.y),
                                weight(w_row + cols.z), weight(w_row + cols.w));
            }
        }
        for (var j = 0u; j < min(4u, l.outputs - n0); j = j + 1u) {
            let slot = at + l.inputs + n0 + j;
            var value = activate(s[j], l.activation);
            if (dropping() && k + 1u < LAYERS) {
                // The undropped value waits in d's slot, unused until this layer's delta,
                // for f'; the next layer and the weights' gradient read the dropped one.
                (*d)[slot] = value;
                value = value * dropout_factor(k + 1u, m, n0 + j);
            }
            (*a)[slot] = value;
            activations[output + n0 + j] = value;
        }
    }
}

// D_L's row m and the row's loss, as output_delta.wgsl computes them for a whole batch; A_L
// and D_L at `at` in `a` and `d`.
fn output_delta_row(m: u32, at: u32, a: ptr<function, Units>, d: ptr<function, Units>) -> f32 {
    let l = network[LAYERS - 1u];
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
            let value = p - one_hot(c, label);
            activations[first + c] = p;
            (*d)[at + c] = value;
            deltas[delta + c] = value;
            if (label == c) {
                loss = cross_entropy(p);
            }
        }
    } else {
        for (var c = 0u; c < classes; c = c + 1u) {
            let y = one_hot(c, label);
            let value = (*a)[at + c];
            (*d)[at + c] = (value - y) * activation_derivative(value, SIGMOID);
            deltas[delta + c] = (*d)[at + c];
            loss = loss + squared_error(value, y);
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
    // Unit n's sum runs along row n of W(k+1), j in increasing order as on the CPU.
    for (var n = 0u; n < width; n = n + 1u) {
        let w_row = next.parameters + n * next.outputs;
        var p = 0.0;
        if (next.outputs % 4u == 0u) {
            for (var j = 0u; j < next.outputs; j = j + 4u) {
                let w = weights4(w_row + j);
                p = p + (*d)[next_at + j] * w.x;
                p = p + (*d)[next_at + j + 1u] * w.y;
                p = p + (*d)[next_at + j + 2u] * w.z;
                p = p + (*d)[next_at + j + 3u] * w.w;
            }
        } else {
            for (var j = 0u; j < next.outputs; j = j + 1u) {
                p = p + (*d)[next_at + j] * weight(w_row + j);
            }
        }
        var value: f32;
        if (dropping()) {
            value = p * activation_derivative((*d)[at + n], l.activation)
                * dropout_factor(k, m, n);
        } else {
            value = p * activation_derivative((*a)[at + n], l.activation);
        }
        (*d)[at + n] = value;
        deltas[row + n] = value;
    }
}

// Row m of layers 2..L forward and back, from A1 in `a`: under dropout A1 is dropped first
// (the undropped value kept in `d` for f', the dropped one written back for layer 2's and W2's
// gradient to read); then every layer forward, the output delta with the row's loss, and every
// hidden delta down to D1.
fn forward_backward_row(m: u32, a: ptr<function, Units>, d: ptr<function, Units>) {
    let depth = LAYERS;
    let first = network[0];
    if (dropping() && depth > 1u) {
        for (var j = 0u; j < first.outputs; j = j + 1u) {
            (*d)[j] = (*a)[j];
            (*a)[j] = (*a)[j] * dropout_factor(1u, m, j);
            activations[first.activations + m * first.outputs + j] = (*a)[j];
        }
    }
    // Where A(k-1) starts in `a`.
    var at = 0u;
    for (var k = 1u; k < depth; k = k + 1u) {
        linear_forward_row(m, k, at, a, d);
        at = at + network[k].inputs;
    }
    row_losses[m] = output_delta_row(m, at, a, d);
    for (var k = depth - 1u; k > 0u; k = k - 1u) {
        at = at - network[k - 1u].outputs;
        hidden_delta_row(m, k, at, a, d);
    }
}
