//! The CPU reference: SEED.md's equations on ndarray, one function per equation. This file is
//! the spec; the GPU kernels are checked against it.
//!
//! Shapes use B for the rows of the batch, `in` and `out` for a layer's inputs and outputs.
//! Every function writes into a buffer its caller owns, so that a training step allocates
//! nothing. The functions are generic over the float type: the backend runs them in f32, the
//! gradient check in f64.

use std::ops::Range;

use ndarray::linalg::general_mat_mul;
use ndarray::{
    Array1, Array2, ArrayView, ArrayView1, ArrayView2, ArrayViewMut, ArrayViewMut1, ArrayViewMut2,
    Dimension, LinalgScalar, Zip, s,
};
use num_traits::Float;

use crate::backend::{Backend, BackendError, Evaluation, StepTrace, TrainLoss};
use crate::data::Dataset;
use crate::network::{Layer, NetworkError, Parameters};

/// f32 or f64.
pub trait Real: Float + LinalgScalar {}
impl<F: Float + LinalgScalar> Real for F {}

/// Y's entry for `class` of an image labelled `label`: one-hot.
fn one_hot<F: Real>(class: usize, label: u8) -> F {
    if class == usize::from(label) {
        F::one()
    } else {
        F::zero()
    }
}

/// f(s) = 1 / (1 + e^-s).
pub fn sigmoid<F: Real>(s: F) -> F {
    F::one() / (F::one() + (-s).exp())
}

/// f'(s) = f(s) (1 − f(s)), written through the activation a = f(s) that the forward pass kept.
pub fn sigmoid_derivative<F: Real>(activation: F) -> F {
    activation * (F::one() - activation)
}

/// Sk = A(k−1) Wk + bk.
///
/// - `input` A(k−1): (B, in)
/// - `weights` Wk: (in, out)
/// - `bias` bk: (out), added to every row
/// - `sum` Sk: (B, out), overwritten
pub fn linear_forward<F: Real>(
    input: ArrayView2<F>,
    weights: ArrayView2<F>,
    bias: ArrayView1<F>,
    mut sum: ArrayViewMut2<F>,
) {
    let shape = sum.dim();
    sum.assign(
        &bias
            .broadcast(shape)
            .expect("bias has one value per output"),
    );
    general_mat_mul(F::one(), &input, &weights, F::one(), &mut sum);
}

/// Ak = sigmoid(Sk), in place: `values` holds Sk (B, out) on entry and Ak on return.
pub fn sigmoid_forward<F: Real>(mut values: ArrayViewMut2<F>) {
    values.mapv_inplace(sigmoid);
}

/// D_L = (A_L − Y) ⊙ f'(S_L), the derivative of ½ Σ (A_L − Y)² with respect to S_L.
///
/// - `activation` A_L: (B, classes)
/// - `labels`: (B) digits; Y is their one-hot rows
/// - `delta` D_L: (B, classes), overwritten
pub fn output_delta<F: Real>(
    activation: ArrayView2<F>,
    labels: &[u8],
    mut delta: ArrayViewMut2<F>,
) {
    for ((row, a_row), &label) in delta
        .outer_iter_mut()
        .zip(activation.outer_iter())
        .zip(labels)
    {
        for (class, (d, &a)) in row.into_iter().zip(a_row).enumerate() {
            *d = (a - one_hot(class, label)) * sigmoid_derivative(a);
        }
    }
}

/// Dk = (D(k+1) W(k+1)ᵀ) ⊙ f'(Sk).
///
/// - `next_delta` D(k+1): (B, next)
/// - `next_weights` W(k+1): (out, next)
/// - `activation` Ak: (B, out)
/// - `delta` Dk: (B, out), overwritten
pub fn hidden_delta<F: Real>(
    next_delta: ArrayView2<F>,
    next_weights: ArrayView2<F>,
    activation: ArrayView2<F>,
    mut delta: ArrayViewMut2<F>,
) {
    general_mat_mul(
        F::one(),
        &next_delta,
        &next_weights.t(),
        F::zero(),
        &mut delta,
    );
    Zip::from(&mut delta)
        .and(&activation)
        .for_each(|d, &a| *d = *d * sigmoid_derivative(a));
}

/// grad Wk = A(k−1)ᵀ Dk, summed over the batch (not averaged).
///
/// - `input` A(k−1): (B, in)
/// - `delta` Dk: (B, out)
/// - `gradient`: (in, out), overwritten
pub fn weights_gradient<F: Real>(
    input: ArrayView2<F>,
    delta: ArrayView2<F>,
    mut gradient: ArrayViewMut2<F>,
) {
    general_mat_mul(F::one(), &input.t(), &delta, F::zero(), &mut gradient);
}

/// grad bk = the column sums of Dk.
///
/// - `delta` Dk: (B, out)
/// - `gradient`: (out), overwritten
pub fn bias_gradient<F: Real>(delta: ArrayView2<F>, mut gradient: ArrayViewMut1<F>) {
    gradient.fill(F::zero());
    for row in delta.outer_iter() {
        Zip::from(&mut gradient)
            .and(&row)
            .for_each(|g, &d| *g = *g + d);
    }
}

