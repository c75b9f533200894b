//! The uniform structs and codes as common.wgsl declares them, field for field (its tests
//! read common.wgsl to check).

use mlp_core::options::{Activation, Hyperparameters, Optimiser, Output};

/// `Step` of common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct StepUniform {
    pub(super) row_start: u32,
    pub(super) rows: u32,
    pub(super) loss_slot: u32,
    pub(super) pixel_spans: u32,
    pub(super) learning_rate: f32,
    pub(super) gradient_scale: f32,
    pub(super) correction1: f32,
    pub(super) correction2: f32,
    pub(super) weight_decay: f32,
    /// The dropout of the hidden layers (`dropout_keeps`): the threshold of a hash's top 24
    /// bits (0: none), the seed folded to 32 bits, the step and the kept units' factor.
    pub(super) dropout_threshold: u32,
    pub(super) dropout_seed: u32,
    pub(super) dropout_step: u32,
    pub(super) dropout_scale: f32,
    /// The same for the input pixels.
    pub(super) input_dropout_threshold: u32,
    pub(super) input_dropout_seed: u32,
    pub(super) input_dropout_scale: f32,
    /// The shifts of the training images (`shift_offsets`): the largest move (0: none), the
    /// seed folded to 32 bits, and the images' width, which a pixel index is split by.
    pub(super) shift_pixels: u32,
    pub(super) shift_seed: u32,
    pub(super) image_cols: u32,
    /// This unit's slot in the buffer of steps, and the slot after the last step of the run
    /// that multi_step.wgsl takes from it in one dispatch.
    pub(super) slot: u32,
    pub(super) run_end: u32,
    /// WGSL rounds a uniform struct up to 16 bytes.
    pub(super) pad: [u32; 2],
}

/// `Layer` of common.wgsl.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct LayerUniform {
    pub(super) inputs: u32,
    pub(super) outputs: u32,
    pub(super) activation: u32,
    pub(super) input_activation: u32,
    /// Adam's β1 and β2, or momentum's μ as `decay1`.
    pub(super) decay1: f32,
    pub(super) decay2: f32,
    pub(super) epsilon: f32,
    /// k, from 1: the layer of the dropout masks of its output.
    pub(super) number: u32,
}

/// `DenseLayer` of common.wgsl: offsets in f32s.
#[repr(C)]
#[derive(Debug, Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct DenseLayerEntry {
    pub(super) inputs: u32,
    pub(super) outputs: u32,
    pub(super) activation: u32,
    pub(super) parameters: u32,
    pub(super) state: u32,
    pub(super) activations: u32,
    pub(super) deltas: u32,
    pub(super) pad: u32,
}

/// The activation codes of common.wgsl.
pub(super) fn activation_code(activation: Activation) -> u32 {
    match activation {
        Activation::Sigmoid => 0,
        Activation::Relu => 1,
        Activation::Tanh => 2,
    }
}
pub(super) const SOFTMAX: u32 = 3;

/// The optimiser codes of common.wgsl (GRADIENT_DESCENT, MOMENTUM, ADAM), with the decay rates
/// the update kernels read from the layer uniform (Adam's β1, β2, ε; momentum's μ as `decay1`).
pub(super) fn optimiser_code(optimiser: Optimiser) -> (u32, f32, f32, f32) {
    match optimiser {
        Optimiser::GradientDescent => (0, 0.0, 0.0, 0.0),
        Optimiser::Momentum { momentum } => (1, momentum, 0.0, 0.0),
        Optimiser::Adam {
            beta1,
            beta2,
            epsilon,
        } => (2, beta1, beta2, epsilon),
    }
}

/// Each layer k's uniform (from 0): its shape, its output's f and the f of its input (the
/// hidden layers' f; the first layer's input, the images, has none and ignores it), and the
/// optimiser's decay rates.
pub(super) fn layer_uniforms(sizes: &[usize], hyper: &Hyperparameters) -> Vec<LayerUniform> {
    let depth = sizes.len() - 1;
    let (_, decay1, decay2, epsilon) = optimiser_code(hyper.optimiser);
    let hidden = activation_code(hyper.activation);
    let output = match hyper.output {
        Output::SigmoidMse => activation_code(Activation::Sigmoid),
        Output::SoftmaxCrossEntropy => SOFTMAX,
    };
    (0..depth)
        .map(|k| LayerUniform {
            inputs: sizes[k] as u32,
            outputs: sizes[k + 1] as u32,
            activation: if k + 1 == depth { output } else { hidden },
            input_activation: hidden,
            decay1,
            decay2,
            epsilon,
            number: (k + 1) as u32,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMON: &str = include_str!("../../../../shaders/common.wgsl");

    /// The fields of `struct name` in common.wgsl, in order.
    fn wgsl_fields(name: &str) -> Vec<String> {
        let start = COMMON
            .find(&format!("struct {name} {{"))
            .unwrap_or_else(|| panic!("common.wgsl has no struct {name}"));
        let body = &COMMON[start..start + COMMON[start..].find('}').expect("a closing brace")];
        body.lines()
            .skip(1)
            .filter_map(|line| line.split(':').next())
            .map(str::trim)
            .filter(|field| !field.is_empty() && !field.starts_with("//"))
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn uniform_structs_match_common_wgsl_field_for_field() {
        // Every field of these structs is a 4-byte u32 or f32, so their sizes follow.
        for (name, bytes) in [
            ("Step", std::mem::size_of::<StepUniform>()),
            ("Layer", std::mem::size_of::<LayerUniform>()),
            ("DenseLayer", std::mem::size_of::<DenseLayerEntry>()),
        ] {
            assert_eq!(
                4 * wgsl_fields(name).len(),
                bytes,
                "{name}: {:?}",
                wgsl_fields(name)
            );
        }
        assert_eq!(
            wgsl_fields("Step"),
            [
                "row_start",
                "rows",
                "loss_slot",
                "pixel_spans",
                "learning_rate",
                "gradient_scale",
                "correction1",
                "correction2",
                "weight_decay",
                "dropout_threshold",
                "dropout_seed",
                "dropout_step",
                "dropout_scale",
                "input_dropout_threshold",
                "input_dropout_seed",
                "input_dropout_scale",
                "shift_pixels",
                "shift_seed",
                "image_cols",
                "slot",
                "run_end",
                "pad0",
                "pad1"
            ]
        );
    }

    #[test]
    fn activation_and_optimiser_codes_are_those_of_common_wgsl() {
        for (code, name) in [
            (activation_code(Activation::Sigmoid), "SIGMOID"),
            (activation_code(Activation::Relu), "RELU"),
            (activation_code(Activation::Tanh), "TANH"),
            (SOFTMAX, "SOFTMAX"),
            (
                optimiser_code(Optimiser::GradientDescent).0,
                "GRADIENT_DESCENT",
            ),
            (
                optimiser_code(Optimiser::with_defaults(mlp_core::OptimiserKind::Momentum)).0,
                "MOMENTUM",
            ),
            (
                optimiser_code(Optimiser::with_defaults(mlp_core::OptimiserKind::Adam)).0,
                "ADAM",
            ),
        ] {
            let declaration = format!("const {name}: u32 = {code}u;");
            assert!(
                COMMON.contains(&declaration),
                "common.wgsl lacks {declaration:?}"
            );
        }
    }
}
