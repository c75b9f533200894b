// The optimiser step of cpu/mod.rs (gradient_descent_update, momentum_update or adam_update) for
// one parameter, shared by the kernels that update parameters (prepended to them at compile
// time). It uses the `parameters` and `state` buffers that each such kernel binds:
//           parameters: [Wk; bk], (in + 1, out), updated in place;
//           state: the optimiser's, shaped like the parameters: the velocity (momentum), or
//           the first moments then the second moments (Adam); unused by gradient descent

// The optimiser, fixed when the pipeline is built (one of the codes of common.wgsl): the
// branches of the others are then compiled out. On lavapipe a switch on the uniform instead
// cost a third of the first layer's update.
override OPTIMISER: u32 = 0u;

// Moves parameters[parameter] by gradient g as the optimiser says; its state is at
// state[moment] (and, for Adam, the second moment `moments` further on). `decay` is the
// weight decay lambda for a weight, 0 for a bias: added to the gradient as L2 (l2_weight_decay)
// for gradient descent and momentum, taken off the weight first for Adam
// (decoupled_weight_decay).
fn update_at(parameter: u32, moment: u32, moments: u32, g_loss: f32, decay: f32) {
    let lr = step.learning_rate;
    var p = parameters[parameter];
    var g = g_loss;
    if (OPTIMISER == ADAM) {
        p = p - lr * (decay * p);
    } else {
        g = g + decay * p;
    }
    switch OPTIMISER {
        case MOMENTUM: {
            let velocity = layer.decay1 * state[moment] + g;
            state[moment] = velocity;
            parameters[parameter] = p - lr * velocity;
        }
        case ADAM: {
            let second = moment + moments;
            let m = layer.decay1 * state[moment] + (1.0 - layer.decay1) * g;
            let v = layer.decay2 * state[second] + (1.0 - layer.decay2) * g * g;
            state[moment] = m;
            state[second] = v;
            parameters[parameter] = p
                - lr * (m * step.correction1) / (sqrt(v * step.correction2) + layer.epsilon);
        }
        default: {
            parameters[parameter] = p - lr * g;
        }
    }
}

// Moves parameters[index] of the one layer bound (`layer`), whose state is bound likewise;
// its rows before the last (the bias) are weights.
fn update(index: u32, g: f32) {
    let decay = select(0.0, step.weight_decay, index < layer.inputs * layer.outputs);
    update_at(index, index, (layer.inputs + 1u) * layer.outputs, g, decay);
}
