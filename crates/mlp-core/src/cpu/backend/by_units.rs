//! A training step cut by layer 1's hidden units ([`crate::cpu::units`]): layer 1's product as a
//! phase of its own, each thread its units' columns of S1 from its block of W1; then the rows
//! phase as in a step by rows; then the update, each thread its units' W1 columns, b1 entries
//! and W2 rows, the last one also b2 and the later layers.

use ndarray::{Array1, Array2, Axis, s};

use super::{CpuBackend, input_changes, step_update, update_inputs};
use crate::backend::OptimiserState;
use crate::cpu::units::UnitBlocks;
use crate::cpu::updates::{LaterLayers, NextRows, UnitPart, update_later_layers, update_units};
use crate::cpu::workspace::{cut_axis, cut_optional, even_cuts, split_first_layer};
use crate::network::Layer;
use crate::sparse::{PixelColumns, PixelEntries, sparse_linear_forward};

impl CpuBackend {
    /// Layer 1's product S1 = A0 W1 + b1 of the gathered batch of `b` rows, each part the units
    /// `cuts` gives it from its block of W1 (cut from W1 first where the blocks are not these);
    /// each part also regroups a run of the pixels for the update, unless the file order's
    /// regrouping is kept.
    pub(super) fn first_layer_by_units(&mut self, first_row: usize, b: usize, cuts: Vec<usize>) {
        if self.units.as_ref().is_none_or(|units| units.cuts != cuts) {
            self.settle_units();
            let weights = &self.parameters.layers[0].weights;
            self.units = Some(UnitBlocks::cut(weights, &self.state, cuts));
        }
        let units = self.units.as_ref().expect("cut above");
        let parts = units.blocks.len();
        let (hyper, simd) = (&self.hyper, self.simd);
        let pixel_cuts = even_cuts(self.parameters.layers[0].weights.nrows(), parts);
        let bias = self.parameters.layers[0].bias.view();
        let ws = &mut self.workspace;
        let (images, batch) = if input_changes(hyper, 0).any() {
            (&self.input_changed, &self.input_rows[..b])
        } else {
            (&self.train_images, &ws.batch[..b])
        };
        let keeps = self.order.is_none() && !input_changes(hyper, 0).any();
        let regroup = !(keeps && self.file_order_pixels.get(first_row, b).is_some());
        if ws.by_pixel.len() < parts {
            ws.by_pixel.resize_with(parts, Default::default);
        }
        let sums = cut_axis(
            ws.activations[0].slice_mut(s![..b, ..]),
            Axis(1),
            &units.cuts,
        );
        let mut jobs: Vec<_> = (sums.into_iter())
            .zip(&mut ws.by_pixel)
            .zip(&units.blocks)
            .enumerate()
            .collect();
        self.workers
            .for_each(&mut jobs, |(i, ((sum, by_pixel), block))| {
                let unit_bias = bias.slice(s![units.cuts[*i]..units.cuts[*i + 1]]);
                let weights = block.weights.view();
                sparse_linear_forward(simd, images, batch, weights, unit_bias, sum.view_mut());
                if regroup {
                    by_pixel.fill_from(images, batch, pixel_cuts[*i]..pixel_cuts[*i + 1]);
                }
            });
    }

    /// The gradients and updates of the gathered batch of `b` rows from row `first_row` of the
    /// training order, by layer 1's hidden units: each part the units of its block (their W1
    /// columns, b1 entries and W2 rows, [`update_units`]), from the pixels regrouped by
    /// [`Self::first_layer_by_units`]; the last part also b2 and the layers after the second.
    pub(super) fn update_by_units(&mut self, first_row: usize, b: usize) {
        let units = self.units.as_mut().expect("the step cut its units");
        let parts = units.blocks.len();
        let pixel_cuts = even_cuts(self.parameters.layers[0].weights.nrows(), parts);
        let hyper = &self.hyper;
        let ws = &mut self.workspace;
        let state = &mut self.state;
        let update = step_update(hyper, self.simd, state, b);
        let (inputs, deltas) = update_inputs(hyper, &ws.activations, &ws.dropped, &ws.deltas, b);
        let keeps = self.order.is_none() && !input_changes(hyper, 0).any();
        let kept = self.file_order_pixels.get(first_row, b).filter(|_| keeps);
        let regrouped = PixelRuns {
            runs: &ws.by_pixel[..parts],
            cuts: &pixel_cuts,
        };
        let by_pixel: &dyn PixelEntries = match kept {
            Some(kept) => kept,
            None => &regrouped,
        };
        let mut update_parts = unit_parts(
            &mut self.parameters.layers,
            state,
            (&mut ws.weight_gradients, &mut ws.bias_gradients),
            &mut ws.weights_transposed,
            units,
        );
        self.workers.for_each(&mut update_parts, |(part, later)| {
            let tensors = (inputs[0], deltas[0], deltas.get(1).copied());
            if let Some(part) = part.take() {
                update_units(update, tensors, part, by_pixel);
            }
            if let Some(later) = later.take() {
                update_later_layers(update, &inputs[1..], &deltas[1..], later);
            }
        });
        drop(update_parts);
        if keeps && kept.is_none() {
            self.file_order_pixels
                .keep(first_row, b, &ws.by_pixel[..parts]);
        }
    }
}

/// A batch's pixels regrouped a run of pixels at a time (run i from pixel `cuts[i]`), read as
/// one.
struct PixelRuns<'a> {
    runs: &'a [PixelColumns],
    cuts: &'a [usize],
}

