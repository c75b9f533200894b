// Ãk = Ak ⊙ Mk / (1 - p) for a hidden layer k (docs/SEED.md's E2d): dropout_forward of
// cpu/regularisation.rs, for the per-layer schedules (forward_backward_row.wgsl drops its
// rows itself). Ak's slot in `activations` gets the dropped value, which the next layer's
// forward pass and its weights' gradient read; the undropped one waits in Dk's slot, unused
// until hidden_delta.wgsl takes its f' there and overwrites it with Dk.
//
// bindings: step (B rows, the dropout's constants), layer: layer k's (outputs = width, number
//           k), activations: Ak, (B, out), made by the layer's forward kernel; deltas: Dk's
//           slot, (B, out)

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read_write> activations: array<f32>;
@group(0) @binding(3) var<storage, read_write> deltas: array<f32>;

@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let n = gid.x;
    let m = gid.y;
    if (n >= layer.outputs || m >= step.rows) {
        return;
    }
    let index = m * layer.outputs + n;
    let value = activations[index];
    deltas[index] = value;
    activations[index] = value * dropout_factor(layer.number, m, n);
}
