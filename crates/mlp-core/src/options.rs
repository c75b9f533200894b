//! The choices a run makes beyond the layer sizes. Each one's default is what docs/SEED.md does, so
//! [`Hyperparameters::seed`] is the seed network exactly; the others are what people who
//! train networks reach for next.

use std::fmt;
use std::str::FromStr;

/// A choice given as text that is none of the known names.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown {what} \"{given}\": choose one of {}", choices.join(", "))]
pub struct UnknownChoice {
    pub what: &'static str,
    pub given: String,
    pub choices: &'static [&'static str],
}

/// Names and values of a choice, in one table, so that parsing and printing agree.
macro_rules! named_choice {
    ($type:ident, $what:literal, $($variant:ident = $name:literal),+ $(,)?) => {
        impl $type {
            /// Every name, as the error for a wrong one lists them.
            pub const NAMES: &'static [&'static str] = &[$($name),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)+
                }
            }
        }

        impl FromStr for $type {
            type Err = UnknownChoice;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                match text {
                    $($name => Ok(Self::$variant),)+
                    _ => Err(UnknownChoice {
                        what: $what,
                        given: text.to_string(),
                        choices: Self::NAMES,
                    }),
                }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// The hidden layers' activation function f.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// 1 / (1 + e^-s), the seed's.
    #[default]
    Sigmoid,
    /// max(0, s).
    Relu,
    /// tanh(s).
    Tanh,
}
named_choice!(
    Activation,
    "activation",
    Sigmoid = "sigmoid",
    Relu = "relu",
    Tanh = "tanh"
);

/// The output layer and the loss it is trained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// Sigmoid outputs and ½ Σ (A − Y)² per image (the seed's; reported as the mean).
    #[default]
    SigmoidMse,
    /// Softmax outputs and the cross-entropy −ln A\[label\] per image.
    SoftmaxCrossEntropy,
}
named_choice!(
    Output,
    "output",
    SigmoidMse = "sigmoid-mse",
    SoftmaxCrossEntropy = "softmax-ce"
);

/// How the batch's per-image gradients become one gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reduction {
    /// Summed over the batch, the seed's: the step grows with the batch size.
    #[default]
    Sum,
    /// Averaged over the batch.
    Mean,
}
named_choice!(Reduction, "reduction", Sum = "sum", Mean = "mean");

/// How the initial weights are drawn (biases start at 0 in every case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Init {
    /// N(0, 1) with no scaling, the seed's.
    #[default]
    Normal,
    /// Xavier/Glorot: N(0, 2 / (inputs + outputs)), for sigmoid and tanh.
    Xavier,
    /// He: N(0, 2 / inputs), for ReLU.
    He,
}
named_choice!(
    Init,
    "initialisation",
    Normal = "normal",
    Xavier = "xavier",
    He = "he"
);

impl Init {
    /// The standard deviation of the weights of an (inputs x outputs) layer.
    pub fn standard_deviation(self, inputs: usize, outputs: usize) -> f64 {
        match self {
            Init::Normal => 1.0,
            Init::Xavier => (2.0 / (inputs + outputs) as f64).sqrt(),
            Init::He => (2.0 / inputs as f64).sqrt(),
        }
    }
}

/// The kind of optimiser; [`Optimiser`] carries its constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimiserKind {
    #[default]
    GradientDescent,
    Momentum,
    Adam,
}
named_choice!(
    OptimiserKind,
    "optimiser",
    GradientDescent = "gd",
    Momentum = "momentum",
    Adam = "adam"
);

/// How a gradient g moves a parameter P.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Optimiser {
    /// P −= lr · g, the seed's.
    GradientDescent,
    /// Heavy-ball momentum: V = μ V + g; P −= lr · V. V starts at 0.
    Momentum { momentum: f32 },
    /// Adam (Kingma & Ba 2015): M = β1 M + (1 − β1) g; V = β2 V + (1 − β2) g²;
    /// P −= lr · (M / (1 − β1^t)) / (√(V / (1 − β2^t)) + ε), with t the step from 1.
    Adam {
        beta1: f32,
        beta2: f32,
        epsilon: f32,
    },
}

impl Optimiser {
    /// The usual constants: μ = 0.9; β1 = 0.9, β2 = 0.999, ε = 1e-8.
    pub fn with_defaults(kind: OptimiserKind) -> Self {
        match kind {
            OptimiserKind::GradientDescent => Optimiser::GradientDescent,
            OptimiserKind::Momentum => Optimiser::Momentum { momentum: 0.9 },
            OptimiserKind::Adam => Optimiser::Adam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
        }
    }

    pub fn kind(self) -> OptimiserKind {
        match self {
            Optimiser::GradientDescent => OptimiserKind::GradientDescent,
            Optimiser::Momentum { .. } => OptimiserKind::Momentum,
            Optimiser::Adam { .. } => OptimiserKind::Adam,
        }
    }

    /// The reference function of `cpu/mod.rs` that applies one step of this optimiser.
    pub fn update_function(self) -> &'static str {
        match self {
            Optimiser::GradientDescent => "gradient_descent_update",
            Optimiser::Momentum { .. } => "momentum_update",
            Optimiser::Adam { .. } => "adam_update",
        }
    }

    /// Values of state kept per parameter: none, a velocity, or two moments.
    pub fn state_per_parameter(self) -> usize {
        match self {
            Optimiser::GradientDescent => 0,
            Optimiser::Momentum { .. } => 1,
            Optimiser::Adam { .. } => 2,
        }
    }
}