/// P −= lr · grad P, for a weight matrix or a bias row alike.
pub fn gradient_descent_update<F: Real, D: Dimension>(
    mut parameter: ArrayViewMut<'_, F, D>,
    gradient: ArrayView<'_, F, D>,
    learning_rate: F,
) {
    Zip::from(&mut parameter)
        .and(&gradient)
        .for_each(|p, &g| *p = *p - learning_rate * g);
}

/// Σ (Y − A_L)² over the batch: (B, classes) activations against B labels. Summed in f64 so
/// that the epoch's loss does not depend on the order of the additions.
pub fn squared_error_sum<F: Real>(activation: ArrayView2<F>, labels: &[u8]) -> f64 {
    activation
        .outer_iter()
        .zip(labels)
        .map(|(row, &label)| {
            row.iter()
                .enumerate()
                .map(|(class, &a)| {
                    (a.to_f64().unwrap_or(f64::NAN) - one_hot::<f64>(class, label)).powi(2)
                })
                .sum::<f64>()
        })
        .sum()
}

/// The index of the largest value of each row, the first one on ties.
pub fn argmax_rows<F: Real>(activation: ArrayView2<F>) -> Vec<u8> {
    activation
        .outer_iter()
        .map(|row| {
            let mut best = 0;
            for (class, &a) in row.iter().enumerate() {
                if a > row[best] {
                    best = class;
                }
            }
            best as u8
        })
        .collect()
}

/// Images as the network sees them: (count, pixels), each byte divided by 255.
pub fn normalised_images(set: &Dataset) -> Array2<f32> {
    Array2::from_shape_vec(
        (set.len(), set.pixels()),
        set.images.iter().map(|&p| f32::from(p) / 255.0).collect(),
    )
    .expect("a dataset holds count x pixels bytes")
}

/// Fails unless the first layer takes exactly one image's pixels.
pub fn check_input_width(parameters: &Parameters, set: &Dataset) -> Result<(), BackendError> {
    let inputs = parameters.sizes().first().copied().unwrap_or(0);
    if inputs != set.pixels() {
        return Err(NetworkError::ShapeMismatch {
            sizes: parameters.layer_sizes(),
            problem: format!(
                "the first layer takes {inputs} values but images have {} pixels",
                set.pixels()
            ),
        }
        .into());
    }
    Ok(())
}

/// The buffers of one training step: activations A1..AL, deltas D1..DL and the gradients.
struct Workspace {
    rows: usize,
    activations: Vec<Array2<f32>>,
    deltas: Vec<Array2<f32>>,
    weight_gradients: Vec<Array2<f32>>,
    bias_gradients: Vec<Array1<f32>>,
}

impl Workspace {
    fn new(parameters: &Parameters, rows: usize) -> Self {
        let outputs = |l: &Layer| l.weights.ncols();
        Self {
            rows,
            activations: parameters
                .layers
                .iter()
                .map(|l| Array2::zeros((rows, outputs(l))))
                .collect(),
            deltas: parameters
                .layers
                .iter()
                .map(|l| Array2::zeros((rows, outputs(l))))
                .collect(),
            weight_gradients: parameters
                .layers
                .iter()
                .map(|l| Array2::zeros(l.weights.dim()))
                .collect(),
            bias_gradients: parameters
                .layers
                .iter()
                .map(|l| Array1::zeros(outputs(l)))
                .collect(),
        }
    }
}

/// The reference backend: SEED.md on the CPU, in f32, with ndarray's matrix products.
pub struct CpuBackend {
    parameters: Parameters,
    learning_rate: f32,
    train_images: Array2<f32>,
    train_labels: Vec<u8>,
    validation_images: Array2<f32>,
    validation_labels: Vec<u8>,
    workspace: Workspace,
    loss: TrainLoss,
}

impl CpuBackend {
    /// Holds `parameters` and both data sets, normalised once.
    pub fn new(
        parameters: Parameters,
        learning_rate: f32,
        train: &Dataset,
        validation: &Dataset,
    ) -> Result<Self, BackendError> {
        check_input_width(&parameters, train)?;
        check_input_width(&parameters, validation)?;
        let workspace = Workspace::new(&parameters, 0);
        Ok(Self {
            parameters,
            learning_rate,
            train_images: normalised_images(train),
            train_labels: train.labels.clone(),
            validation_images: normalised_images(validation),
            validation_labels: validation.labels.clone(),
            workspace,
            loss: TrainLoss::default(),
        })
    }

    /// The forward pass of `input` (B, in): fills A1..AL of `activations` (first B rows).
    fn forward(layers: &[Layer], input: ArrayView2<f32>, activations: &mut [Array2<f32>]) {
        let rows = input.nrows();
        for (k, layer) in layers.iter().enumerate() {
            let (before, rest) = activations.split_at_mut(k);
            let layer_input = if k == 0 {
                input
            } else {
                before[k - 1].slice(s![..rows, ..])
            };
            let mut sum = rest[0].slice_mut(s![..rows, ..]);
            linear_forward(
                layer_input,
                layer.weights.view(),
                layer.bias.view(),
                sum.view_mut(),
            );
            sigmoid_forward(sum);
        }
    }

