// [Wk; bk] moves by the gradient scale * [A(k-1), 1]^T Dk for one layer k:
// weights_update_block.wgsl for each 4 x 4 block of the layer's parameters, one per invocation.
//
// bindings: step (B rows, learning rate, gradient scale, Adam's corrections),
//           layer (in, out, the optimiser's constants),
//           input: A(k-1), (B, in); delta: Dk, (B, out);
//           parameters: [Wk; bk], (in + 1, out), updated in place;
//           state: the optimiser's, shaped like the parameters (optimiser_update.wgsl)
// Each binding is the layer's own region, so every offset into it is 0.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> input: array<f32>;
@group(0) @binding(3) var<storage, read> delta: array<f32>;
@group(0) @binding(4) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;

fn activation_at(i: u32) -> f32 {
    return input[i];
}

fn delta_at(i: u32) -> f32 {
    return delta[i];
}

fn activation4(i: u32) -> vec4<f32> {
    return vec4<f32>(input[i], input[i + 1u], input[i + 2u], input[i + 3u]);
}

fn delta4(i: u32) -> vec4<f32> {
    return vec4<f32>(delta[i], delta[i + 1u], delta[i + 2u], delta[i + 3u]);
}

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if (gid.x * 4u >= layer.outputs || gid.y * 4u > layer.inputs) {
        return;
    }
    let here = DenseLayer(layer.inputs, layer.outputs, layer.activation, 0u, 0u, 0u, 0u, 0u);
    weights_update_block(here, 0u, gid.x, gid.y);
}
