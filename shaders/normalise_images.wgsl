// A0 = the batch's images as f32, each byte divided by 255 (SEED.md, "Data"), taken in the
// data set's current order (the file's order, or this epoch's shuffle).
// The images stay on the GPU as bytes, four to a u32 (47 MB for MNIST's training set, under
// the 128 MiB storage-binding limit that f32 would exceed); this kernel unpacks one batch.
//
// bindings: step (rows of the batch), layer (inputs = pixels per image),
//           images: (count * pixels) bytes packed in u32, little-endian,
//           order: u32 per image, row r of the order is image order[r],
//           activation: A0, (B, pixels)
// Each invocation writes four consecutive values: one invocation per value spent more time
// starting invocations than unpacking on lavapipe.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> images: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> activation: array<f32>;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let pixels = layer.inputs;
    let count = step.rows * pixels;
    let first = (gid.x + gid.y * groups.x * 256u) * 4u;
    for (var index = first; index < min(first + 4u, count); index = index + 1u) {
        let image = order[step.row_start + index / pixels];
        let byte = image * pixels + index % pixels;
        let word = images[byte / 4u];
        activation[index] = f32((word >> ((byte % 4u) * 8u)) & 0xffu) / 255.0;
    }
}
