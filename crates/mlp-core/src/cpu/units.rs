//! Layer 1's hidden units shared out between a step's threads, each thread's in memory of its
//! own.
//!
//! The cut of a step by rows (the forward pass) and by pixels (the update) has every core read
//! all of W1 and write part of it, so that each core's next forward pass reads the lines the
//! other core wrote, and W1 (0.8 MB for 256 units) competes in each core's L2 with the update's
//! streams. A cut by hidden units instead gives each thread, for the whole step, its columns of
//! W1 and of W1's optimiser state and gradient, its entries of b1 and its rows of W2. Kept as
//! columns of the shared arrays, those columns are half of every row, next to the lines the
//! other core writes, and measured slower than the cut by rows; kept as blocks of their own
//! they made W1's update of a thread's units take 0.092-0.108 s an epoch where the cut by rows
//! spends about 0.13 (docs/performance.md), and the modern preset's steps 0-9 % shorter. So
//! while a run trains with its units cut, W1 and its state live here, one block per thread,
//! and the backend's own arrays are brought up to date ([`UnitBlocks::write_back`]) only when
//! something reads them.

use std::ops::Range;

use ndarray::{Array2, s};

use crate::aligned::aligned;
use crate::backend::OptimiserState;

/// The columns of a cache line of f32: cutting on them keeps each block's rows, and each
/// thread's part of the shared rows it writes (S1, W2ᵀ), on lines of their own.
const LINE: usize = 16;

/// W1 and its optimiser state cut into blocks of units.
pub(super) struct UnitBlocks {
    /// Block i holds units `cuts[i]..cuts[i + 1]`.
    pub(super) cuts: Vec<usize>,
    pub(super) blocks: Vec<UnitBlock>,
}

/// One thread's units: their columns of W1 (in, units), of its first and second moments where
/// the optimiser keeps them, and of its gradient, each stored row by row.
pub(super) struct UnitBlock {
    pub(super) weights: Array2<f32>,
    pub(super) first: Option<Array2<f32>>,
    pub(super) second: Option<Array2<f32>>,
    pub(super) gradient: Array2<f32>,
}

impl UnitBlocks {
    /// Copies `weights` W1 (in, out) and the first layer's part of `state` into blocks of
    /// the units `cuts` says.
    pub(super) fn cut(weights: &Array2<f32>, state: &OptimiserState, cuts: Vec<usize>) -> Self {
        let columns = |matrix: &Array2<f32>, units: &Range<usize>| {
            aligned(matrix.slice(s![.., units.clone()]).to_owned())
        };
        let blocks = cuts
            .windows(2)
            .map(|pair| {
                let units = pair[0]..pair[1];
                UnitBlock {
                    weights: columns(weights, &units),
                    first: state.first.first().map(|l| columns(&l.weights, &units)),
                    second: state.second.first().map(|l| columns(&l.weights, &units)),
                    gradient: aligned(Array2::zeros((weights.nrows(), units.len()))),
                }
            })
            .collect();
        Self { cuts, blocks }
    }

    /// Copies the blocks back into `weights` W1 and the first layer's part of `state`.
    pub(super) fn write_back(&self, weights: &mut Array2<f32>, state: &mut OptimiserState) {
        for (block, pair) in self.blocks.iter().zip(self.cuts.windows(2)) {
            let units = s![.., pair[0]..pair[1]];
            weights.slice_mut(units).assign(&block.weights);
            if let (Some(layer), Some(first)) = (state.first.first_mut(), &block.first) {
                layer.weights.slice_mut(units).assign(first);
            }
            if let (Some(layer), Some(second)) = (state.second.first_mut(), &block.second) {
                layer.weights.slice_mut(units).assign(second);
            }
        }
    }
}

/// The fewest cache lines of units a thread takes: a row of fewer is summed in fewer chains of
/// fused multiply-adds than hide their latency, and the seed's 64 units cut in two (two lines
/// each) measured 10-17 % slower a step than its cut by rows (docs/performance.md).
const LINES_PER_THREAD: usize = 4;

/// `units` cut into `parts` runs of whole cache lines, as even as can be (the last may end
/// inside a line); `None` for one part, or where a part would have fewer than
/// [`LINES_PER_THREAD`].
pub(super) fn unit_cuts(units: usize, parts: usize) -> Option<Vec<usize>> {
    let lines = units.div_ceil(LINE);
    if parts < 2 || lines < parts * LINES_PER_THREAD {
        return None;
    }
    let mut cuts: Vec<usize> = (0..parts).map(|i| i * lines / parts * LINE).collect();
    cuts.push(units);
    Some(cuts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Layer;
    use ndarray::Array1;

    #[test]
    fn units_are_cut_on_cache_lines_and_not_below_four_lines_each() {
        assert_eq!(unit_cuts(256, 2), Some(vec![0, 128, 256]));
        assert_eq!(unit_cuts(512, 3), Some(vec![0, 160, 336, 512]));
        assert_eq!(unit_cuts(200, 3), Some(vec![0, 64, 128, 200]));
        assert_eq!(unit_cuts(64, 2), None, "the seed's 64 units");
        assert_eq!(unit_cuts(256, 5), None);
        assert_eq!(unit_cuts(256, 1), None);
    }

    #[test]
    fn blocks_written_back_give_the_arrays_they_were_cut_from() {
        let weights = Array2::from_shape_fn((5, 136), |(i, j)| (i * 136 + j) as f32);
        let layer = |offset: f32| Layer {
            weights: weights.mapv(|w| w + offset),
            bias: Array1::zeros(136),
        };
        let state = OptimiserState {
            first: vec![layer(0.5)],
            second: vec![layer(0.25)],
            steps: 3,
        };
        let blocks = UnitBlocks::cut(&weights, &state, unit_cuts(136, 2).unwrap());
        assert_eq!(blocks.blocks[1].weights.dim(), (5, 72));
        let mut back = Array2::zeros((5, 136));
        let mut back_state = OptimiserState {
            first: vec![layer(9.0)],
            second: vec![layer(9.0)],
            steps: 3,
        };
        blocks.write_back(&mut back, &mut back_state);
        assert_eq!(back, weights);
        assert_eq!(back_state.first[0].weights, state.first[0].weights);
        assert_eq!(back_state.second[0].weights, state.second[0].weights);
    }
}
