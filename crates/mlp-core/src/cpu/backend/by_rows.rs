//! A training step's update cut by rows of W1 (pixels): each thread the rows of its run of
//! pixels, with their optimiser state and gradient, from the batch regrouped by its pixels;
//! the last one also b1 and the later layers.

use std::ops::Range;
use std::time::{Duration, Instant};

use ndarray::{Array1, Array2, Axis};

use super::{CpuBackend, input_changes, step_update, update_inputs};
use crate::backend::OptimiserState;
use crate::cpu::updates::{
    FirstLayerRows, LaterLayers, update_first_layer_rows, update_later_layers,
};
use crate::cpu::workspace::{cut_axis, cut_optional, split_first_layer};
use crate::network::Layer;
use crate::sparse::{PixelColumns, PixelEntries};

impl CpuBackend {
    /// The gradients and updates of the gathered batch of `b` rows from row `first_row` of the
    /// training order, by parameters: W1's rows (pixels) cut between the threads where their
    /// shares balance (`FirstLayerSplit`), b1 and the later layers with the last. In the file
    /// order, unchanged images regrouped by pixel once are kept for the later epochs' same
    /// batches (`FileOrderPixels`).
    pub(super) fn update_by_rows(&mut self, first_row: usize, b: usize) {
        let pixels = self.parameters.layers[0].weights.nrows();
        let parts = self.parts(pixels);
        let cuts = self.first_layer_split.cuts(b, parts);
        let hyper = &self.hyper;
        let ws = &mut self.workspace;
        let (images, batch) = if input_changes(hyper, 0).any() {
            (&self.input_changed, &self.input_rows[..b])
        } else {
            (&self.train_images, &ws.batch[..b])
        };
        let state = &mut self.state;
        let update = step_update(hyper, self.simd, state, b);
        let (inputs, deltas) = update_inputs(hyper, &ws.activations, &ws.dropped, &ws.deltas, b);
        let keeps = self.order.is_none() && !input_changes(hyper, 0).any();
        let kept = self.file_order_pixels.get(first_row, b).filter(|_| keeps);
        if ws.by_pixel.len() < parts {
            ws.by_pixel.resize_with(parts, Default::default);
        }
        let mut update_parts = first_layer_parts(
            &mut self.parameters.layers,
            state,
            (&mut ws.weight_gradients, &mut ws.bias_gradients),
            &mut ws.weights_transposed,
            &mut ws.by_pixel,
            &cuts,
        );
        self.workers.for_each(&mut update_parts, |part| {
            let start = Instant::now();
            let kept = kept.map(|all| all.from_pixel(part.pixels.start));
            let by_pixel: &dyn PixelEntries = match &kept {
                Some(kept) => kept,
                None => part.by_pixel.fill_from(images, batch, part.pixels.clone()),
            };
            if let Some(rows) = part.rows.take() {
                update_first_layer_rows(update, deltas[0], rows, by_pixel);
            }
            if let Some(later) = part.later.take() {
                update_later_layers(update, &inputs, &deltas, later);
            }
            part.time = start.elapsed();
        });
        if self.workers.ran_apart() {
            let times: Vec<Duration> = update_parts.iter().map(|part| part.time).collect();
            self.first_layer_split.balance(&times);
        }
        drop(update_parts);
        if keeps && kept.is_none() {
            self.file_order_pixels
                .keep(first_row, b, &ws.by_pixel[..parts]);
        }
    }
}

/// What one thread updates: W1's rows of `pixels` with their state and gradient, the buffer
/// it regroups the batch's pixels in, and for the last part b1 and the later layers.
struct FirstLayerPart<'a> {
    pixels: Range<usize>,
    rows: Option<FirstLayerRows<'a>>,
    by_pixel: &'a mut PixelColumns,
    later: Option<LaterLayers<'a>>,
    /// How long its update took, for `FirstLayerSplit::balance`.
    time: Duration,
}

/// The parts of an update cut at `cuts` (W1's pixels), each with the views it updates.
fn first_layer_parts<'a>(
    layers: &'a mut [Layer],
    state: &'a mut OptimiserState,
    (weight_gradients, bias_gradients): (&'a mut [Array2<f32>], &'a mut [Array1<f32>]),
    weights_transposed: &'a mut [Array2<f32>],
    by_pixel: &'a mut [PixelColumns],
    cuts: &[usize],
) -> Vec<FirstLayerPart<'a>> {
    let (first_layer, layers) = layers.split_first_mut().expect("a network has layers");
    let (first_state, later_first) = split_first_layer(&mut state.first);
    let (second_state, later_second) = split_first_layer(&mut state.second);
    let (first_weights_state, first_bias_state) = first_state.unzip();
    let (second_weights_state, second_bias_state) = second_state.unzip();
    let (first_gradient, later_gradients) = weight_gradients
        .split_first_mut()
        .expect("a network has layers");
    let parts = cuts.len() - 1;
    let cut_state = |state: Option<&'a mut Array2<f32>>| {
        cut_optional(state.map(|s| s.view_mut()), Axis(0), cuts)
    };
    let weights = cut_axis(first_layer.weights.view_mut(), Axis(0), cuts);
    let gradients = cut_axis(first_gradient.view_mut(), Axis(0), cuts);
    let (firsts, seconds) = (
        cut_state(first_weights_state),
        cut_state(second_weights_state),
    );
    let mut later = Some(LaterLayers {
        first_bias: &mut first_layer.bias,
        first_bias_state: (first_bias_state, second_bias_state),
        layers,
        state: (later_first, later_second),
        weight_gradients: later_gradients,
        bias_gradients,
        weights_transposed,
    });
    let rows = weights.into_iter().zip(firsts).zip(seconds).zip(gradients);
    rows.zip(by_pixel.iter_mut())
        .enumerate()
        .map(
            |(i, ((((weights, first), second), gradient), by_pixel))| FirstLayerPart {
                pixels: cuts[i]..cuts[i + 1],
                rows: Some((weights, first, second, gradient)),
                by_pixel,
                later: if i + 1 == parts { later.take() } else { None },
                time: Duration::ZERO,
            },
        )
        .collect()
}
