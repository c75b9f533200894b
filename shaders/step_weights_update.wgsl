// The second of a training step's two dispatches (the `whole` schedule): every layer's
// weights and biases move by the gradient scale * [A(k-1), 1]^T Dk, layer 1 a pixel row and 8
// columns per invocation (first_layer_update.wgsl), layers 2..L in 4 x 4 blocks
// (dense_blocks_update.wgsl), and the first invocation adds up the batch's loss.
//
// bindings: as layers_weights_update.wgsl, with `layer` layer 1's sizes and constants; and
//           images: every training image's bytes, four to a u32 (the first in the low bits);
//           order: row r of the data set's order is image order[r]

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

@group(0) @binding(9) var<storage, read> images: array<u32>;
@group(0) @binding(10) var<storage, read> order: array<u32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x == 0u) {
        losses[step.loss_slot] = batch_loss();
    }
    if (gid.x < step_update_tasks()) {
        step_update_task(gid.x);
    }
}
