// A1 = f(A0 W1 + b1) for the first layer, reading only each image's lit pixels: a zero pixel
// adds nothing to the sum (mlp-core's sparse.rs does the same on the CPU). Four in five MNIST
// pixels are 0, so this does a fifth of linear_forward's work and needs no unpacked A0.
//
// bindings: step (B rows from row_start), layer (in = pixels, out, activation f),
//           entries: each image's lit pixels, one u32 each: the byte in the top 8 bits, the
//           pixel index in the low 24, pixels increasing;
//           starts: image i's entries are starts[i]..starts[i + 1];
//           order: row r of the data set's order is image order[r];
//           parameters: [W1; b1], (in + 1, out); output: A1, (B, out)
// Each invocation sums one row's 8 columns in registers. The invocations of a row are
// neighbours along x, so they run the same loop (one image's pixels) side by side.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> entries: array<u32>;
@group(0) @binding(3) var<storage, read> starts: array<u32>;
@group(0) @binding(4) var<storage, read> order: array<u32>;
@group(0) @binding(5) var<storage, read> parameters: array<f32>;
@group(0) @binding(6) var<storage, read_write> output: array<f32>;
// The same parameters read four at a time, where `out` is a multiple of 8 so that every row
// of W1 starts on a vec4: one load per four weights instead of four.
@group(0) @binding(7) var<storage, read> parameters4: array<vec4<f32>>;

// W1's columns `cols` of row (pixel) p.
fn weights_columns(p: u32, cols: vec4<u32>) -> vec4<f32> {
    let w_row = p * layer.outputs;
    return vec4<f32>(parameters[w_row + cols.x], parameters[w_row + cols.y],
                     parameters[w_row + cols.z], parameters[w_row + cols.w]);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 8u;
    let m = gid.y;
    let n_out = layer.outputs;
    if (n0 >= n_out || m >= step.rows) {
        return;
    }
    let low = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(n_out - 1u));
    let high = min(low + vec4<u32>(4u), vec4<u32>(n_out - 1u));
    var s_low = weights_columns(layer.inputs, low);
    var s_high = weights_columns(layer.inputs, high);
    let image = order[step.row_start + m];
    if (n_out % 8u == 0u) {
        for (var e = starts[image]; e < starts[image + 1u]; e = e + 1u) {
            let entry = entries[e];
            let x = f32(entry >> 24u) / 255.0;
            let at = ((entry & 0xffffffu) * n_out + n0) / 4u;
            s_low = s_low + x * parameters4[at];
            s_high = s_high + x * parameters4[at + 1u];
        }
    } else {
        for (var e = starts[image]; e < starts[image + 1u]; e = e + 1u) {
            let entry = entries[e];
            let x = f32(entry >> 24u) / 255.0;
            s_low = s_low + x * weights_columns(entry & 0xffffffu, low);
            s_high = s_high + x * weights_columns(entry & 0xffffffu, high);
        }
    }
    for (var j = 0u; j < min(8u, n_out - n0); j = j + 1u) {
        var s = s_low[j % 4u];
        if (j >= 4u) {
            s = s_high[j % 4u];
        }
        output[m * n_out + n0 + j] = activate(s, layer.activation);
    }
}
