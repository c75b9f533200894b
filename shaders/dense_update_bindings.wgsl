// The bindings of the kernels that update several layers in one dispatch
// (layers_weights_update.wgsl, step_weights_update.wgsl), and the reads
// dense_blocks_update.wgsl takes through them.
//
// bindings: step (B rows, learning rate, gradient scale, Adam's corrections, loss slot),
//           layer: the first layer's, for the optimiser's constants (the same for every layer),
//           network: per layer k = 1..L its sizes and offsets (DenseLayer; LAYERS, L, is set
//           when the pipeline is built);
//           parameters: every [Wk; bk], (in + 1, out), updated in place;
//           state: the optimiser's, each layer's shaped as in optimiser_update.wgsl;
//           row_losses: per batch row; losses: one f32 per batch since the last read-back;
//           activations4: every Ak, (B, out); deltas4: every Dk, (B, out)

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<uniform> network: array<DenseLayer, LAYERS>;
@group(0) @binding(3) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(4) var<storage, read_write> state: array<f32>;
@group(0) @binding(5) var<storage, read> row_losses: array<f32>;
@group(0) @binding(6) var<storage, read_write> losses: array<f32>;
// The activations and deltas as vec4s (every layer's tensors start on one), so that a block's
// four values on one vec4 are one load; a single value is a component of its vec4. One binding
// each keeps the kernel within WebGPU's 8 storage buffers with the whole step's.
@group(0) @binding(7) var<storage, read> activations4: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> deltas4: array<vec4<f32>>;

fn activation_at(i: u32) -> f32 {
    return activations4[i / 4u][i % 4u];
}

fn delta_at(i: u32) -> f32 {
    return deltas4[i / 4u][i % 4u];
}

// The four values from i, a multiple of 4.
fn activation4(i: u32) -> vec4<f32> {
    return activations4[i / 4u];
}

fn delta4(i: u32) -> vec4<f32> {
    return deltas4[i / 4u];
}
