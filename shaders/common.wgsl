// Shared by every kernel (prepended at compile time): the per-step and per-layer uniforms, the
// activation functions and their derivatives, written as mlp-core's cpu/mod.rs writes them.
//
// Layer parameters live in one buffer per layer, (inputs + 1) x outputs, row-major: rows
// 0..inputs are the weights Wk, row `inputs` is the bias bk. The bias is then the weight of a
// constant input 1, and one kernel updates both.

// Which rows this dispatch works on and how the step moves the parameters; bound with a
// dynamic offset per step.
struct Step {
    row_start: u32,      // first row of the batch in the data set's order
    rows: u32,           // B, the images in the batch
    loss_slot: u32,      // where output_delta writes this batch's loss
    pixel_spans: u32,    // where this batch's per-pixel spans start (sparse_weights_update.wgsl)
    learning_rate: f32,
    gradient_scale: f32, // 1 when gradients are summed over the batch (the seed), 1/B for the mean
    correction1: f32,    // Adam's 1 / (1 - beta1^t) for this step t
    correction2: f32,    // Adam's 1 / (1 - beta2^t)
    weight_decay: f32,   // lambda: L2 for gradient descent and momentum, decoupled for Adam
    dropout_threshold: u32, // a unit is kept where its hash's top 24 bits reach this; 0: no dropout
    dropout_seed: u32,
    dropout_step: u32,   // the step t, from 1, whose masks and shifts these are
    dropout_scale: f32,  // 1 / (1 - p), a kept unit's factor
    input_dropout_threshold: u32, // the same for the input pixels (layer 0 of the masks)
    input_dropout_seed: u32,
    input_dropout_scale: f32,
    shift_pixels: u32,   // the largest move of a training image along each axis; 0: no shifts
    shift_seed: u32,
    image_cols: u32,     // pixels per image row
    slot: u32,           // this step's slot in the buffer of steps (multi_step.wgsl)
    run_end: u32,        // the slot after the last step that one multi_step dispatch runs
    pad0: u32,
    pad1: u32,
}

// hash32 of cpu/mod.rs, in the same u32 arithmetic: the dropout masks' hash.
fn hash32(x_in: u32) -> u32 {
    var x = x_in;
    x = x ^ (x >> 16u);
    x = x * 0x7feb352du;
    x = x ^ (x >> 15u);
    x = x * 0x846ca68bu;
    x = x ^ (x >> 16u);
    return x;
}

// dropout_row_hash of cpu/mod.rs: the hash of (seed, step, layer, row) that a unit's goes on
// from.
fn dropout_row_hash(seed: u32, step_index: u32, layer: u32, row: u32) -> u32 {
    var h = hash32(seed);
    h = hash32(h ^ step_index);
    h = hash32(h ^ layer);
    return hash32(h ^ row);
}

// shift_offsets of cpu/augmentation.rs: how far batch row `row` of step `step_index` moves,
// (dx, dy), each in -pixels..=pixels.
fn shift_offsets(seed: u32, pixels: u32, step_index: u32, row: u32) -> vec2<i32> {
    if (pixels == 0u) {
        return vec2<i32>(0, 0);
    }
    var h = hash32(seed);
    h = hash32(h ^ step_index);
    h = hash32(h ^ row);
    let span = 2u * pixels + 1u;
    return vec2<i32>(i32(hash32(h ^ 0u) % span), i32(hash32(h ^ 1u) % span)) - i32(pixels);
}

// shifted_pixel of cpu/augmentation.rs: where pixel `pixel` of an image of `pixels` pixels,
// `cols` a row, lands when the image moves by `offsets`; NOT_IN_IMAGE where it leaves.
const NOT_IN_IMAGE: u32 = 0xffffffffu;
fn shifted_pixel(pixel: u32, offsets: vec2<i32>, pixels: u32, cols: u32) -> u32 {
    let row = i32(pixel / cols) + offsets.y;
    let col = i32(pixel % cols) + offsets.x;
    if (row < 0 || row >= i32(pixels / cols) || col < 0 || col >= i32(cols)) {
        return NOT_IN_IMAGE;
    }
    return u32(row) * cols + u32(col);
}

// Pixel `pixel` of an image of `pixels` as a training step's shift moves it by `offsets`:
// itself without shifts, NOT_IN_IMAGE where it leaves the image. Needs a `step` binding.
fn moved_pixel(pixel: u32, offsets: vec2<i32>, pixels: u32) -> u32 {
    if (step.shift_pixels == 0u) {
        return pixel;
    }
    return shifted_pixel(pixel, offsets, pixels, step.image_cols);
}

