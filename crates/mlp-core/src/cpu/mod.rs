//! The CPU reference: docs/SEED.md's equations on ndarray, one function per equation. This file is
//! the spec; the GPU kernels are checked against it.
//!
//! Shapes use B for the rows of the batch, `in` and `out` for a layer's inputs and outputs.
//! Every function writes into a buffer its caller owns, so that a training step allocates
//! nothing. The functions are generic over the float type: the backend runs them in f32, the
//! gradient check in f64.

use ndarray::linalg::general_mat_mul;
use ndarray::{
    ArrayView, ArrayView1, ArrayView2, ArrayViewMut, ArrayViewMut1, ArrayViewMut2, Dimension,
    LinalgScalar, Zip,
};
use num_traits::Float;

mod augmentation;
mod backend;
mod reference;
mod regularisation;
mod rows;
mod step_threads;
mod units;
mod updates;
mod worker;
mod workspace;

pub use augmentation::{ShiftConstants, shift_images, shift_offsets, shifted_pixel};
pub use backend::{CpuBackend, FAST_PARITY};
pub use reference::{ReferenceBackend, deltas, forward, forward_dropped, weights_update};
pub use regularisation::{
    DropoutConstants, decoupled_weight_decay, dropout_backward, dropout_forward, dropout_keeps,
    dropout_row_hash, hash32, l2_weight_decay,
};

use crate::backend::{BackendError, Evaluation};
use crate::data::Dataset;
use crate::network::{NetworkError, Parameters};
use crate::options::{Activation, Output, Reduction};

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

/// f(s) = max(0, s).
pub fn relu<F: Real>(s: F) -> F {
    s.max(F::zero())
}

/// f'(s) = 1 where s > 0, else 0 (0 at s = 0 itself), through a = f(s): a > 0 exactly when s > 0.
pub fn relu_derivative<F: Real>(activation: F) -> F {
    if activation > F::zero() {
        F::one()
    } else {
        F::zero()
    }
}

/// f'(s) = 1 − tanh²(s), through a = tanh(s).
pub fn tanh_derivative<F: Real>(activation: F) -> F {
    F::one() - activation * activation
}

/// f(s) for the chosen hidden activation.
pub fn activate<F: Real>(s: F, kind: Activation) -> F {
    match kind {
        Activation::Sigmoid => sigmoid(s),
        Activation::Relu => relu(s),
        Activation::Tanh => s.tanh(),
    }
}

/// f'(s) through a = f(s), for the chosen hidden activation.
pub fn activation_derivative<F: Real>(activation: F, kind: Activation) -> F {
    match kind {
        Activation::Sigmoid => sigmoid_derivative(activation),
        Activation::Relu => relu_derivative(activation),
        Activation::Tanh => tanh_derivative(activation),
    }
}

/// Sk = A(k−1) Wk + bk (E1 of docs/SEED.md).
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

/// Ak = sigmoid(Sk) (E2), in place: `values` holds Sk (B, out) on entry and Ak on return.
pub fn sigmoid_forward<F: Real>(values: ArrayViewMut2<F>) {
    activation_forward(values, Activation::Sigmoid);
}

/// Ak = f(Sk) (E2), in place: `values` holds Sk (B, out) on entry and Ak on return.
pub fn activation_forward<F: Real>(mut values: ArrayViewMut2<F>, kind: Activation) {
    values.mapv_inplace(|s| activate(s, kind));
}

/// A_L = softmax(S_L) row by row, in place: exp(s − max) / Σ exp(s − max). Subtracting the
/// row's largest value first keeps every exp in (0, 1], so nothing overflows.
///
/// - `values`: (B, classes), S_L on entry and A_L on return
pub fn softmax_forward<F: Real>(mut values: ArrayViewMut2<F>) {
    for mut row in values.outer_iter_mut() {
        let largest = row.iter().copied().fold(F::neg_infinity(), F::max);
        row.mapv_inplace(|s| (s - largest).exp());
        let total = row.iter().copied().fold(F::zero(), |sum, e| sum + e);
        row.mapv_inplace(|e| e / total);
    }
}

/// D_L = (A_L − Y) ⊙ f'(S_L) (E3), the derivative of ½ Σ (A_L − Y)² with respect to S_L.
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

/// D_L = A_L − Y: the derivative of the cross-entropy −Σ Y ln softmax(S_L) with respect to S_L.
///
/// - `probabilities` A_L: (B, classes), softmax outputs
/// - `labels`: (B) digits
/// - `delta` D_L: (B, classes), overwritten
pub fn softmax_cross_entropy_delta<F: Real>(
    probabilities: ArrayView2<F>,
    labels: &[u8],
    mut delta: ArrayViewMut2<F>,
) {
    for ((row, p_row), &label) in delta
        .outer_iter_mut()
        .zip(probabilities.outer_iter())
        .zip(labels)
    {
        for (class, (d, &p)) in row.into_iter().zip(p_row).enumerate() {
            *d = p - one_hot(class, label);
        }
    }
}

