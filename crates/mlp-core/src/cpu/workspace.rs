//! The buffers of the fast backend's training step, allocated once, and how they are cut
//! between the threads of a step.

use std::collections::HashMap;
use std::ops::Range;
use std::time::Duration;

use ndarray::{
    Array1, Array2, ArrayView2, ArrayViewMut, ArrayViewMut2, Axis, Dimension, Ix1, Ix2, s,
};

use crate::aligned::{aligned, aligned_zeros};
use crate::network::{Layer, Parameters};
use crate::options::Optimiser;
use crate::sparse::{PackedPixelColumns, PixelColumns};

/// The buffers of one training step: activations A1..AL, deltas D1..DL and the gradients,
/// each starting on a cache line ([`crate::aligned`]).
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
    /// W2ᵀ .. WLᵀ, stored row by row for the deltas' products (`crate::dense`): made from the
    /// parameters here and wherever they are set, and after each update of a layer.
    pub(super) weights_transposed: Vec<Array2<f32>>,
    pub(super) bias_gradients: Vec<Array1<f32>>,
    /// The batch's images regrouped by pixel, for the first layer's weight gradient: one
    /// per part of W1's rows ([`FirstLayerSplit`]), made as the parts need them.
    pub(super) by_pixel: Vec<PixelColumns>,
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
                .map(|l| aligned_zeros(Ix2(shape(l).0, shape(l).1)))
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
                .map(|l| aligned(l.weights.t().to_owned()))
                .collect(),
            bias_gradients: parameters
                .layers
                .iter()
                .map(|l| aligned_zeros(Ix1(outputs(l))))
                .collect(),
            by_pixel: Default::default(),
        }
    }

    /// Makes W2ᵀ .. WLᵀ afresh from `parameters`.
    pub(super) fn transpose_weights(&mut self, parameters: &Parameters) {
        for (transposed, layer) in self
            .weights_transposed
            .iter_mut()
            .zip(&parameters.layers[1..])
        {
            crate::dense::transpose_into(layer.weights.view(), transposed.view_mut());
        }
    }
}

/// The most bytes [`FileOrderPixels`] keeps: MNIST's 600 batches take about 74 MB.
const FILE_ORDER_PIXELS_BYTES: usize = 512 << 20;

/// The first layer's lit pixels regrouped by pixel (every part of W1's rows) for each batch
/// of the file order trained so far, up to FILE_ORDER_PIXELS_BYTES. In that order (the
/// seed's) each epoch's batches are the same images, so the regrouping is done once: it was
/// a sixth of a seed step (docs/performance.md). Keyed by the batch's first row and rows.
#[derive(Default)]
pub(super) struct FileOrderPixels {
    /// Every pixel of each batch, however the threads cut them.
    batches: HashMap<(usize, usize), PackedPixelColumns>,
    bytes: usize,
}

impl FileOrderPixels {
    pub(super) fn get(&self, first_row: usize, rows: usize) -> Option<&PackedPixelColumns> {
        self.batches.get(&(first_row, rows))
    }

    /// Keeps a packed copy of `by_pixel`, the batch of `rows` from `first_row` regrouped (its
    /// parts consecutive ranges of pixels, from the first), where there is room.
    pub(super) fn keep(&mut self, first_row: usize, rows: usize, by_pixel: &[PixelColumns]) {
        let packed = PackedPixelColumns::packed_in_turn(by_pixel);
        let bytes = packed.bytes();
        if self.bytes + bytes <= FILE_ORDER_PIXELS_BYTES {
            self.bytes += bytes;
            self.batches.insert((first_row, rows), packed);
        }
    }
}

/// `0..len` cut into `parts` runs as even as can be: `parts + 1` cuts.
pub(super) fn even_cuts(len: usize, parts: usize) -> Vec<usize> {
    (0..=parts).map(|i| i * len / parts).collect()
}

