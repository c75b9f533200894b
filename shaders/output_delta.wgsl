// D_L and the batch loss, fused: both read A_L once. Mirrors cpu/mod.rs:
// - sigmoid output: D_L = (A_L - Y) ⊙ f'(S_L) (output_delta) and the loss mean((Y - A_L)^2)
//   over B x classes (squared_error_sum);
// - softmax output: A_L = softmax(S_L) row by row, written in place over the logits that
//   linear_forward left (softmax_forward, subtracting the row max first), D_L = A_L - Y
//   (softmax_cross_entropy_delta) and the loss mean(-ln A_L[label]) over B (cross_entropy_sum).
//
// bindings: step (batch rows, loss slot), layer (outputs = classes, activation),
//           activation: A_L, (B, classes); labels: one u32 digit per image of the data set;
//           order: u32 per image, the data set's current order;
//           delta: D_L, (B, classes); losses: one f32 per batch since the last read-back
// One workgroup: the loss is a sum over the whole batch, reduced in workgroup memory, so the
// losses stay on the GPU until the epoch ends.

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read_write> activation: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> order: array<u32>;
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read_write> losses: array<f32>;

const THREADS: u32 = 256u;
var<workgroup> partial: array<f32, THREADS>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) lid: u32) {
    let classes = layer.outputs;
    var loss = 0.0;
    var terms = f32(step.rows);
    if (layer.activation == SOFTMAX) {
        for (var row = lid; row < step.rows; row = row + THREADS) {
            let label = labels[order[step.row_start + row]];
            let first = row * classes;
            softmax_row(first, classes);
            for (var c = 0u; c < classes; c = c + 1u) {
                let p = activation[first + c];
                delta[first + c] = p - one_hot(c, label);
                if (label == c) {
                    loss = loss + cross_entropy(p);
                }
            }
        }
    } else {
        terms = f32(step.rows * classes);
        for (var e = lid; e < step.rows * classes; e = e + THREADS) {
            let row = e / classes;
            let y = one_hot(e % classes, labels[order[step.row_start + row]]);
            let a = activation[e];
            delta[e] = (a - y) * activation_derivative(a, SIGMOID);
            loss = loss + squared_error(a, y);
        }
    }
    partial[lid] = loss;
    workgroupBarrier();
    for (var half = THREADS / 2u; half > 0u; half = half / 2u) {
        if (lid < half) {
            partial[lid] = partial[lid] + partial[lid + half];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        losses[step.loss_slot] = partial[0] / terms;
    }
}