/// Dk = (D(k+1) W(k+1)ᵀ) ⊙ f'(Sk) (E4).
///
/// - `next_delta` D(k+1): (B, next)
/// - `next_weights` W(k+1): (out, next)
/// - `activation` Ak: (B, out), with `kind` the f that made it
/// - `delta` Dk: (B, out), overwritten
pub fn hidden_delta<F: Real>(
    next_delta: ArrayView2<F>,
    next_weights: ArrayView2<F>,
    activation: ArrayView2<F>,
    kind: Activation,
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
        .for_each(|d, &a| *d = *d * activation_derivative(a, kind));
}

/// How much of the batch's summed gradient a step uses: 1 (summed, the seed) or 1/B (mean).
pub fn reduction_scale<F: Real>(reduction: Reduction, rows: usize) -> F {
    match reduction {
        Reduction::Sum => F::one(),
        Reduction::Mean => F::one() / F::from(rows).expect("a row count is a float"),
    }
}

/// grad Wk = scale · A(k−1)ᵀ Dk (E5): summed over the batch when `scale` is 1 (the seed).
///
/// - `input` A(k−1): (B, in)
/// - `delta` Dk: (B, out)
/// - `gradient`: (in, out), overwritten
pub fn weights_gradient<F: Real>(
    input: ArrayView2<F>,
    delta: ArrayView2<F>,
    scale: F,
    mut gradient: ArrayViewMut2<F>,
) {
    general_mat_mul(scale, &input.t(), &delta, F::zero(), &mut gradient);
}

/// grad bk = scale · the column sums of Dk (E6).
///
/// - `delta` Dk: (B, out)
/// - `gradient`: (out), overwritten
pub fn bias_gradient<F: Real>(delta: ArrayView2<F>, scale: F, mut gradient: ArrayViewMut1<F>) {
    gradient.fill(F::zero());
    for row in delta.outer_iter() {
        Zip::from(&mut gradient)
            .and(&row)
            .for_each(|g, &d| *g = *g + d);
    }
    gradient.mapv_inplace(|g| g * scale);
}

/// P −= lr · grad P (E7), for a weight matrix or a bias row alike.
pub fn gradient_descent_update<F: Real, D: Dimension>(
    mut parameter: ArrayViewMut<'_, F, D>,
    gradient: ArrayView<'_, F, D>,
    learning_rate: F,
) {
    Zip::from(&mut parameter)
        .and(&gradient)
        .for_each(|p, &g| *p = *p - learning_rate * g);
}

/// V = μ V + grad P; P −= lr · V.
pub fn momentum_update<F: Real, D: Dimension>(
    mut parameter: ArrayViewMut<'_, F, D>,
    mut velocity: ArrayViewMut<'_, F, D>,
    gradient: ArrayView<'_, F, D>,
    learning_rate: F,
    momentum: F,
) {
    Zip::from(&mut parameter)
        .and(&mut velocity)
        .and(&gradient)
        .for_each(|p, v, &g| {
            *v = momentum * *v + g;
            *p = *p - learning_rate * *v;
        });
}

/// Adam's constants and the step t (from 1) whose bias corrections apply.
#[derive(Debug, Clone, Copy)]
pub struct AdamStep<F> {
    pub beta1: F,
    pub beta2: F,
    pub epsilon: F,
    pub t: u64,
}

impl<F: Real> AdamStep<F> {
    /// 1 / (1 − β1^t) and 1 / (1 − β2^t).
    pub fn corrections(&self) -> (F, F) {
        let t = i32::try_from(self.t).unwrap_or(i32::MAX);
        (
            F::one() / (F::one() - self.beta1.powi(t)),
            F::one() / (F::one() - self.beta2.powi(t)),
        )
    }
}

/// M = β1 M + (1 − β1) g; V = β2 V + (1 − β2) g²;
/// P −= lr · (M / (1 − β1^t)) / (√(V / (1 − β2^t)) + ε).
///
/// A moment smaller in magnitude than the smallest normal float is taken as 0
/// ([`flush_subnormal`]): a weight whose gradient stays 0 (a pixel seldom lit) has moments that
/// decay by β1 and β2 each step, through the subnormal floats, where each x86 multiply takes a
/// microcode assist. Before this the modern preset's later epochs were 1.55x slower than its
/// first (docs/performance.md); the values flushed are below 1.2e-38 (f32), and a step of a
/// moment that small moves its weight by less than 1e-30.
pub fn adam_update<F: Real, D: Dimension>(
    mut parameter: ArrayViewMut<'_, F, D>,
    mut first_moment: ArrayViewMut<'_, F, D>,
    mut second_moment: ArrayViewMut<'_, F, D>,
    gradient: ArrayView<'_, F, D>,
    learning_rate: F,
    step: AdamStep<F>,
) {
    let (correction1, correction2) = step.corrections();
    let one = F::one();
    Zip::from(&mut parameter)
        .and(&mut first_moment)
        .and(&mut second_moment)
        .and(&gradient)
        .for_each(|p, m, v, &g| {
            *m = flush_subnormal(step.beta1 * *m + (one - step.beta1) * g);
            *v = flush_subnormal(step.beta2 * *v + (one - step.beta2) * g * g);
            *p = *p
                - learning_rate * (*m * correction1) / ((*v * correction2).sqrt() + step.epsilon);
        });
}

