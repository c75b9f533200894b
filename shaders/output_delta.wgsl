// D_L = (A_L - Y) ⊙ f'(S_L), and the batch loss mean((Y - A_L)^2), fused: both read A_L once.
// Mirrors output_delta and squared_error_sum of cpu.rs.
//
// bindings: step (batch rows, loss slot), layer (outputs = classes),
//           activation: A_L, (B, classes); labels: one u32 digit per image of the data set;
//           delta: D_L, (B, classes); losses: one f32 per batch since the last read-back
// One workgroup: the loss is a sum over the whole batch, reduced in workgroup memory, so the
// losses stay on the GPU until the epoch ends.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> activation: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> delta: array<f32>;
@group(0) @binding(5) var<storage, read_write> losses: array<f32>;

const THREADS: u32 = 256u;
var<workgroup> partial: array<f32, THREADS>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    let classes = layer.outputs;
    let count = step.rows * classes;
    var squared_error = 0.0;
    for (var e = lid; e < count; e = e + THREADS) {
        let row = e / classes;
        let y = select(0.0, 1.0, labels[step.row_start + row] == e % classes);
        let a = activation[e];
        delta[e] = (a - y) * sigmoid_derivative(a);
        squared_error = squared_error + (a - y) * (a - y);
    }
    partial[lid] = squared_error;
    workgroupBarrier();
    for (var half = THREADS / 2u; half > 0u; half = half / 2u) {
        if (lid < half) {
            partial[lid] = partial[lid] + partial[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        losses[step.loss_slot] = partial[0] / f32(count);
    }
}
