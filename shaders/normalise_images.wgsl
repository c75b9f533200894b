// A0 = the batch's images as f32, each byte divided by 255 (SEED.md, "Data"), taken in the
// data set's current order (the file's order, or this epoch's shuffle). Only the first
// layer's weight update reads A0; the forward pass reads the images' lit pixels directly
// (sparse_forward.wgsl).
// The images stay on the GPU as bytes, four to a u32 (47 MB for MNIST's training set, under
// the 128 MiB storage-binding limit that f32 would exceed); this kernel unpacks one batch.
//
// bindings: step (rows of the batch), layer (inputs = pixels per image),
//           images: (count * pixels) bytes packed in u32, little-endian,
//           order: u32 per image, row r of the order is image order[r],
//           activation: A0, (B, pixels)
// Invocation (x, y) writes pixels 4x..4x + 3 of row y: no division by the image size, which
// cost more than the unpacking itself on lavapipe.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> images: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> activation: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pixels = layer.inputs;
    let row = gid.y;
    let first = gid.x * 4u;
    if (row >= step.rows || first >= pixels) {
        return;
    }
    let image_start = order[step.row_start + row] * pixels;
    for (var p = first; p < min(first + 4u, pixels); p = p + 1u) {
        let byte = image_start + p;
        let word = images[byte / 4u];
        activation[row * pixels + p] = f32((word >> ((byte % 4u) * 8u)) & 0xffu) / 255.0;
    }
}
