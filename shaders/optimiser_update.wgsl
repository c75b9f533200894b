// The optimiser step of cpu.rs (gradient_descent_update, momentum_update or adam_update) for
// one parameter, shared by the kernels that update parameters (prepended to them at compile
// time). It uses the `parameters` and `state` buffers that each such kernel binds:
//           parameters: [Wk; bk], (in + 1, out), updated in place;
//           state: the optimiser's, shaped like the parameters: the velocity (momentum), or
//           the first moments then the second moments (Adam); unused by gradient descent

// Moves parameters[index] by gradient g as the layer's optimiser says.
fn update(index: u32, g: f32) {
    let lr = step.learning_rate;
    switch layer.optimiser {
        case MOMENTUM: {
            let velocity = layer.beta1 * state[index] + g;
            state[index] = velocity;
            parameters[index] = parameters[index] - lr * velocity;
        }
        case ADAM: {
            let second = (layer.inputs + 1u) * layer.outputs + index;
            let m = layer.beta1 * state[index] + (1.0 - layer.beta1) * g;
            let v = layer.beta2 * state[second] + (1.0 - layer.beta2) * g * g;
            state[index] = m;
            state[second] = v;
            parameters[index] = parameters[index]
                - lr * (m * step.correction1) / (sqrt(v * step.correction2) + layer.epsilon);
        }
        default: {
            parameters[index] = parameters[index] - lr * g;
        }
    }
}
