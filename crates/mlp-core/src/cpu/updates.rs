//! The updates of the parts of a fast CPU step, each on the rows or layers one thread owns:
//! W1's rows of some pixels, b1 and the later layers.

use std::ops::Range;

use ndarray::{
    Array1, Array2, ArrayView, ArrayView2, ArrayViewMut, ArrayViewMut1, ArrayViewMut2, Dimension,
    Ix1, Ix2, s,
};

use super::reference::{OptimiserViews, optimiser_update};
use super::units::UnitBlock;
use super::{AdamStep, bias_gradient, decoupled_weight_decay};
use crate::dense::{dense_weights_gradient_rows, transpose_into};
use crate::network::Layer;
use crate::options::{Hyperparameters, Optimiser};
use crate::simd::InstructionSet;
use crate::sparse::{
    PixelEntries, sparse_gradient_descent, sparse_gradient_descent_columns,
    sparse_weights_gradient, sparse_weights_gradient_columns,
};
use crate::vectorised::adam_update_vectorised;

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
        hyper, simd, scale, ..
    } = update;
    let rate = hyper.learning_rate;
    if fused_descent(hyper) {
        sparse_gradient_descent(simd, by_pixel, delta, (scale, rate), weights);
    } else {
        let rows = gradient.view_mut();
        sparse_weights_gradient(simd, by_pixel, delta, scale, rows);
        step_parameters(
            update,
            weights,
            (first, second),
            gradient.view(),
            hyper.weight_decay,
        );
    }
}

/// One thread's hidden units of layer 1 in an update by units: W1's and its state's columns
/// (a block of their own), their entries of b1 and its state and gradient, and where there is a
/// second layer their rows of W2 (with state and gradient) and columns of W2ᵀ.
pub(super) struct UnitPart<'a> {
    pub(super) units: Range<usize>,
    pub(super) block: &'a mut UnitBlock,
    pub(super) bias: ArrayViewMut1<'a, f32>,
    pub(super) bias_state: (
        Option<ArrayViewMut1<'a, f32>>,
        Option<ArrayViewMut1<'a, f32>>,
    ),
    pub(super) bias_gradient: ArrayViewMut1<'a, f32>,
    pub(super) next: Option<NextRows<'a>>,
}

/// A thread's rows of W2, their state and gradient, and its columns of W2ᵀ.
pub(super) struct NextRows<'a> {
    pub(super) weights: ArrayViewMut2<'a, f32>,
    pub(super) state: (
        Option<ArrayViewMut2<'a, f32>>,
        Option<ArrayViewMut2<'a, f32>>,
    ),
    pub(super) gradient: ArrayViewMut2<'a, f32>,
    pub(super) transposed: ArrayViewMut2<'a, f32>,
}

/// The update of a thread's hidden units of layer 1 ([`UnitPart`]): W1's columns from D1 (B,
/// out) and the batch regrouped `by_pixel`, b1's entries, and W2's rows from A1 (B, out), what
/// layer 2 read, and D2 (B, next), each the same numbers as the update by rows makes them.
pub(super) fn update_units(
    update: Update<'_>,
    (input, delta, next_delta): (ArrayView2<f32>, ArrayView2<f32>, Option<ArrayView2<f32>>),
    part: UnitPart<'_>,
    by_pixel: &dyn PixelEntries,
) {
    let Update {
        hyper, simd, scale, ..
    } = update;
    let (units, block) = (part.units, part.block);
    if fused_descent(hyper) {
        let rates = (scale, hyper.learning_rate);
        let weights = block.weights.view_mut();
        sparse_gradient_descent_columns(simd, by_pixel, delta, units.clone(), rates, weights);
    } else {
        let gradient = block.gradient.view_mut();
        sparse_weights_gradient_columns(simd, by_pixel, delta, units.clone(), scale, gradient);
        let state = (
            block.first.as_mut().map(|m| m.view_mut()),
            block.second.as_mut().map(|v| v.view_mut()),
        );
        let (weights, gradient) = (block.weights.view_mut(), block.gradient.view());
        step_parameters(update, weights, state, gradient, hyper.weight_decay);
    }
    let unit_delta = delta.slice(s![.., units.clone()]);
    update_bias(
        update,
        unit_delta,
        part.bias,
        part.bias_state,
        part.bias_gradient,
    );
    if let (Some(next), Some(next_delta)) = (part.next, next_delta) {
        let NextRows {
            mut weights,
            state,
            gradient,
            transposed,
        } = next;
        let rows = (units, weights.view_mut());
        update_weight_rows(update, input, next_delta, rows, state, gradient);
        // For the next step's deltas, as the update by rows makes W2ᵀ whole.
        transpose_into(weights.view(), transposed);
    }
}

/// Whether W1's update is the fused descent, which leaves the rows of unlit pixels alone
/// (weight decay moves every row).
pub(super) fn fused_descent(hyper: &Hyperparameters) -> bool {
    hyper.optimiser == Optimiser::GradientDescent && hyper.weight_decay == 0.0
}

/// bk (or some of its entries): its gradient scale · the column sums of Dk (B, out) (Dk's
/// columns of those entries), and its update.
fn update_bias(
    update: Update<'_>,
    delta: ArrayView2<f32>,
    bias: ArrayViewMut1<f32>,
    state: OptimiserViews<'_, Ix1>,
    mut gradient: ArrayViewMut1<f32>,
) {
    bias_gradient(delta, update.scale, gradient.view_mut());
    step_parameters(update, bias, state, gradient.view(), 0.0);
}