    /// One training step on `rows`: forward, every delta, then every update (SEED.md's order).
    /// Returns the batch loss mean((Y − A_L)²) from the forward pass before the update.
    fn step(&mut self, rows: Range<usize>) -> Result<f64, BackendError> {
        let len = self.train_labels.len();
        if rows.start >= rows.end || rows.end > len {
            return Err(BackendError::RowsOutOfRange {
                start: rows.start,
                end: rows.end,
                len,
            });
        }
        let b = rows.len();
        if self.workspace.rows < b {
            self.workspace = Workspace::new(&self.parameters, b);
        }
        let input = self.train_images.slice(s![rows.clone(), ..]);
        let labels = &self.train_labels[rows];
        let ws = &mut self.workspace;
        let layers = &mut self.parameters.layers;
        let last = layers.len() - 1;

        Self::forward(layers, input, &mut ws.activations);
        let output = ws.activations[last].slice(s![..b, ..]);
        let loss = squared_error_sum(output, labels) / (b * output.ncols()) as f64;

        output_delta(output, labels, ws.deltas[last].slice_mut(s![..b, ..]));
        for k in (0..last).rev() {
            let (lower, upper) = ws.deltas.split_at_mut(k + 1);
            hidden_delta(
                upper[0].slice(s![..b, ..]),
                layers[k + 1].weights.view(),
                ws.activations[k].slice(s![..b, ..]),
                lower[k].slice_mut(s![..b, ..]),
            );
        }
        for (k, layer) in layers.iter_mut().enumerate() {
            let layer_input = if k == 0 {
                input
            } else {
                ws.activations[k - 1].slice(s![..b, ..])
            };
            let delta = ws.deltas[k].slice(s![..b, ..]);
            weights_gradient(layer_input, delta, ws.weight_gradients[k].view_mut());
            bias_gradient(delta, ws.bias_gradients[k].view_mut());
            gradient_descent_update(
                layer.weights.view_mut(),
                ws.weight_gradients[k].view(),
                self.learning_rate,
            );
            gradient_descent_update(
                layer.bias.view_mut(),
                ws.bias_gradients[k].view(),
                self.learning_rate,
            );
        }
        Ok(loss)
    }
}

impl Backend for CpuBackend {
    fn name(&self) -> String {
        "cpu (ndarray, f32)".to_string()
    }

    fn set_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError> {
        parameters.check_shapes(&self.parameters.layer_sizes())?;
        self.parameters = parameters.clone();
        Ok(())
    }

    fn parameters(&mut self) -> Result<Parameters, BackendError> {
        Ok(self.parameters.clone())
    }

    fn train_batch(&mut self, rows: Range<usize>) -> Result<(), BackendError> {
        let loss = self.step(rows)?;
        self.loss.batch_loss_sum += loss;
        self.loss.batches += 1;
        Ok(())
    }

    fn take_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        Ok(std::mem::take(&mut self.loss))
    }

    fn trace_batch(&mut self, rows: Range<usize>) -> Result<StepTrace, BackendError> {
        let b = rows.len();
        self.train_batch(rows)?;
        let rows_of = |all: &[Array2<f32>]| {
            all.iter()
                .map(|a| a.slice(s![..b, ..]).to_owned())
                .collect()
        };
        Ok(StepTrace {
            activations: rows_of(&self.workspace.activations),
            deltas: rows_of(&self.workspace.deltas),
        })
    }

    fn evaluate(&mut self) -> Result<Evaluation, BackendError> {
        let outputs = self.validation_outputs()?;
        let labels = &self.validation_labels;
        let predictions = argmax_rows(outputs.view());
        Ok(Evaluation {
            squared_error_sum: squared_error_sum(outputs.view(), labels),
            correct: predictions
                .iter()
                .zip(labels)
                .filter(|(p, l)| p == l)
                .count(),
            predictions,
            classes: outputs.ncols(),
        })
    }

    fn validation_outputs(&mut self) -> Result<Array2<f32>, BackendError> {
        // In chunks, so that the hidden activations of the whole set are never held at once.
        const CHUNK: usize = 1000;
        let count = self.validation_labels.len();
        let mut activations: Vec<Array2<f32>> = self
            .parameters
            .layers
            .iter()
            .map(|l| Array2::zeros((CHUNK.min(count), l.weights.ncols())))
            .collect();
        let classes = activations.last().map_or(0, Array2::ncols);
        let mut outputs = Array2::zeros((count, classes));
        for start in (0..count).step_by(CHUNK) {
            let end = (start + CHUNK).min(count);
            Self::forward(
                &self.parameters.layers,
                self.validation_images.slice(s![start..end, ..]),
                &mut activations,
            );
            outputs
                .slice_mut(s![start..end, ..])
                .assign(&activations[activations.len() - 1].slice(s![..end - start, ..]));
        }
        Ok(outputs)
    }
}
