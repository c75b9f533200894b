// Shared by every kernel (prepended at compile time): the per-step and per-layer uniforms and
// the sigmoid, written as SEED.md and mlp-core's cpu.rs write them.
//
// Layer parameters live in one buffer per layer, (inputs + 1) x outputs, row-major: rows
// 0..inputs are the weights Wk, row `inputs` is the bias bk. The bias is then the weight of a
// constant input 1, and one kernel updates both.

// Which rows of the data set this dispatch works on; bound with a dynamic offset per step.
struct Step {
    row_start: u32,  // first image of the batch in its data set
    rows: u32,       // B, the images in the batch
    loss_slot: u32,  // where output_delta writes this batch's loss
    pad: u32,
}

struct Layer {
    inputs: u32,         // in
    outputs: u32,        // out
    learning_rate: f32,
    pad: u32,
}

fn sigmoid(s: f32) -> f32 {
    return 1.0 / (1.0 + exp(-s));
}

// f'(s) through the activation a = f(s).
fn sigmoid_derivative(a: f32) -> f32 {
    return a * (1.0 - a);
}
