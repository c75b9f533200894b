//! Layer sizes and parameters in the seed's layout: the weights of layer k are an
//! (inputs x outputs) matrix Wk, its bias a row bk of `outputs` values.

use std::fmt;
use std::str::FromStr;

use ndarray::{Array1, Array2};

use crate::options::Init;
use crate::rng::Rng;

/// MNIST images are 28 x 28 pixels, flattened row-major.
pub const INPUT_SIZE: usize = 784;
/// Ten digits.
pub const CLASSES: usize = 10;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NetworkError {
    #[error("layer sizes {given:?}: {problem}")]
    BadLayers { given: String, problem: String },
    #[error("parameters do not fit layer sizes {sizes}: {problem}")]
    ShapeMismatch { sizes: LayerSizes, problem: String },
}

/// Units per layer, input first: the seed network is 784-64-32-16-10.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerSizes(Vec<usize>);

impl LayerSizes {
    /// The seed configuration of docs/SEED.md.
    pub fn seed() -> Self {
        Self(vec![INPUT_SIZE, 64, 32, 16, CLASSES])
    }

    /// Checks that there are at least two layers, that none is empty, and that the network
    /// maps `input` values to `classes` outputs.
    pub fn new(sizes: Vec<usize>, input: usize, classes: usize) -> Result<Self, NetworkError> {
        let bad = |problem: String| NetworkError::BadLayers {
            given: join(&sizes),
            problem,
        };
        if sizes.len() < 2 {
            return Err(bad("need at least an input and an output layer".into()));
        }
        if sizes.contains(&0) {
            return Err(bad("every layer needs at least one unit".into()));
        }
        if sizes[0] != input {
            return Err(bad(format!(
                "the first layer must be the input size {input}, not {}",
                sizes[0]
            )));
        }
        if sizes[sizes.len() - 1] != classes {
            return Err(bad(format!(
                "the last layer must be the number of classes {classes}, not {}",
                sizes[sizes.len() - 1]
            )));
        }
        let layers = Self(sizes);
        let addressable = layers
            .parameter_count()
            .and_then(|n| n.checked_mul(4))
            .is_some_and(|bytes| bytes <= isize::MAX as usize);
        if !addressable {
            return Err(NetworkError::BadLayers {
                given: join(&layers.0),
                problem: "more weights than this machine can address".into(),
            });
        }
        Ok(layers)
    }

    /// Weights and biases in all layers, or `None` if the count does not fit a `usize`.
    pub fn parameter_count(&self) -> Option<usize> {
        self.shapes().try_fold(0usize, |total, (inputs, outputs)| {
            inputs
                .checked_mul(outputs)?
                .checked_add(outputs)?
                .checked_add(total)
        })
    }

    /// Bytes of f32 that training this network in batches of `batch` rows holds at once: the
    /// parameters, their gradients and `state_copies` more copies for the optimiser (0 for
    /// gradient descent, 1 for momentum, 2 for Adam), and each unit's activation and delta
    /// for every row. `None` if the count overflows.
    pub fn training_bytes(&self, batch: usize, state_copies: usize) -> Option<u64> {
        let parameters = self.parameter_count()? as u64;
        let units: u64 = self.0.iter().map(|&n| n as u64).sum();
        let values = parameters
            .checked_mul(2 + state_copies as u64)?
            .checked_add(units.checked_mul(batch as u64)?.checked_mul(2)?)?;
        values.checked_mul(4)
    }

    pub fn as_slice(&self) -> &[usize] {
        &self.0
    }

    /// Number of weight layers (one fewer than the number of unit layers).
    pub fn depth(&self) -> usize {
        self.0.len() - 1
    }

    pub fn input(&self) -> usize {
        self.0[0]
    }

    pub fn output(&self) -> usize {
        self.0[self.0.len() - 1]
    }

    /// (inputs, outputs) of each weight layer.
    pub fn shapes(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.0.windows(2).map(|w| (w[0], w[1]))
    }
}

fn join(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for LayerSizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&join(&self.0).replace(',', "-"))
    }
}

impl FromStr for LayerSizes {
    type Err = NetworkError;

    /// Parses "784,64,32,16,10" (commas or dashes); the input and class sizes are checked
    /// by [`LayerSizes::new`], not here.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let sizes = text
            .split([',', '-'])
            .map(|part| part.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| NetworkError::BadLayers {
                given: text.to_string(),
                problem: format!("not a list of whole numbers like 784,64,32,16,10 ({e})"),
            })?;
        Ok(Self(sizes))
    }
}

/// The weights and bias of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Wk, shape (inputs, outputs).
    pub weights: Array2<f32>,
    /// bk, shape (outputs): added to every row of the batch.
    pub bias: Array1<f32>,
}

