// The bindings of the kernels that take each batch row through layers 2..L and back
// (row_forward_backward.wgsl, step_forward_backward.wgsl), the reads
// forward_backward_row.wgsl takes through them, and their workgroup's size.
//
// bindings: step (B rows from row_start), network: per layer k = 1..L (index k - 1) its sizes,
//           activation f and where its tensors start in the buffers below (DenseLayer), its
//           parameters counted from where `parameters` is bound;
//           parameters: [Wk; bk], (in + 1, out), of layers 2..L, read as vec4s (every layer's
//           start on one); a uniform array where they fit in a uniform binding, which
//           lavapipe reads far faster than storage (its kernel's declaration picks the file); activations: every Ak,
//           (B, out), A1 written by sparse_forward.wgsl; deltas: every Dk, (B, out);
//           labels: one u32 digit per image; order: row r of the data set's order is image
//           order[r]; row_losses: per batch row, its squared errors summed over the classes
//           (sigmoid output) or -ln A_L[label] (softmax), which layers_weights_update.wgsl
//           adds up in row order.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> network: array<DenseLayer, LAYERS>;
// binding 2, `parameters`: row_parameters_storage.wgsl or row_parameters_uniform.wgsl.
@group(0) @binding(3) var<storage, read_write> activations: array<f32>;
@group(0) @binding(4) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(5) var<storage, read> labels: array<u32>;
@group(0) @binding(6) var<storage, read> order: array<u32>;
@group(0) @binding(7) var<storage, read_write> row_losses: array<f32>;

// Parameter i (counted in f32s from where `parameters` is bound).
fn weight(i: u32) -> f32 {
    return parameters[i / 4u][i % 4u];
}

// Parameters i..i + 3, where i is a multiple of 4.
fn weights4(i: u32) -> vec4<f32> {
    return parameters[i / 4u];
}

// Rows per workgroup (an invocation a row), set when the pipeline is built.
override ROW_GROUP: u32 = 16u;
