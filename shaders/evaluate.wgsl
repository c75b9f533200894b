// Per image of a validation chunk: the predicted digit (argmax of A_L, the first on ties, as
// argmax_rows of cpu.rs) and the squared error sum (Y - A_L)^2 of its row. The host adds the
// rows up in f64 after the one read-back per evaluation.
//
// bindings: step (chunk rows, row_start in the validation set), layer (outputs = classes),
//           activation: A_L, (B, classes); labels: u32 per validation image;
//           predictions: u32 per validation image; errors: f32 per validation image

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> layer: Layer;
@group(0) @binding(2) var<storage, read> activation: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> predictions: array<u32>;
@group(0) @binding(5) var<storage, read_write> errors: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row = gid.x;
    if (row >= step.rows) {
        return;
    }
    let classes = layer.outputs;
    let image = step.row_start + row;
    var best = 0u;
    var squared_error = 0.0;
    for (var c = 0u; c < classes; c = c + 1u) {
        let a = activation[row * classes + c];
        if (a > activation[row * classes + best]) {
            best = c;
        }
        let y = select(0.0, 1.0, labels[image] == c);
        squared_error = squared_error + (a - y) * (a - y);
    }
    predictions[image] = best;
    errors[image] = squared_error;
}
