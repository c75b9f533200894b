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
// A training step with shifts (step.shift_pixels) moves each row's pixels by the row's
// shift_offsets first, leaving out those moved past the edge, as cpu/augmentation.rs does.
// Each invocation sums one row's 8 columns in registers. The invocations of a row are
// neighbours along x, so they run the same loop (one image's pixels) side by side.
// Where `out` is a multiple of 8, W1's rows are read four weights at a time from four pieces
// of PIECE_PIXELS rows each (a constant of the prelude the kernel's builder writes): where W1 fits in four
// uniform bindings, they are read as such, which lavapipe reads far faster than storage;
// otherwise every piece is the whole of W1 and PIECE_PIXELS is past the last pixel. The row's pixels are visited piece by piece, in four loops with no branch
// inside, since lavapipe runs a branch inside a loop slowly.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> entries: array<u32>;
@group(0) @binding(3) var<storage, read> starts: array<u32>;
@group(0) @binding(4) var<storage, read> order: array<u32>;
@group(0) @binding(5) var<storage, read> parameters: array<f32>;
@group(0) @binding(6) var<storage, read_write> output: array<f32>;
// W1's rows c * PIECE_PIXELS.. as vec4s, for c = 0..3, are read by w1_piece0..3: from four
// uniform bindings (sparse_forward_w1_uniform.wgsl) or one storage binding of the whole of W1
// (sparse_forward_w1_storage.wgsl), which keeps the kernel within WebGPU's 8 storage buffers.

// The first of the entries `first..last` (pixels increasing) whose pixel is `pixel` or more.
fn first_entry_from(pixel: u32, first: u32, last: u32) -> u32 {
    var low = first;
    var high = last;
    while (low < high) {
        let middle = (low + high) / 2u;
        if ((entries[middle] & 0xffffffu) < pixel) {
            low = middle + 1u;
        } else {
            high = middle;
        }
    }
    return low;
}

// The input dropout's hash of this invocation's row (dropout_row_hash for layer 0).
var<private> row_hash: u32;

// A lit entry's byte as the input x in [0, 1] at `pixel` (its own, or where the row's shift
// moved it), through the input dropout while training.
fn lit_input(entry: u32, pixel: u32) -> f32 {
    let factor = dropout_unit_factor(row_hash, pixel, step.input_dropout_threshold,
                                     step.input_dropout_scale);
    return f32(entry >> 24u) / 255.0 * factor;
}

// Where a lit entry's pixel's 8 columns from n0 start, in vec4s from the start of piece
// `piece` of W1.
fn piece_at(entry: u32, piece: u32, n0: u32) -> u32 {
    return (((entry & 0xffffffu) - piece * PIECE_PIXELS) * layer.outputs + n0) / 4u;
}

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
    row_hash = dropout_row_hash(step.input_dropout_seed, step.dropout_step, 0u, m);
    // A shift moves the pixels across the pieces' bounds: the general loop reads W1 whole.
    if (n_out % 8u == 0u && step.shift_pixels == 0u) {
        let last = starts[image + 1u];
        var e = starts[image];
        var to = first_entry_from(PIECE_PIXELS, e, last);
        for (; e < to; e = e + 1u) {
            let entry = entries[e];
            let at = piece_at(entry, 0u, n0);
            s_low = s_low + lit_input(entry, entry & 0xffffffu) * w1_piece0(at);
            s_high = s_high + lit_input(entry, entry & 0xffffffu) * w1_piece0(at + 1u);
        }
        to = first_entry_from(2u * PIECE_PIXELS, e, last);
        for (; e < to; e = e + 1u) {
            let entry = entries[e];
            let at = piece_at(entry, 1u, n0);
            s_low = s_low + lit_input(entry, entry & 0xffffffu) * w1_piece1(at);
            s_high = s_high + lit_input(entry, entry & 0xffffffu) * w1_piece1(at + 1u);
        }
        to = first_entry_from(3u * PIECE_PIXELS, e, last);
        for (; e < to; e = e + 1u) {
            let entry = entries[e];
            let at = piece_at(entry, 2u, n0);
            s_low = s_low + lit_input(entry, entry & 0xffffffu) * w1_piece2(at);
            s_high = s_high + lit_input(entry, entry & 0xffffffu) * w1_piece2(at + 1u);
        }
        for (; e < last; e = e + 1u) {
            let entry = entries[e];
            let at = piece_at(entry, 3u, n0);
            s_low = s_low + lit_input(entry, entry & 0xffffffu) * w1_piece3(at);
            s_high = s_high + lit_input(entry, entry & 0xffffffu) * w1_piece3(at + 1u);
        }
    } else {
        let offsets = shift_offsets(step.shift_seed, step.shift_pixels, step.dropout_step, m);
        for (var e = starts[image]; e < starts[image + 1u]; e = e + 1u) {
            let entry = entries[e];
            let p = moved_pixel(entry & 0xffffffu, offsets, layer.inputs);
            if (p == NOT_IN_IMAGE) {
                continue;
            }
            let x = lit_input(entry, p);
            s_low = s_low + x * weights_columns(p, low);
            s_high = s_high + x * weights_columns(p, high);
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
