// The batch's lit pixels regrouped by pixel (the compressed sparse columns of A0): for each
// pixel, the batch rows where it is lit, in increasing order, with its byte there. The first
// layer's weight update (sparse_weights_update.wgsl) then sums only the rows where a pixel is
// lit, as mlp-core's sparse.rs does on the CPU. No atomics: each invocation owns one pixel and
// walks the batch in order, so the result is the same on every run.
//
// bindings: step (B rows from row_start), layer (inputs = pixels per image),
//           masks: per image, ceil(pixels / 32) words; bit p % 32 of word p / 32 is set where
//           pixel p is lit;
//           ranks: per image and word, the index in `entries` of its first lit pixel (or where
//           it would be), so that one read finds a pixel's byte;
//           entries: each image's lit pixels (as sparse_forward.wgsl reads them);
//           order: row r of the data set's order is image order[r];
//           columns: pixel p's pairs (batch row, byte), at p * B and on;
//           spans: per pixel, where its pairs start in `columns` and how many rows light it
// Under shifts (step.shift_pixels), pixel p of row r is the image's pixel that the row's
// shift_offsets move to p, and rows whose shift brings nothing to p leave it out.
// In the data set's file order without shifts the backend builds the same lists for every batch once, at
// upload, and this kernel does not run (GpuBackend's PixelLists).

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> masks: array<u32>;
@group(0) @binding(3) var<storage, read> ranks: array<u32>;
@group(0) @binding(4) var<storage, read> entries: array<u32>;
@group(0) @binding(5) var<storage, read> order: array<u32>;
@group(0) @binding(6) var<storage, read_write> columns: array<vec2<u32>>;
@group(0) @binding(7) var<storage, read_write> spans: array<vec2<u32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixels = layer.inputs;
    let p = gid.x;
    if (p >= pixels) {
        return;
    }
    let words = (pixels + 31u) / 32u;
    let first = p * step.rows;
    var length = 0u;
    for (var r = 0u; r < step.rows; r = r + 1u) {
        let image = order[step.row_start + r];
        // Under shifts, p of row r is the image's pixel that the row's shift moves to p.
        let offsets = shift_offsets(step.shift_seed, step.shift_pixels, step.dropout_step, r);
        let source = moved_pixel(p, -offsets, pixels);
        if (source == NOT_IN_IMAGE) {
            continue;
        }
        let source_word = source / 32u;
        let source_bit = 1u << (source % 32u);
        let word = masks[image * words + source_word];
        if ((word & source_bit) != 0u) {
            // The pixel's entry: after the image's lit pixels of the earlier words, and those
            // below its bit in its own word.
            let entry = ranks[image * words + source_word]
                + countOneBits(word & (source_bit - 1u));
            columns[first + length] = vec2<u32>(r, entries[entry] >> 24u);
            length = length + 1u;
        }
    }
    spans[p] = vec2<u32>(first, length);
}
