// Per image of a validation chunk: the predicted digit (argmax of A_L, the first on ties, as
// argmax_rows of cpu/mod.rs) and the image's loss: the squared error sum (Y - A_L)^2 of its row for
// a sigmoid output, or -ln A_L[label] for a softmax output, whose row is first turned into
// probabilities in place (so that a read-back of A_L gets them). The host adds the rows up in
// f64 after the one read-back per evaluation.
//
// bindings: step (chunk rows, row_start in the validation set), layer (outputs = classes,
//           activation), activation: A_L, (B, classes); labels: u32 per validation image;
//           predictions: u32 per validation image; image_losses: f32 per validation image, its loss

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read_write> activation: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> predictions: array<u32>;
@group(0) @binding(5) var<storage, read_write> image_losses: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if (row >= step.rows) {
        return;
    }
    let classes = layer.outputs;
    let image = step.row_start + row;
    let first = row * classes;
    if (layer.activation == SOFTMAX) {
        softmax_row(first, classes);
    }
    // The argmax of the probabilities, as the CPU takes it, so that ties agree.
    var best = 0u;
    for (var c = 1u; c < classes; c = c + 1u) {
        if (activation[first + c] > activation[first + best]) {
            best = c;
        }
    }
    predictions[image] = best;
    var loss = 0.0;
    if (layer.activation == SOFTMAX) {
        loss = cross_entropy(activation[first + labels[image]]);
    } else {
        for (var c = 0u; c < classes; c = c + 1u) {
            loss = loss + squared_error(activation[first + c], one_hot(c, labels[image]));
        }
    }
    image_losses[image] = loss;
}