// A unit's dropout factor from its row's hash: `scale` where the unit is kept, else 0; 1
// where `threshold` is 0 (no dropout, as in evaluation).
fn dropout_unit_factor(row_hash: u32, unit: u32, threshold: u32, scale: f32) -> f32 {
    if (threshold == 0u) {
        return 1.0;
    }
    return select(0.0, scale, (hash32(row_hash ^ unit) >> 8u) >= threshold);
}

// Under dropout of the hidden units (docs/SEED.md's E2d, E4d; dropout_keeps of
// cpu/regularisation.rs): unit `unit` of hidden layer `layer` (from 1) on batch row `row` has
// the factor 1 / (1 - p) where the hash of (seed, step, layer, row, unit) keeps it, 0 where it
// drops it. Needs a `step` binding.
fn dropout_factor(layer: u32, row: u32, unit: u32) -> f32 {
    let h = dropout_row_hash(step.dropout_seed, step.dropout_step, layer, row);
    return dropout_unit_factor(h, unit, step.dropout_threshold, step.dropout_scale);
}

fn dropping() -> bool {
    return step.dropout_threshold > 0u;
}

// Values of Layer.activation and Layer.input_activation.
const SIGMOID: u32 = 0u;
const RELU: u32 = 1u;
const TANH: u32 = 2u;
// Output layer only: linear_forward writes the logits S_L; output_delta and evaluate turn each
// row into softmax probabilities in place.
const SOFTMAX: u32 = 3u;

// The optimisers, as optimiser_update.wgsl's OPTIMISER (fixed when a pipeline is built).
const GRADIENT_DESCENT: u32 = 0u;
const MOMENTUM: u32 = 1u;
const ADAM: u32 = 2u;

struct Layer {
    inputs: u32,           // in
    outputs: u32,          // out
    activation: u32,       // f of this layer's output Ak
    input_activation: u32, // f that made A(k-1) (hidden_delta of layer k-1 reads it here)
    decay1: f32,           // Adam's beta1, or the momentum mu
    decay2: f32,           // Adam's beta2
    epsilon: f32,
    number: u32,           // k, from 1: the layer of the dropout masks of its output
}

// One layer k of the whole network, for the kernels that work on several layers in one
// dispatch: its sizes and f, and where its tensors start (in f32s) in the buffers that hold
// every layer's.
struct DenseLayer {
    inputs: u32,
    outputs: u32,
    activation: u32,  // f of Ak (SOFTMAX for a softmax output layer)
    parameters: u32,  // [Wk; bk], (in + 1, out)
    state: u32,       // the optimiser's state, shaped as in optimiser_update.wgsl
    activations: u32, // Ak, (B, out)
    deltas: u32,      // Dk, (B, out)
    pad: u32,
}

// The smallest probability the cross-entropy takes the logarithm of (PROBABILITY_FLOOR of cpu/mod.rs).
const PROBABILITY_FLOOR: f32 = 1e-30;

// −ln p with p floored at PROBABILITY_FLOOR, as cross_entropy_sum does. A p that is not finite
// (a diverged network) is returned as it is, so that the batch loss is not finite either and
// training stops on it: max() may drop a NaN, and the test is on the bits because a compiler
// may assume that floats are never NaN.
fn cross_entropy(p: f32) -> f32 {
    if ((bitcast<u32>(p) & 0x7f800000u) == 0x7f800000u) {
        return p;
    }
    return -log(max(p, PROBABILITY_FLOOR));
}

// Y's entry for class `c` of an image labelled `label`: one-hot (one_hot of cpu/mod.rs).
fn one_hot(c: u32, label: u32) -> f32 {
    return select(0.0, 1.0, c == label);
}

// One term (A_L - Y)^2 of the squared error (squared_error_sum of cpu/mod.rs).
fn squared_error(a: f32, y: f32) -> f32 {
    let e = a - y;
    return e * e;
}

fn sigmoid(s: f32) -> f32 {
    return 1.0 / (1.0 + exp(-s));
}

// tanh written through exp(-2|s|) <= 1, which cannot overflow: a driver's built-in tanh may
// compute (e^s - e^-s) / (e^s + e^-s) and return NaN for large |s|.
fn bounded_tanh(s: f32) -> f32 {
    let e = exp(-2.0 * abs(s));
    return sign(s) * (1.0 - e) / (1.0 + e);
}

fn activate(s: f32, kind: u32) -> f32 {
    switch kind {
        case SIGMOID: { return sigmoid(s); }
        case RELU: { return max(s, 0.0); }
        case TANH: { return bounded_tanh(s); }
        default: { return s; }
    }
}

// f'(s) through the activation a = f(s) that the forward pass kept.
fn activation_derivative(a: f32, kind: u32) -> f32 {
    switch kind {
        case SIGMOID: { return a * (1.0 - a); }
        case RELU: { return select(0.0, 1.0, a > 0.0); }
        case TANH: { return 1.0 - a * a; }
        default: { return 1.0; }
    }
}
