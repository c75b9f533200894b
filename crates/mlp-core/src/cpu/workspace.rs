//! The buffers of the fast backend's training step, allocated once, and how they are cut
//! between the two threads of a step.

use std::collections::HashMap;

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, s};

use crate::network::{Layer, Parameters};
use crate::sparse::{PackedPixelColumns, PixelColumns};

/// The buffers of one training step: activations A1..AL, deltas D1..DL and the gradients.
pub(super) struct Workspace {
    /// The batch's image indices and labels, in the training order; their length is the
    /// most rows the buffers hold.
    pub(super) batch: Vec<u32>,
    pub(super) labels: Vec<u8>,

    pub(super) activations: Vec<Array2<f32>>,
    /// Under dropout, Ã1 .. Ã(L−1): what layers 2 .. L read (the last is unused).
    pub(super) dropped: Vec<Array2<f32>>,
    /// Under dropout, each hidden unit's factor Mk / (1 − p), for the backward pass.
    pub(super) dropout_factors: Vec<Array2<f32>>,
    pub(super) deltas: Vec<Array2<f32>>,
    pub(super) weight_gradients: Vec<Array2<f32>>,
    /// W2ᵀ .. WLᵀ, stored row by row for the deltas' products (`crate::dense`), made afresh
    /// each step.
    pub(super) weights_transposed: Vec<Array2<f32>>,
    pub(super) bias_gradients: Vec<Array1<f32>>,
    /// The batch's images regrouped by pixel, for the first layer's weight gradient: one
    /// per half of W1's rows.
    pub(super) by_pixel: [PixelColumns; 2],
}

impl Workspace {
    /// Buffers for batches of `rows` rows; the dropout ones hold rows only `with_dropout`.
    pub(super) fn new(parameters: &Parameters, rows: usize, with_dropout: bool) -> Self {
        let dropout_rows = if with_dropout { rows } else { 0 };
        let outputs = |l: &Layer| l.weights.ncols();
        let per_layer = |shape: &dyn Fn(&Layer) -> (usize, usize)| -> Vec<Array2<f32>> {
            parameters
                .layers
                .iter()
                .map(|l| Array2::zeros(shape(l)))
                .collect()
        };
        Self {
            batch: vec![0; rows],
            labels: vec![0; rows],

            activations: per_layer(&|l| (rows, outputs(l))),
            dropped: per_layer(&|l| (dropout_rows, outputs(l))),
            dropout_factors: per_layer(&|l| (dropout_rows, outputs(l))),
            deltas: per_layer(&|l| (rows, outputs(l))),
            weight_gradients: per_layer(&|l| l.weights.dim()),
            weights_transposed: (parameters.layers.iter().skip(1))
                .map(|l| Array2::zeros(l.weights.t().dim()))
                .collect(),
            bias_gradients: parameters
                .layers
                .iter()
                .map(|l| Array1::zeros(outputs(l)))
                .collect(),
            by_pixel: Default::default(),
        }
    }
}

/// The most bytes [`FileOrderPixels`] keeps: MNIST's 600 batches take about 74 MB.
const FILE_ORDER_PIXELS_BYTES: usize = 512 << 20;

/// The first layer's lit pixels regrouped by pixel (both halves of W1's rows) for each batch
/// of the file order trained so far, up to FILE_ORDER_PIXELS_BYTES. In that order (the
/// seed's) each epoch's batches are the same images, so the regrouping is done once: it was
/// a sixth of a seed step (docs/performance.md). Keyed by the batch's first row and rows.
#[derive(Default)]
pub(super) struct FileOrderPixels {
    batches: HashMap<(usize, usize), [PackedPixelColumns; 2]>,
    bytes: usize,
}

impl FileOrderPixels {
    pub(super) fn get(&self, first_row: usize, rows: usize) -> Option<&[PackedPixelColumns; 2]> {
        self.batches.get(&(first_row, rows))
    }

    /// Keeps a packed copy of `by_pixel`, the batch of `rows` from `first_row` regrouped,
    /// where there is room.
    pub(super) fn keep(&mut self, first_row: usize, rows: usize, by_pixel: &[PixelColumns; 2]) {
        let packed = by_pixel.each_ref().map(PackedPixelColumns::packed);
        let bytes: usize = packed.iter().map(PackedPixelColumns::bytes).sum();
        if self.bytes + bytes <= FILE_ORDER_PIXELS_BYTES {
            self.bytes += bytes;
            self.batches.insert((first_row, rows), packed);
        }
    }
}

/// The first `rows` rows of each array, cut at row `mid` into two views.
pub(super) fn split_rows(
    arrays: &mut [Array2<f32>],
    rows: usize,
    mid: usize,
) -> (Vec<ArrayViewMut2<'_, f32>>, Vec<ArrayViewMut2<'_, f32>>) {
    arrays
        .iter_mut()
        .map(|a| a.slice_mut(s![..rows, ..]).split_at(Axis(0), mid))
        .unzip()
}

/// An optional optimiser-state matrix cut at row `mid` into two views.
pub(super) fn split_state(
    state: Option<&mut Array2<f32>>,
    mid: usize,
) -> (
    Option<ArrayViewMut2<'_, f32>>,
    Option<ArrayViewMut2<'_, f32>>,
) {
    state.map(|m| m.view_mut().split_at(Axis(0), mid)).unzip()
}

/// One layer's optimiser state for its weights and its bias, borrowed apart.
pub(super) type LayerState<'a> = (&'a mut Array2<f32>, &'a mut Array1<f32>);

/// The first layer's optimiser state, if the optimiser keeps any, and the later layers'.
pub(super) fn split_first_layer(state: &mut [Layer]) -> (Option<LayerState<'_>>, &mut [Layer]) {
    match state {
        [Layer { weights, bias }, later @ ..] => (Some((weights, bias)), later),
        [] => (None, &mut []),
    }
}

/// The first `rows` rows of each array.
pub(super) fn first_rows(arrays: &[Array2<f32>], rows: usize) -> Vec<ArrayView2<'_, f32>> {
    arrays.iter().map(|a| a.slice(s![..rows, ..])).collect()
}