/// Rows `0..rows` cut into `parts` runs of consecutive rows, as even as can be.
pub(super) fn row_ranges(rows: usize, parts: usize) -> Vec<Range<usize>> {
    let cuts = even_cuts(rows, parts);
    cuts.windows(2).map(|pair| pair[0]..pair[1]).collect()
}

/// Each array's rows cut at `ranges` (consecutive runs from row 0): part i holds every array's
/// rows `ranges[i]`, as views.
pub(super) fn row_parts<'a>(
    arrays: &'a mut [Array2<f32>],
    ranges: &[Range<usize>],
) -> Vec<Vec<ArrayViewMut2<'a, f32>>> {
    let mut parts: Vec<Vec<_>> = ranges.iter().map(|_| Vec::new()).collect();
    let end = ranges.last().map_or(0, |range| range.end);
    for array in arrays {
        let mut rest = array.slice_mut(s![..end, ..]);
        for (part, range) in parts.iter_mut().zip(ranges) {
            let (rows, after) = rest.split_at(Axis(0), range.len());
            part.push(rows);
            rest = after;
        }
    }
    parts
}

/// A view cut along `axis` at `cuts` (`cuts[i]..cuts[i + 1]` is part i), as views.
pub(super) fn cut_axis<'a, D: Dimension>(
    view: ArrayViewMut<'a, f32, D>,
    axis: Axis,
    cuts: &[usize],
) -> Vec<ArrayViewMut<'a, f32, D>> {
    let mut parts = Vec::with_capacity(cuts.len().saturating_sub(1));
    let mut rest = view;
    for pair in cuts.windows(2) {
        let (part, after) = rest.split_at(axis, pair[1] - pair[0]);
        parts.push(part);
        rest = after;
    }
    parts
}

/// Each of `cuts`' parts of an array that may be absent (optimiser state the optimiser does not
/// keep), cut along `axis`.
pub(super) fn cut_optional<'a, D: Dimension>(
    array: Option<ArrayViewMut<'a, f32, D>>,
    axis: Axis,
    cuts: &[usize],
) -> Vec<Option<ArrayViewMut<'a, f32, D>>> {
    match array {
        Some(array) => cut_axis(array, axis, cuts).into_iter().map(Some).collect(),
        None => cuts.windows(2).map(|_| None).collect(),
    }
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

/// The most [`FirstLayerSplit::balance`] moves a part's share in one step, for two parts.
const BALANCE_STEP: f64 = 0.02;

/// How the fast backend cuts W1's rows between the parts of an update, one a thread: part i
/// takes pixels `cuts[i]..cuts[i + 1]`, and the last one also b1 and every later layer. The
/// cuts change no number (each row of W1 is updated alone), only how long each thread takes.
/// They are placed where each part's share of a count of the multiply-adds is its `shares`
/// entry; the shares start even and are then moved by measurement: after each update, from
/// the parts that took longer than the mean to those that took less
/// ([`FirstLayerSplit::balance`]), so that the count's weights need only be roughly right on
/// any machine.
pub(super) struct FirstLayerSplit {
    /// For each count of parts (from 1), each part's share of the counted work, summing to 1:
    /// kept apart, as a step's thread count may change ([`super::step_threads`]).
    shares: Vec<Vec<f64>>,
    /// `lit[p]` is how many training images pixels `0..p` are lit in, summed.
    lit: Vec<f64>,
    /// Multiply-adds of W1's gradient per lit entry of a pixel row: W1's width.
    width: f64,
    /// What an optimiser step costs a parameter, in multiply-adds.
    step: f64,
    /// Per step of B rows, the later layers' gradients cost B times `later_products`, and
    /// their optimiser steps `later_parameters` times `step`.
    later_products: f64,
    later_parameters: f64,
    /// Whether W1's optimiser step touches unlit rows (anything but the fused descent).
    every_row_stepped: bool,
}

