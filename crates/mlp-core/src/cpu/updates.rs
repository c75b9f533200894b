//! The updates of the parts of a fast CPU step, each on the rows or layers one thread owns:
//! W1's rows of some pixels, a bias, a later layer.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2};

use super::bias_gradient;
use super::reference::optimiser_update;
use crate::dense::dense_weights_gradient;
use crate::network::Layer;
use crate::options::{Hyperparameters, Optimiser};
use crate::simd::InstructionSet;
use crate::sparse::{PixelEntries, sparse_gradient_descent, sparse_weights_gradient};

/// What every part of a step's update shares.
#[derive(Clone, Copy)]
pub(super) struct Update<'a> {
    pub(super) hyper: &'a Hyperparameters,
    pub(super) simd: InstructionSet,
    pub(super) scale: f32,
    pub(super) t: u64,
}

/// Some rows of W1, as views: the weights, their optimiser state (first, second) and their
/// gradient.
pub(super) type FirstLayerRows<'a> = (
    ArrayViewMut2<'a, f32>,
    Option<ArrayViewMut2<'a, f32>>,
    Option<ArrayViewMut2<'a, f32>>,
    ArrayViewMut2<'a, f32>,
);

/// The rows of W1 of the pixels `by_pixel` holds (as many as the views hold): their gradient
/// scale · A0ᵀ D1 (D1 is (B, out)) and their update, with the zero pixels of A0 skipped. Plain
/// gradient descent touches only the rows of pixels lit somewhere in the batch: every other
/// row's gradient is 0 and its update would change nothing.
pub(super) fn update_first_layer_rows(
    update: Update<'_>,
    delta: ArrayView2<f32>,
    (weights, first, second, mut gradient): FirstLayerRows<'_>,
    by_pixel: &dyn PixelEntries,
) {
    let Update {
        hyper,
        simd,
        scale,
        t,
        ..
    } = update;
    let rate = hyper.learning_rate;
    if fused_descent(hyper) {
        sparse_gradient_descent(simd, by_pixel, delta, (scale, rate), weights);
    } else {
        let rows = gradient.view_mut();
        sparse_weights_gradient(simd, by_pixel, delta, scale, rows);
        optimiser_update(
            hyper.optimiser,
            weights,
            (first, second),
            gradient.view(),
            rate,
            hyper.weight_decay,
            t,
        );
    }
}

/// Whether W1's update is the fused descent, which leaves the rows of unlit pixels alone
/// (weight decay moves every row).
pub(super) fn fused_descent(hyper: &Hyperparameters) -> bool {
    hyper.optimiser == Optimiser::GradientDescent && hyper.weight_decay == 0.0
}

/// bk: its gradient scale · the column sums of Dk (B, out), and its update.
pub(super) fn update_bias(
    update: Update<'_>,
    delta: ArrayView2<f32>,
    bias: &mut Array1<f32>,
    (first, second): (Option<&mut Array1<f32>>, Option<&mut Array1<f32>>),
    gradient: &mut Array1<f32>,
) {
    let Update {
        hyper, scale, t, ..
    } = update;
    bias_gradient(delta, scale, gradient.view_mut());
    optimiser_update(
        hyper.optimiser,
        bias.view_mut(),
        (first.map(|m| m.view_mut()), second.map(|m| m.view_mut())),
        gradient.view(),
        hyper.learning_rate,
        0.0,
        t,
    );
}

/// A layer after the first, whose input A(k−1) (B, in) is dense: the gradients
/// scale · A(k−1)ᵀ Dk and scale · column sums of Dk (B, out), and the updates.
pub(super) fn update_layer(
    update: Update<'_>,
    input: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    layer: &mut Layer,
    (first, second): (Option<&mut Layer>, Option<&mut Layer>),
    (weights_gradient_k, bias_gradient_k): (&mut Array2<f32>, &mut Array1<f32>),
) {
    let Update {
        hyper,
        simd,
        scale,
        t,
    } = update;
    dense_weights_gradient(simd, input, delta, scale, weights_gradient_k.view_mut());
    let (first_weights, first_bias) = first.map(|l| (&mut l.weights, &mut l.bias)).unzip();
    let (second_weights, second_bias) = second.map(|l| (&mut l.weights, &mut l.bias)).unzip();
    optimiser_update(
        hyper.optimiser,
        layer.weights.view_mut(),
        (
            first_weights.map(|m| m.view_mut()),
            second_weights.map(|m| m.view_mut()),
        ),
        weights_gradient_k.view(),
        hyper.learning_rate,
        hyper.weight_decay,
        t,
    );
    let bias_state = (first_bias, second_bias);
    update_bias(update, delta, &mut layer.bias, bias_state, bias_gradient_k);
}