impl fmt::Display for Optimiser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Optimiser::GradientDescent => write!(f, "gd"),
            Optimiser::Momentum { momentum } => write!(f, "momentum (μ {momentum})"),
            Optimiser::Adam {
                beta1,
                beta2,
                epsilon,
            } => write!(f, "adam (β1 {beta1}, β2 {beta2}, ε {epsilon:e})"),
        }
    }
}

/// How the learning rate changes from epoch to epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// The same rate every epoch, the seed's.
    #[default]
    Constant,
    /// Halved every quarter of the run.
    Step,
    /// Half a cosine from the given rate at the first epoch down to 0 after the last.
    Cosine,
}
named_choice!(
    Schedule,
    "schedule",
    Constant = "constant",
    Step = "step",
    Cosine = "cosine"
);

impl Schedule {
    /// The rate for `epoch` (from 1) of `epochs`, starting from `rate`.
    pub fn learning_rate(self, rate: f32, epoch: usize, epochs: usize) -> f32 {
        let done = (epoch.saturating_sub(1)) as f64 / epochs.max(1) as f64;
        let factor = match self {
            Schedule::Constant => 1.0,
            Schedule::Step => 0.5f64.powi((done * 4.0).floor() as i32),
            Schedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * done).cos()),
        };
        (f64::from(rate) * factor) as f32
    }
}

/// Dropout of the hidden layers' units while training (inverted dropout, Srivastava et al.
/// 2014): each unit of each row is kept with probability 1 − `rate`, and a kept one is scaled
/// by 1 / (1 − rate). The masks are a hash of (seed, step, layer, batch row, unit)
/// ([`crate::cpu::dropout_keeps`]), so every backend draws the same ones, and a resumed run
/// the ones it would have drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dropout {
    /// The probability of dropping a unit, in (0, 1).
    pub rate: f32,
    pub seed: u64,
}

/// Random shifts of the training images (augmentation): each image of each step moves by up
/// to `pixels` pixels along each axis, the pixels moved past the edge lost and the uncovered
/// ones 0. The offsets are a hash of (seed, step, batch row) ([`crate::cpu::shift_offsets`]),
/// so every backend moves the same image the same way, and an image moves anew each epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    /// The largest move along each axis, at least 1.
    pub pixels: u32,
    pub seed: u64,
}

/// What a backend needs besides the parameters to run a training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hyperparameters {
    pub activation: Activation,
    pub output: Output,
    pub reduction: Reduction,
    pub optimiser: Optimiser,
    pub learning_rate: f32,
    /// λ of the weights' decay: L2 for gradient descent and momentum, decoupled (AdamW) for
    /// Adam; 0 for none (the seed's). Biases are not decayed.
    pub weight_decay: f32,
    /// Dropout of the hidden layers while training; none in the seed.
    pub dropout: Option<Dropout>,
    /// Dropout of the input pixels while training (layer 0 of the masks); none in the seed.
    pub input_dropout: Option<Dropout>,
    /// Random shifts of the training images; none in the seed.
    pub shift: Option<Shift>,
}

impl Hyperparameters {
    /// docs/SEED.md: sigmoid layers, sigmoid output with squared error, gradients summed over the
    /// batch, plain gradient descent at 0.01.
    pub fn seed() -> Self {
        Self {
            activation: Activation::Sigmoid,
            output: Output::SigmoidMse,
            reduction: Reduction::Sum,
            optimiser: Optimiser::GradientDescent,
            learning_rate: 0.01,
            weight_decay: 0.0,
            dropout: None,
            input_dropout: None,
            shift: None,
        }
    }

    /// The seed's choices with another learning rate.
    pub fn seed_with_rate(learning_rate: f32) -> Self {
        Self {
            learning_rate,
            ..Self::seed()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_list_the_choices() {
        for a in [Activation::Sigmoid, Activation::Relu, Activation::Tanh] {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        }
        assert_eq!(
            "softmax-ce".parse::<Output>().unwrap(),
            Output::SoftmaxCrossEntropy
        );
        let err = "swish".parse::<Activation>().unwrap_err().to_string();
        assert!(err.contains("swish") && err.contains("relu"), "{err}");
    }

    #[test]
    fn schedules_start_at_the_rate_and_fall() {
        assert_eq!(Schedule::Constant.learning_rate(0.1, 7, 10), 0.1);
        assert_eq!(Schedule::Cosine.learning_rate(0.1, 1, 10), 0.1);
        assert!((Schedule::Cosine.learning_rate(0.1, 6, 10) - 0.05).abs() < 1e-7);
        assert_eq!(Schedule::Step.learning_rate(0.1, 1, 8), 0.1);
        assert_eq!(Schedule::Step.learning_rate(0.1, 3, 8), 0.05);
        assert_eq!(Schedule::Step.learning_rate(0.1, 8, 8), 0.0125);
    }

    #[test]
    fn initialisations_scale_as_their_papers_say() {
        assert_eq!(Init::Normal.standard_deviation(784, 64), 1.0);
        assert!((Init::He.standard_deviation(200, 10) - 0.1).abs() < 1e-12);
        assert!((Init::Xavier.standard_deviation(150, 50) - 0.1).abs() < 1e-12);
    }
}