impl FirstLayerSplit {
    /// `lit_per_pixel[p]` is how many of the `images` training images pixel p is lit in.
    pub(super) fn new(
        parameters: &Parameters,
        lit_per_pixel: &[usize],
        images: usize,
        optimiser: Optimiser,
        every_row_stepped: bool,
    ) -> Self {
        let mut lit = vec![0.0];
        for &count in lit_per_pixel {
            lit.push(lit[lit.len() - 1] + count as f64 / images.max(1) as f64);
        }
        let later = &parameters.layers[1..];
        // Fitted to the modern preset's profile (docs/performance.md), in units of W1's sparse
        // multiply-adds with their regrouping: Adam's step on a parameter takes about 14, a
        // dense multiply-add of the later layers 0.5. (Counting the later layers' transposes,
        // which the last part also makes, measured no better.)
        let step = match optimiser {
            Optimiser::GradientDescent => 1.0,
            Optimiser::Momentum { .. } => 3.0,
            Optimiser::Adam { .. } => 14.0,
        };
        Self {
            shares: Vec::new(),
            lit,
            width: parameters.layers[0].weights.ncols() as f64,
            step,
            later_products: later.iter().map(|l| 0.5 * l.weights.len() as f64).sum(),
            later_parameters: later
                .iter()
                .map(|l| (l.weights.len() + l.bias.len()) as f64)
                .sum(),
            every_row_stepped,
        }
    }

    /// Gives a count of `parts` even shares, the first time it is used.
    fn start_shares(&mut self, parts: usize) {
        if self.shares.len() < parts {
            self.shares.resize_with(parts, Vec::new);
        }
        let shares = &mut self.shares[parts - 1];
        if shares.is_empty() {
            *shares = vec![1.0 / parts as f64; parts];
        }
    }

    /// The pixels where the parts of a step of `rows` rows start, then W1's rows: `parts + 1`
    /// cuts, from 0. Each count of parts has shares of its own.
    pub(super) fn cuts(&mut self, rows: usize, parts: usize) -> Vec<usize> {
        let parts = parts.max(1);
        self.start_shares(parts);
        let shares = &self.shares[parts - 1];
        let rows = rows as f64;
        let first_layer = |pixels: usize| {
            let stepped = if self.every_row_stepped {
                pixels as f64
            } else {
                0.0
            };
            rows * self.lit[pixels] * self.width + stepped * self.width * self.step
        };
        let pixels = self.lit.len() - 1;
        let later = rows * self.later_products + self.later_parameters * self.step;
        let total = first_layer(pixels) + later;
        let mut cuts = vec![0];
        let mut before = 0.0;
        for share in &shares[..parts - 1] {
            before += share;
            let from = cuts[cuts.len() - 1];
            let cut = (from..pixels)
                .find(|&p| first_layer(p) >= total * before)
                .unwrap_or(pixels);
            cuts.push(cut);
        }
        cuts.push(pixels);
        cuts
    }

