//! The row-wise phase of the fast CPU backend's step: the forward pass and every delta for
//! some rows of a batch (the backend gives each of its threads a run of rows), through the
//! dropout where the run has it.

use ndarray::{Array2, ArrayViewMut2, Zip};

use super::{
    DropoutConstants, activation_forward, dropout_row_hash, output_delta,
    softmax_cross_entropy_delta, softmax_forward,
};
use crate::dense::{dense_hidden_delta, dense_linear_forward};
use crate::network::Layer;
use crate::options::{Activation, Dropout, Hyperparameters, Output};
use crate::simd::InstructionSet;
use crate::sparse::{SparseImages, sparse_linear_forward};
use crate::vectorised::sigmoid_forward_vectorised;

/// Dropout while training: its rate and seed, the step being taken (from 1), the batch row
/// of the first row here, the rows' dropped outputs Ã1 .. Ã(L−1), which layers 2 .. L read,
/// and each unit's factor Mk / (1 − p), drawn once in the forward pass for the backward.
pub(super) struct Dropped<'a, 'b> {
    pub(super) dropout: Dropout,
    pub(super) step: u64,
    pub(super) first_row: usize,
    pub(super) outputs: &'a mut [ArrayViewMut2<'b, f32>],
    pub(super) factors: &'a mut [ArrayViewMut2<'b, f32>],
}

impl<'b> Dropped<'_, 'b> {
    fn reborrow(&mut self) -> Dropped<'_, 'b> {
        Dropped {
            dropout: self.dropout,
            step: self.step,
            first_row: self.first_row,
            outputs: &mut *self.outputs,
            factors: &mut *self.factors,
        }
    }
}

/// Fills `factors` (rows, out) with hidden layer `layer`'s dropout factors of batch rows
/// `first_row..`, as `dropout_forward` computes them (tests/fast_backend.rs checks the two
/// agree): the hash of (seed, step, layer, row) once a row, then one hash a unit.
fn dropout_factors(
    factors: &mut ArrayViewMut2<f32>,
    (dropout, step, first_row): (Dropout, u64, usize),
    layer: usize,
) {
    let constants = DropoutConstants::of(Some(dropout));
    for (r, mut row) in factors.outer_iter_mut().enumerate() {
        let row_hash = dropout_row_hash(constants, step, layer, first_row + r);
        for (unit, factor) in row.iter_mut().enumerate() {
            let kept = constants.keeps(row_hash, unit as u32);
            *factor = if kept { constants.scale } else { 0.0 };
        }
    }
}

/// Whether layer `k` of a network whose last layer is `last` has a sigmoid output: a hidden
/// layer under a sigmoid activation, or a sigmoid-MSE output layer.
pub(super) fn is_sigmoid(hyper: &Hyperparameters, k: usize, last: usize) -> bool {
    matches!(
        (k == last, hyper.output, hyper.activation),
        (false, _, Activation::Sigmoid) | (true, Output::SigmoidMse, _)
    )
}

/// The forward pass of images `batch` (B) of `images`: fills A1..AL, each `activations[k]`
/// (B, out). Hidden layers use the chosen activation, the output layer sigmoid or softmax;
/// sigmoids are computed a vector at a time ([`crate::vectorised`]). Under `dropped` each hidden
/// layer's output also goes through its dropout (E2d) into the next layer's input. Where
/// `first_summed`, `activations[0]` already holds S1 (a step cut by hidden units sums it apart,
/// [`super::units`]) and layer 1 only applies its activation.
pub(super) fn forward(
    layers: &[Layer],
    (hyper, simd): (&Hyperparameters, InstructionSet),
    images: &SparseImages,
    batch: &[u32],
    activations: &mut [ArrayViewMut2<f32>],
    mut dropped: Option<Dropped<'_, '_>>,
    first_summed: bool,
) {
    let last = layers.len() - 1;
    for (k, layer) in layers.iter().enumerate() {
        let (before, rest) = activations.split_at_mut(k);
        let sum = &mut rest[0];
        let (weights, bias) = (layer.weights.view(), layer.bias.view());
        let sigmoid = is_sigmoid(hyper, k, last);
        if k == 0 {
            if !first_summed {
                sparse_linear_forward(simd, images, batch, weights, bias, sum.view_mut());
            }
            if sigmoid {
                sigmoid_forward_vectorised(simd, sum.view_mut());
            }
        } else {
            let input = match &dropped {
                Some(d) => d.outputs[k - 1].view(),
                None => before[k - 1].view(),
            };
            // The sigmoid is applied to each tile of Sk in registers.
            dense_linear_forward(simd, input, weights, bias, sigmoid, sum.view_mut());
        }
        // An output layer that is not a sigmoid is a softmax.
        match (sigmoid, k == last) {
            (true, _) => {}
            (false, false) => activation_forward(sum.view_mut(), hyper.activation),
            (false, true) => softmax_forward(sum.view_mut()),
        }
        if let (Some(d), true) = (&mut dropped, k < last) {
            let at = (d.dropout, d.step, d.first_row);
            dropout_factors(&mut d.factors[k], at, k + 1);
            Zip::from(&mut d.outputs[k])
                .and(&*sum)
                .and(&d.factors[k])
                .for_each(|out, &a, &f| *out = a * f);
        }
    }
}

/// The row-wise phase of a step for images `batch` (B) labelled `labels`: the forward pass,
/// then D_L and every hidden delta (docs/SEED.md's order), through the dropout under
/// `dropped`. `weights_transposed[k]` is W(k+2)ᵀ, which D(k+1)'s product reads;
/// `first_summed` as [`forward`] takes it.
pub(super) fn forward_and_deltas(
    (layers, weights_transposed): (&[Layer], &[Array2<f32>]),
    (hyper, simd): (&Hyperparameters, InstructionSet),
    images: &SparseImages,
    (batch, labels): (&[u32], &[u8]),
    (activations, deltas): (&mut [ArrayViewMut2<f32>], &mut [ArrayViewMut2<f32>]),
    dropped: Option<Dropped<'_, '_>>,
    first_summed: bool,
) {
    let mut dropped = dropped;
    forward(
        layers,
        (hyper, simd),
        images,
        batch,
        activations,
        dropped.as_mut().map(Dropped::reborrow),
        first_summed,
    );
    let last = layers.len() - 1;
    let output = activations[last].view();
    match hyper.output {
        Output::SigmoidMse => output_delta(output, labels, deltas[last].view_mut()),
        Output::SoftmaxCrossEntropy => {
            softmax_cross_entropy_delta(output, labels, deltas[last].view_mut());
        }
    }
    for k in (0..last).rev() {
        let (lower, upper) = deltas.split_at_mut(k + 1);
        dense_hidden_delta(
            simd,
            upper[0].view(),
            weights_transposed[k].view(),
            (activations[k].view(), hyper.activation),
            lower[k].view_mut(),
        );
        if let Some(d) = &dropped {
            Zip::from(&mut lower[k])
                .and(&d.factors[k])
                .for_each(|delta, &f| *delta *= f);
        }
    }
}
