// [W1; b1] moves by the gradient scale * [A0, 1]^T D1, as weights_update.wgsl moves any layer,
// with A0's zero pixels skipped: row p of W1 sums only the batch rows where pixel p is lit
// (pixel_columns.wgsl lists them). Row `in` is the bias, whose input is 1 on every row.
//
// bindings: step (B rows, learning rate, gradient scale, Adam's corrections),
//           layer (in = pixels, out, the optimiser's constants),
//           columns, spans: the batch's lit pixels by pixel: pixel p's pairs (batch row, byte)
//           are columns[first..first + length], (first, length) = spans[step.pixel_spans + p]
//           (made by pixel_columns.wgsl, or once for every batch where the order is fixed);
//           delta: D1, (B, out); parameters and state: as optimiser_update.wgsl
// Each invocation sums one row's 8 columns in registers; the invocations side by side along
// x share the row, so they run the same loop.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> columns: array<vec2<u32>>;
@group(0) @binding(3) var<storage, read> spans: array<vec2<u32>>;
@group(0) @binding(4) var<storage, read> delta: array<f32>;
@group(0) @binding(5) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(6) var<storage, read_write> state: array<f32>;
// D1 read four at a time as `delta4`, where `out` is a multiple of 8 so that every row starts
// on a vec4: bound at 7 by sparse_weights_update_d1_storage.wgsl or, where it fits a uniform
// binding, by sparse_weights_update_d1_uniform.wgsl.

// D1's columns `cols` of batch row r.
fn delta_columns(r: u32, cols: vec4<u32>) -> vec4<f32> {
    let d_row = r * layer.outputs;
    return vec4<f32>(delta[d_row + cols.x], delta[d_row + cols.y],
                     delta[d_row + cols.z], delta[d_row + cols.w]);
}

// Pixel p's input x in [0, 1] on the batch row of `lit` (row, byte), through the input
// dropout as sparse_forward.wgsl applied it.
fn pixel_input(lit: vec2<u32>, p: u32) -> f32 {
    let row_hash = dropout_row_hash(step.input_dropout_seed, step.dropout_step, 0u, lit.x);
    let factor = dropout_unit_factor(row_hash, p, step.input_dropout_threshold,
                                     step.input_dropout_scale);
    return f32(lit.y) / 255.0 * factor;
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 8u;
    let p = gid.y;
    let n_in = layer.inputs;
    let n_out = layer.outputs;
    if (n0 >= n_out || p > n_in) {
        return;
    }
    let low = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(n_out - 1u));
    let high = min(low + vec4<u32>(4u), vec4<u32>(n_out - 1u));
    var g_low = vec4<f32>(0.0);
    var g_high = vec4<f32>(0.0);
    if (p == n_in) {
        for (var r = 0u; r < step.rows; r = r + 1u) {
            g_low = g_low + delta_columns(r, low);
            g_high = g_high + delta_columns(r, high);
        }
    } else {
        let span = spans[step.pixel_spans + p];
        let last = span.x + span.y;
        if (n_out % 8u == 0u) {
            for (var e = span.x; e < last; e = e + 1u) {
                let lit = columns[e];
                let x = pixel_input(lit, p);
                let at = (lit.x * n_out + n0) / 4u;
                g_low = g_low + x * delta4[at];
                g_high = g_high + x * delta4[at + 1u];
            }
        } else {
            for (var e = span.x; e < last; e = e + 1u) {
                let lit = columns[e];
                let x = pixel_input(lit, p);
                g_low = g_low + x * delta_columns(lit.x, low);
                g_high = g_high + x * delta_columns(lit.x, high);
            }
        }
    }
    for (var j = 0u; j < min(8u, n_out - n0); j = j + 1u) {
        var g = g_low[j % 4u];
        if (j >= 4u) {
            g = g_high[j % 4u];
        }
        update(p * n_out + n0 + j, step.gradient_scale * g);
    }
}
