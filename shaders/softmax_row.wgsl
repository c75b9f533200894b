// A_L = softmax(S_L) for one row, in place (softmax_forward of cpu/mod.rs): the `classes`
// logits from `first` of the `activation` binding become probabilities. Subtracting the row's
// largest value first keeps every exp in (0, 1]. Joined to the kernels that declare a
// read_write `activation` binding (output_delta.wgsl, evaluate.wgsl); forward_backward_row.wgsl
// keeps its rows in private arrays and writes the same steps there.
fn softmax_row(first: u32, classes: u32) {
    var largest = activation[first];
    for (var c = 1u; c < classes; c = c + 1u) {
        largest = max(largest, activation[first + c]);
    }
    var total = 0.0;
    for (var c = 0u; c < classes; c = c + 1u) {
        let e = exp(activation[first + c] - largest);
        activation[first + c] = e;
        total = total + e;
    }
    for (var c = 0u; c < classes; c = c + 1u) {
        activation[first + c] = activation[first + c] / total;
    }
}