/// Every layer's parameters, input side first.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameters {
    pub layers: Vec<Layer>,
}

impl Parameters {
    /// Whether every weight and bias is a finite number.
    pub fn is_finite(&self) -> bool {
        self.layers
            .iter()
            .all(|l| l.weights.iter().chain(&l.bias).all(|v| v.is_finite()))
    }

    /// The seed's initialisation: every weight from N(0, 1) with no scaling, every bias 0.
    pub fn seed_init(sizes: &LayerSizes, seed: u64) -> Self {
        Self::init(sizes, Init::Normal, seed)
    }

    /// Weights from N(0, σ²) with σ as `init` gives it for each layer's shape, biases 0.
    /// Weights are drawn layer by layer, row by row, from one [`Rng`] seeded with `seed`.
    pub fn init(sizes: &LayerSizes, init: Init, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let layers = sizes
            .shapes()
            .map(|(inputs, outputs)| {
                let deviation = init.standard_deviation(inputs, outputs);
                Layer {
                    weights: Array2::from_shape_simple_fn((inputs, outputs), || {
                        (deviation * rng.standard_normal()) as f32
                    }),
                    bias: Array1::zeros(outputs),
                }
            })
            .collect();
        Self { layers }
    }

    /// The layer sizes these parameters have.
    pub fn sizes(&self) -> Vec<usize> {
        let mut sizes: Vec<usize> = self.layers.iter().map(|l| l.weights.nrows()).collect();
        if let Some(last) = self.layers.last() {
            sizes.push(last.weights.ncols());
        }
        sizes
    }

    /// The layer sizes of these parameters, unchecked against any data set.
    pub fn layer_sizes(&self) -> LayerSizes {
        Self::layer_sizes_of(&self.sizes())
    }

    /// `sizes` as [`LayerSizes`], unchecked: for a backend that keeps the sizes it was built with.
    pub fn layer_sizes_of(sizes: &[usize]) -> LayerSizes {
        LayerSizes(sizes.to_vec())
    }

    /// Checks that these parameters have exactly the shapes of `sizes`.
    pub fn check_shapes(&self, sizes: &LayerSizes) -> Result<(), NetworkError> {
        let mismatch = |problem: String| NetworkError::ShapeMismatch {
            sizes: sizes.clone(),
            problem,
        };
        if self.layers.len() != sizes.depth() {
            return Err(mismatch(format!("{} layers given", self.layers.len())));
        }
        for (k, (layer, (inputs, outputs))) in self.layers.iter().zip(sizes.shapes()).enumerate() {
            if layer.weights.dim() != (inputs, outputs) || layer.bias.len() != outputs {
                return Err(mismatch(format!(
                    "layer {} has weights {:?} and bias {}, expected ({inputs}, {outputs}) and {outputs}",
                    k + 1,
                    layer.weights.dim(),
                    layer.bias.len()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_sizes_parse_and_validate() {
        let parsed: LayerSizes = "784,64,32,16,10".parse().unwrap();
        let checked = LayerSizes::new(parsed.as_slice().to_vec(), INPUT_SIZE, CLASSES).unwrap();
        assert_eq!(checked, LayerSizes::seed());
        assert_eq!(checked.to_string(), "784-64-32-16-10");
        assert_eq!(checked.depth(), 4);
    }

    #[test]
    fn bad_layer_lists_are_rejected_with_the_reason() {
        for (sizes, words) in [
            (vec![784], "at least"),
            (vec![784, 0, 10], "at least one unit"),
            (vec![100, 10], "input size 784"),
            (vec![784, 64, 9], "classes 10"),
        ] {
            let err = LayerSizes::new(sizes, INPUT_SIZE, CLASSES)
                .unwrap_err()
                .to_string();
            assert!(err.contains(words), "{err}");
        }
        assert!("784,x,10".parse::<LayerSizes>().is_err());
    }

    #[test]
    fn seed_init_is_reproducible_and_has_seed_shapes() {
        let sizes = LayerSizes::seed();
        let a = Parameters::seed_init(&sizes, 42);
        assert_eq!(a, Parameters::seed_init(&sizes, 42));
        assert_ne!(a, Parameters::seed_init(&sizes, 43));
        assert_eq!(a.sizes(), vec![784, 64, 32, 16, 10]);
        a.check_shapes(&sizes).unwrap();
        assert!(a.layers.iter().all(|l| l.bias.iter().all(|&b| b == 0.0)));
        let w = &a.layers[0].weights;
        let mean = w.mean().unwrap();
        let std = w.std(0.0);
        assert!(
            mean.abs() < 0.02 && (std - 1.0).abs() < 0.02,
            "{mean} {std}"
        );
    }
}