    /// Moves the shares after an update whose parts took `times`: each towards the mean of the
    /// times, by at most `BALANCE_STEP` a step for two parts, so that one step that the host
    /// interrupted moves them little.
    pub(super) fn balance(&mut self, times: &[Duration]) {
        let times: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
        let total: f64 = times.iter().sum();
        if times.is_empty() || total <= 0.0 {
            return;
        }
        let mean = total / times.len() as f64;
        self.start_shares(times.len());
        let shares = &mut self.shares[times.len() - 1];
        for (share, time) in shares.iter_mut().zip(&times) {
            let lag = (mean - time) / total;
            *share = (*share + BALANCE_STEP * times.len() as f64 * lag).max(0.0);
        }
        let sum: f64 = shares.iter().sum();
        shares.iter_mut().for_each(|share| *share /= sum);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::network::LayerSizes;
    use crate::options::Init;

    fn split_of(sizes: &[usize], lit: &[usize], optimiser: Optimiser, stepped: bool) -> usize {
        let (input, classes) = (sizes[0], sizes[sizes.len() - 1]);
        let sizes = LayerSizes::new(sizes.to_vec(), input, classes).expect("valid sizes");
        let parameters = Parameters::init(&sizes, Init::Normal, 0);
        FirstLayerSplit::new(&parameters, lit, 10, optimiser, stepped).cuts(100, 2)[1]
    }

    /// The split of a 100-64-1 network trained by plain descent on 100 pixels each lit in
    /// half of 10 images.
    fn evenly_lit_split() -> FirstLayerSplit {
        let sizes = LayerSizes::new(vec![100, 64, 1], 100, 1).expect("valid sizes");
        let parameters = Parameters::init(&sizes, Init::Normal, 0);
        let gd = Optimiser::GradientDescent;
        FirstLayerSplit::new(&parameters, &[5; 100], 10, gd, false)
    }

    /// A second part that takes longer moves the cut towards the end, a step at a time; a
    /// first part that takes longer moves it back; the shares stay within 0..=1.
    #[test]
    fn measured_times_move_the_cut_towards_the_slower_part() {
        let mut split = evenly_lit_split();
        let start = split.cuts(100, 2)[1];
        let ms = Duration::from_millis;
        split.balance(&[ms(1), ms(3)]);
        let later = split.cuts(100, 2)[1];
        assert!(later > start, "{later} after {start}");
        for _ in 0..200 {
            split.balance(&[ms(1), ms(3)]);
        }
        assert_eq!(split.cuts(100, 2), [0, 100, 100]);
        for _ in 0..200 {
            split.balance(&[ms(3), ms(1)]);
        }
        assert_eq!(split.cuts(100, 2), [0, 0, 100]);
    }

    /// Four parts of evenly lit pixels start near quarters of W1 (the last one a little short:
    /// it has b1 and layer 2 too); a part that takes longer than the others gives pixels to
    /// them, and the cuts always run in order from 0 to every pixel.
    #[test]
    fn four_parts_start_even_and_move_from_the_slowest() {
        let mut split = evenly_lit_split();
        let even = split.cuts(100, 4);
        assert_eq!((even[0], even[4]), (0, 100));
        for (i, &cut) in even[1..4].iter().enumerate() {
            assert!((25 * (i + 1)..=25 * (i + 1) + 2).contains(&cut), "{even:?}");
        }
        let ms = Duration::from_millis;
        for _ in 0..20 {
            split.balance(&[ms(1), ms(4), ms(1), ms(1)]);
        }
        let moved = split.cuts(100, 4);
        assert!(moved[2] - moved[1] < even[2] - even[1], "{moved:?}");
        assert!(moved.windows(2).all(|w| w[0] <= w[1]), "{moved:?}");
        let two = split.cuts(100, 2);
        assert!((50..=53).contains(&two[1]), "two parts start even: {two:?}");
        assert_eq!(split.cuts(100, 4), moved, "four parts keep their shares");
    }

    /// Evenly lit pixels and little behind layer 1 cut near the middle; heavy later layers
    /// move the cut towards the end, up to giving the first part all of W1; a share lit
    /// only at the end goes to the first part.
    #[test]
    fn the_cut_balances_the_two_shares() {
        let gd = Optimiser::GradientDescent;
        let even = split_of(&[100, 64, 1], &[5; 100], gd, false);
        assert!((50..=53).contains(&even), "{even}");
        let heavy = split_of(&[100, 64, 256, 10], &[5; 100], gd, false);
        assert!(heavy > 60, "{heavy}");
        assert_eq!(split_of(&[100, 8, 512, 512, 10], &[1; 100], gd, false), 100);
        let mut late = vec![0; 100];
        late[90..].fill(9);
        let at = split_of(&[100, 64, 1], &late, gd, false);
        assert!((90..=96).contains(&at), "{at}");
        let adam = Optimiser::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        };
        let stepped = split_of(&[100, 64, 1], &late, adam, true);
        assert!(
            stepped < at,
            "{stepped} against {at}: every row's step counts"
        );
    }
}