/// `x`, or 0 where it is smaller in magnitude than the smallest normal float of its type.
pub fn flush_subnormal<F: Real>(x: F) -> F {
    if x.abs() < F::min_positive_value() {
        F::zero()
    } else {
        x
    }
}

/// Σ (Y − A_L)² over the batch (E8, E9): (B, classes) activations against B labels. Summed in f64 so
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

/// The smallest probability the cross-entropy takes the logarithm of: a softmax output that
/// rounded to 0 costs −ln(1e-30) ≈ 69 instead of infinity. A probability that is not a
/// number (a diverged network) is not floored: its loss stays NaN, so training stops on it.
pub const PROBABILITY_FLOOR: f64 = 1e-30;

/// Σ −ln A_L\[label\] over the batch, in f64: the cross-entropy of softmax outputs
/// `probabilities` (B, classes) against B labels.
pub fn cross_entropy_sum<F: Real>(probabilities: ArrayView2<F>, labels: &[u8]) -> f64 {
    probabilities
        .outer_iter()
        .zip(labels)
        .map(|(row, &label)| {
            let p = row[usize::from(label)].to_f64().unwrap_or(f64::NAN);
            if p.is_nan() {
                p
            } else {
                -p.max(PROBABILITY_FLOOR).ln()
            }
        })
        .sum()
}

/// The batch's loss summed over its images: squared error or cross-entropy.
pub fn loss_sum<F: Real>(output: Output, activation: ArrayView2<F>, labels: &[u8]) -> f64 {
    match output {
        Output::SigmoidMse => squared_error_sum(activation, labels),
        Output::SoftmaxCrossEntropy => cross_entropy_sum(activation, labels),
    }
}

/// What a loss sum is divided by to give the loss docs/SEED.md reports: every value of A_L for the
/// squared error (its mean over images x classes), every image for the cross-entropy.
pub fn loss_terms(output: Output, rows: usize, classes: usize) -> usize {
    match output {
        Output::SigmoidMse => rows * classes,
        Output::SoftmaxCrossEntropy => rows,
    }
}

/// The index of the largest value of each row, the first one on ties (E9).
pub fn argmax_rows<F: Real>(activation: ArrayView2<F>) -> Vec<u32> {
    activation
        .outer_iter()
        .map(|row| {
            let mut best = 0;
            for (class, &a) in row.iter().enumerate() {
                if a > row[best] {
                    best = class;
                }
            }
            u32::try_from(best).expect("a layer's width fits in u32 (LayerSizes checks it)")
        })
        .collect()
}

/// E9 over a set: the loss summed over `outputs` A_L (images, classes) against `labels`, and
/// the predictions.
pub fn evaluation<F: Real>(output: Output, outputs: ArrayView2<F>, labels: &[u8]) -> Evaluation {
    Evaluation::new(
        loss_sum(output, outputs, labels),
        loss_terms(output, labels.len(), outputs.ncols()),
        argmax_rows(outputs),
        labels,
        outputs.ncols(),
    )
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

/// Softmax needs at least two classes: over one it is always 1 and nothing can be learned.
pub fn check_output_width(parameters: &Parameters, output: Output) -> Result<(), BackendError> {
    let classes = parameters.layers.last().map_or(0, |l| l.weights.ncols());
    if output == Output::SoftmaxCrossEntropy && classes < 2 {
        return Err(NetworkError::ShapeMismatch {
            sizes: parameters.layer_sizes(),
            problem: format!(
                "a softmax output needs at least 2 classes, this network has {classes} \
                 (its output would always be 1)"
            ),
        }
        .into());
    }
    Ok(())
}

/// Checks that `order` holds each row of a training set of `len` images exactly once.
pub fn check_order(order: &[u32], len: usize) -> Result<(), BackendError> {
    let mut seen = vec![false; len];
    let is_permutation = order.len() == len
        && order.iter().all(|&row| {
            let row = row as usize;
            row < len && !std::mem::replace(&mut seen[row], true)
        });
    if is_permutation {
        Ok(())
    } else {
        Err(BackendError::BadOrder { len })
    }
}