/// Rows `rows` of Wk (those of inputs `rows`, all of them for a whole layer): their gradient,
/// scale · A(k−1)ᵀ Dk's rows from A(k−1) (B, in) and Dk (B, out), and their update.
fn update_weight_rows(
    update: Update<'_>,
    input: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    (rows, weights): (Range<usize>, ArrayViewMut2<f32>),
    state: OptimiserViews<'_, Ix2>,
    mut gradient: ArrayViewMut2<f32>,
) {
    let Update {
        hyper, simd, scale, ..
    } = update;
    dense_weights_gradient_rows(simd, input, rows, delta, scale, gradient.view_mut());
    step_parameters(update, weights, state, gradient.view(), hyper.weight_decay);
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
    let (first_weights, first_bias) = first.map(|l| (&mut l.weights, &mut l.bias)).unzip();
    let (second_weights, second_bias) = second.map(|l| (&mut l.weights, &mut l.bias)).unzip();
    let state = (
        first_weights.map(|m| m.view_mut()),
        second_weights.map(|m| m.view_mut()),
    );
    let rows = (0..input.ncols(), layer.weights.view_mut());
    let gradient = weights_gradient_k.view_mut();
    update_weight_rows(update, input, delta, rows, state, gradient);
    let bias_state = (
        first_bias.map(|b| b.view_mut()),
        second_bias.map(|b| b.view_mut()),
    );
    let bias = layer.bias.view_mut();
    update_bias(update, delta, bias, bias_state, bias_gradient_k.view_mut());
}

/// What the last part of an update owns beyond its rows of W1: b1, the later layers, their
/// optimiser state, gradients and transposes.
pub(super) struct LaterLayers<'a> {
    pub(super) first_bias: &'a mut Array1<f32>,
    pub(super) first_bias_state: (Option<&'a mut Array1<f32>>, Option<&'a mut Array1<f32>>),
    pub(super) layers: &'a mut [Layer],
    /// The later layers' optimiser state (first, second moments), empty where it keeps none.
    pub(super) state: (&'a mut [Layer], &'a mut [Layer]),
    pub(super) weight_gradients: &'a mut [Array2<f32>],
    /// b1's gradient, then the later layers'.
    pub(super) bias_gradients: &'a mut [Array1<f32>],
    pub(super) weights_transposed: &'a mut [Array2<f32>],
}

/// b1 and every later layer: their gradients and updates, from the step's `inputs` (what
/// layers 2 .. L read, each (B, in)) and `deltas` D1 .. DL; then each layer's new transpose.
pub(super) fn update_later_layers(
    update: Update<'_>,
    inputs: &[ArrayView2<f32>],
    deltas: &[ArrayView2<f32>],
    later: LaterLayers<'_>,
) {
    let (first_state, second_state) = later.state;
    let (first_bias_gradient, bias_gradients) = (later.bias_gradients)
        .split_first_mut()
        .expect("b1 has a gradient");
    let (first, second) = later.first_bias_state;
    let bias_state = (first.map(|b| b.view_mut()), second.map(|b| b.view_mut()));
    let bias = later.first_bias.view_mut();
    let gradient = first_bias_gradient.view_mut();
    update_bias(update, deltas[0], bias, bias_state, gradient);
    for (k, layer) in later.layers.iter_mut().enumerate() {
        let state = (first_state.get_mut(k), second_state.get_mut(k));
        let gradients = (&mut later.weight_gradients[k], &mut bias_gradients[k]);
        update_layer(update, inputs[k], deltas[k + 1], layer, state, gradients);
        // For the next step's deltas, here rather than alone before its forward pass: the
        // modern preset's W2ᵀ takes 30 µs.
        transpose_into(layer.weights.view(), later.weights_transposed[k].view_mut());
    }
}

/// The optimiser's step of one tensor, as [`optimiser_update`] takes it, with Adam's on the
/// update's vectors where every tensor is one run of values ([`adam_update_vectorised`]: the
/// same bits).
fn step_parameters<D: Dimension>(
    update: Update<'_>,
    mut parameter: ArrayViewMut<'_, f32, D>,
    state: OptimiserViews<'_, D>,
    gradient: ArrayView<'_, f32, D>,
    weight_decay: f32,
) {
    let Update { hyper, simd, t, .. } = update;
    let rate = hyper.learning_rate;
    let in_runs = |m: &ArrayViewMut<'_, f32, D>, v: &ArrayViewMut<'_, f32, D>| {
        [&parameter.view(), &m.view(), &v.view(), &gradient]
            .iter()
            .all(|a| a.is_standard_layout())
    };
    match (hyper.optimiser, state) {
        (
            Optimiser::Adam {
                beta1,
                beta2,
                epsilon,
            },
            (Some(mut m), Some(mut v)),
        ) if in_runs(&m, &v) => {
            if weight_decay != 0.0 {
                decoupled_weight_decay(parameter.view_mut(), rate, weight_decay);
            }
            let in_run = "a standard layout is one run";
            let tensors = (
                parameter.as_slice_mut().expect(in_run),
                m.as_slice_mut().expect(in_run),
                v.as_slice_mut().expect(in_run),
            );
            let step = AdamStep {
                beta1,
                beta2,
                epsilon,
                t,
            };
            adam_update_vectorised(
                simd,
                tensors,
                gradient.as_slice().expect(in_run),
                rate,
                step,
            );
        }
        (optimiser, state) => {
            optimiser_update(optimiser, parameter, state, gradient, rate, weight_decay, t)
        }
    }
}