impl PixelEntries for PixelRuns<'_> {
    fn pixel(&self, pixel: usize) -> (&[u32], &[f32]) {
        let run = self.cuts[1..].partition_point(|&cut| cut <= pixel);
        self.runs[run].pixel(pixel - self.cuts[run])
    }
}

/// An update by units cut into parts, each with the views it updates: its units (W1's block,
/// b1's entries, W2's rows), and for the last part b2 and the layers after the second.
fn unit_parts<'a>(
    layers: &'a mut [Layer],
    state: &'a mut OptimiserState,
    (weight_gradients, bias_gradients): (&'a mut [Array2<f32>], &'a mut [Array1<f32>]),
    weights_transposed: &'a mut [Array2<f32>],
    units: &'a mut UnitBlocks,
) -> Vec<(Option<UnitPart<'a>>, Option<LaterLayers<'a>>)> {
    let UnitBlocks { cuts, blocks } = units;
    let cuts: &'a [usize] = cuts;
    let parts = blocks.len();
    let (first_state, later_first) = split_first_layer(&mut state.first);
    let (first_second, later_second) = split_first_layer(&mut state.second);
    let (first_layer, layers) = layers.split_first_mut().expect("a network has layers");
    let (first_bias_gradient, bias_gradients) =
        bias_gradients.split_first_mut().expect("b1 has a gradient");
    let biases = cut_axis(first_layer.bias.view_mut(), Axis(0), cuts);
    let bias_firsts = cut_optional(first_state.map(|(_, b)| b.view_mut()), Axis(0), cuts);
    let bias_seconds = cut_optional(first_second.map(|(_, b)| b.view_mut()), Axis(0), cuts);
    let bias_gradient_parts = cut_axis(first_bias_gradient.view_mut(), Axis(0), cuts);
    let after_first = AfterFirst {
        layers,
        state: (later_first, later_second),
        weight_gradients: &mut weight_gradients[1..],
        bias_gradients,
        weights_transposed,
    };
    let (next_rows, mut later) = next_rows_and_later(after_first, cuts);
    let own = (blocks
        .iter_mut()
        .zip(biases)
        .zip(bias_firsts)
        .zip(bias_seconds))
    .zip(bias_gradient_parts)
    .zip(next_rows);
    let part = |(i, (((((block, bias), first), second), bias_gradient), next))| UnitPart {
        units: cuts[i]..cuts[i + 1],
        block,
        bias,
        bias_state: (first, second),
        bias_gradient,
        next,
    };
    own.enumerate()
        .map(|(i, own)| {
            let later = if i + 1 == parts { later.take() } else { None };
            (Some(part((i, own))), later)
        })
        .collect()
}

/// The layers after the first, with their optimiser state (each list empty where the optimiser
/// keeps none), gradients (b2's first) and transposes.
struct AfterFirst<'a> {
    layers: &'a mut [Layer],
    state: (&'a mut [Layer], &'a mut [Layer]),
    weight_gradients: &'a mut [Array2<f32>],
    bias_gradients: &'a mut [Array1<f32>],
    weights_transposed: &'a mut [Array2<f32>],
}

/// Where there is a second layer: its rows of each of `cuts`' parts (W2's, its state's and
/// gradient's rows, and W2ᵀ's columns), and the rest for the last part (b2 and the layers after
/// the second); else nothing.
fn next_rows_and_later<'a>(
    after: AfterFirst<'a>,
    cuts: &[usize],
) -> (Vec<Option<NextRows<'a>>>, Option<LaterLayers<'a>>) {
    let AfterFirst {
        layers,
        state: (later_first, later_second),
        weight_gradients,
        bias_gradients,
        weights_transposed,
    } = after;
    let (next_first, later_first) = split_first_layer(later_first);
    let (next_second, later_second) = split_first_layer(later_second);
    let (
        Some((Layer { weights, bias }, layers)),
        Some((next_gradient, weight_gradients)),
        Some((next_transposed, weights_transposed)),
    ) = (
        layers.split_first_mut(),
        weight_gradients.split_first_mut(),
        weights_transposed.split_first_mut(),
    )
    else {
        return (cuts.windows(2).map(|_| None).collect(), None);
    };
    let (first_weights, first_bias) = next_first.unzip();
    let (second_weights, second_bias) = next_second.unzip();
    let rows = cut_axis(weights.view_mut(), Axis(0), cuts).into_iter();
    let firsts = cut_optional(first_weights.map(|w| w.view_mut()), Axis(0), cuts);
    let seconds = cut_optional(second_weights.map(|w| w.view_mut()), Axis(0), cuts);
    let gradients = cut_axis(next_gradient.view_mut(), Axis(0), cuts);
    let transposed = cut_axis(next_transposed.view_mut(), Axis(1), cuts);
    let next_rows = (rows.zip(firsts).zip(seconds).zip(gradients).zip(transposed))
        .map(|((((weights, first), second), gradient), transposed)| {
            Some(NextRows {
                weights,
                state: (first, second),
                gradient,
                transposed,
            })
        })
        .collect();
    let later = LaterLayers {
        first_bias: bias,
        first_bias_state: (first_bias, second_bias),
        layers,
        state: (later_first, later_second),
        weight_gradients,
        bias_gradients,
        weights_transposed,
    };
    (next_rows, Some(later))
}
