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
// Each invocation sums one row's 4 columns in registers. The invocations of a row are
// neighbours along x, so they run the same loop (one image's pixels) side by side.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> entries: array<u32>;
@group(0) @binding(3) var<storage, read> starts: array<u32>;
@group(0) @binding(4) var<storage, read> order: array<u32>;
@group(0) @binding(5) var<storage, read> parameters: array<f32>;
@group(0) @binding(6) var<storage, read_write> output: array<f32>;
// The same parameters read four at a time, where `out` is a multiple of 4 so that every row
// of W1 starts on a vec4: one load per entry instead of four.
@group(0) @binding(7) var<storage, read> parameters4: array<vec4<f32>>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n0 = gid.x * 4u;
    let m = gid.y;
    let n_out = layer.outputs;
    if (n0 >= n_out || m >= step.rows) {
        return;
    }
    let cols = min(vec4<u32>(n0, n0 + 1u, n0 + 2u, n0 + 3u), vec4<u32>(n_out - 1u));
    let bias_row = layer.inputs * n_out;
    var sum = vec4<f32>(parameters[bias_row + cols.x], parameters[bias_row + cols.y],
                        parameters[bias_row + cols.z], parameters[bias_row + cols.w]);
    let image = order[step.row_start + m];
    if (n_out % 4u == 0u) {
        for (var e = starts[image]; e < starts[image + 1u]; e = e + 1u) {
            let entry = entries[e];
            let x = f32(entry >> 24u) / 255.0;
            sum = sum + x * parameters4[((entry & 0xffffffu) * n_out + n0) / 4u];
        }
    } else {
        for (var e = starts[image]; e < starts[image + 1u]; e = e + 1u) {
            let entry = entries[e];
            let x = f32(entry >> 24u) / 255.0;
            let w_row = (entry & 0xffffffu) * n_out;
            sum = sum + x * vec4<f32>(parameters[w_row + cols.x], parameters[w_row + cols.y],
                                      parameters[w_row + cols.z], parameters[w_row + cols.w]);
        }
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        let n = n0 + j;
        if (n < n_out) {
            output[m * n_out + n] = activate(sum[j], layer.activation);
        }
    }
}
