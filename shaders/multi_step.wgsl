// Several consecutive training steps in one dispatch of one workgroup (the `multistep`
// schedule): for each step, every batch row through every layer and back
// (first_layer_row.wgsl, forward_backward_row.wgsl), a barrier, every layer's update
// (first_layer_update.wgsl, dense_blocks_update.wgsl) and the batch's loss, a barrier, and on to
// the next step. It runs on one compute unit, but pays a dispatch's cost once for up to
// STEP_SLOTS steps: for a network as small as the seed's, a dispatch can cost more than a step's
// arithmetic. Each step computes what step_forward_backward.wgsl and step_weights_update.wgsl
// compute, in the same order.
//
// bindings: run: the first step of this dispatch's run, bound at its slot's dynamic offset,
//           whose `slot` and `run_end` say which slots of `steps` the run is;
//           steps: every slot of the buffer of steps, STEP_STRIDE bytes apart;
//           layer: layer 1's sizes and the optimiser's constants; network: every layer's
//           sizes and offsets (DenseLayer); parameters: every [Wk; bk], updated in place;
//           state: the optimiser's; activations, deltas: every Ak and Dk, (B, out);
//           labels: one u32 per image; order: row r of the data set's order is image order[r];
//           losses: one f32 per batch since the last read-back; images: every training
//           image's bytes, four to a u32.
// STEP_GROUP, the workgroup's invocations, and MAX_ROWS, the largest batch, are set when the
// pipeline is built: invocation i takes batch rows i, i + STEP_GROUP, ..., and the rows'
// losses stay in workgroup memory.

struct StepSlot {
    step: Step,
    pad: array<vec4<u32>, STEP_PAD>,
}

@group(0) @binding(0) var<uniform> run: Step;
@group(0) @binding(1) var<uniform> steps: array<StepSlot, STEP_SLOTS>;
@group(0) @binding(2) var<uniform> layer: Layer;
@group(0) @binding(3) var<uniform> network: array<DenseLayer, LAYERS>;
@group(0) @binding(4) var<storage, read_write> parameters: array<f32>;
@group(0) @binding(5) var<storage, read_write> state: array<f32>;
@group(0) @binding(6) var<storage, read_write> activations: array<f32>;
@group(0) @binding(7) var<storage, read_write> deltas: array<f32>;
@group(0) @binding(8) var<storage, read> labels: array<u32>;
@group(0) @binding(9) var<storage, read> order: array<u32>;
@group(0) @binding(10) var<storage, read_write> losses: array<f32>;
@group(0) @binding(11) var<storage, read> images: array<u32>;

var<workgroup> row_losses: array<f32, MAX_ROWS>;
// The step being run, which the shared functions read as the other kernels' bound `step`.
var<private> step: Step;

fn weight(i: u32) -> f32 {
    return parameters[i];
}

// Parameters i..i + 3.
fn weights4(i: u32) -> vec4<f32> {
    return vec4<f32>(parameters[i], parameters[i + 1u], parameters[i + 2u], parameters[i + 3u]);
}

fn activation_at(i: u32) -> f32 {
    return activations[i];
}

fn delta_at(i: u32) -> f32 {
    return deltas[i];
}

fn activation4(i: u32) -> vec4<f32> {
    return vec4<f32>(activations[i], activations[i + 1u], activations[i + 2u],
                     activations[i + 3u]);
}

fn delta4(i: u32) -> vec4<f32> {
    return vec4<f32>(deltas[i], deltas[i + 1u], deltas[i + 2u], deltas[i + 3u]);
}

@compute @workgroup_size(STEP_GROUP)
fn main(@builtin(local_invocation_index) invocation: u32) {
    var a: Units;
    var d: Units;
    for (var s = run.slot; s < run.run_end; s = s + 1u) {
        step = steps[s].step;
        for (var m = invocation; m < step.rows; m = m + STEP_GROUP) {
            first_layer_row(m, &a);
            forward_backward_row(m, &a, &d);
        }
        // Every row's activations, deltas and loss are written before any update reads them.
        storageBarrier();
        workgroupBarrier();
        if (invocation == 0u) {
            losses[step.loss_slot] = batch_loss();
        }
        let tasks = step_update_tasks();
        for (var task = invocation; task < tasks; task = task + STEP_GROUP) {
            step_update_task(task);
        }
        // Every parameter is updated before the next step's rows read it.
        storageBarrier();
        workgroupBarrier();
    }
}
