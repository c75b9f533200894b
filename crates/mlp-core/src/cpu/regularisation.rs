//! Beyond the seed: dropout of the hidden units and the input pixels (docs/SEED.md's E2d,
//! E4d) and weight decay (E7b, E7c), one readable function per equation as in the rest of
//! [`super`], with the hash that draws the dropout masks on every backend.

use ndarray::{ArrayView, ArrayView2, ArrayViewMut, ArrayViewMut2, Dimension, Zip};

use super::Real;
use crate::options::Dropout;

/// A 32-bit integer hash with good avalanche (Chris Wellons' "lowbias32"): the same u32
/// arithmetic in WGSL gives the same bits.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Whether dropout keeps unit `unit` of batch row `row` in hidden layer `layer` (from 1) at
/// training step `step` (from 1): the top 24 bits of a hash of the five numbers, as a
/// fraction of 2²⁴, are at least the rate. The step changes with every batch, so the row
/// stands for the image; a kernel knows its row without reading the training order.
pub fn dropout_keeps(dropout: Dropout, step: u64, layer: usize, row: usize, unit: usize) -> bool {
    let constants = DropoutConstants::of(Some(dropout));
    constants.keeps(dropout_row_hash(constants, step, layer, row), unit as u32)
}

/// The hash of (seed, step, layer, row) that `dropout_keeps` goes on from with the unit: the
/// same for every unit of a row, so a fast path computes it once a row.
pub fn dropout_row_hash(constants: DropoutConstants, step: u64, layer: usize, row: usize) -> u32 {
    let mut h = hash32(constants.seed);
    for part in [step as u32, layer as u32, row as u32] {
        h = hash32(h ^ part);
    }
    h
}

/// The numbers `dropout_keeps` and a kept unit's factor are made of, as a GPU kernel takes
/// them: no dropout is a threshold of 0 (every unit kept) and a factor of 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutConstants {
    /// The seed folded to 32 bits.
    pub seed: u32,
    /// round(p · 2²⁴): a unit is kept where its hash's top 24 bits reach it.
    pub threshold: u32,
    /// 1 / (1 − p) in f32.
    pub scale: f32,
}

impl DropoutConstants {
    pub fn of(dropout: Option<Dropout>) -> Self {
        match dropout {
            None => Self {
                seed: 0,
                threshold: 0,
                scale: 1.0,
            },
            Some(d) => Self {
                seed: (d.seed ^ (d.seed >> 32)) as u32,
                threshold: (f64::from(d.rate) * f64::from(1u32 << 24)).round() as u32,
                scale: 1.0 / (1.0 - d.rate),
            },
        }
    }

    /// Whether the unit `unit` of a row whose hash is `row_hash` ([`dropout_row_hash`]) is
    /// kept: the top 24 bits of hash32(row_hash ^ unit) reach the threshold.
    pub fn keeps(self, row_hash: u32, unit: u32) -> bool {
        (hash32(row_hash ^ unit) >> 8) >= self.threshold
    }
}

/// The factor of a unit in hidden layer `layer` of batch row `row`: 1 / (1 − p) where dropout
/// keeps it, 0 where it drops it.
fn dropout_factor<F: Real>(
    dropout: Dropout,
    step: u64,
    layer: usize,
    row: usize,
    unit: usize,
) -> F {
    if dropout_keeps(dropout, step, layer, row, unit) {
        let scale = DropoutConstants::of(Some(dropout)).scale;
        F::from(scale).expect("a finite f32 fits any float")
    } else {
        F::zero()
    }
}

/// Ãk = Ak ⊙ Mk / (1 − p) (E2d): hidden layer `layer`'s output as the next layer sees it while
/// training; row r of the arrays is row `first_row + r` of the batch.
///
/// - `activation` Ak: (B, out)
/// - `dropped` Ãk: (B, out), overwritten
pub fn dropout_forward<F: Real>(
    activation: ArrayView2<F>,
    mut dropped: ArrayViewMut2<F>,
    (dropout, step, layer): (Dropout, u64, usize),
    first_row: usize,
) {
    for ((r, j), out) in dropped.indexed_iter_mut() {
        *out = activation[[r, j]] * dropout_factor(dropout, step, layer, first_row + r, j);
    }
}

/// Dk ⊙= Mk / (1 − p) (E4d): a hidden layer's delta through its dropout, after E4's product
/// with f′, which is taken of the undropped Ak.
///
/// - `delta` Dk: (B, out), updated in place
pub fn dropout_backward<F: Real>(
    mut delta: ArrayViewMut2<F>,
    (dropout, step, layer): (Dropout, u64, usize),
    first_row: usize,
) {
    for ((r, j), d) in delta.indexed_iter_mut() {
        *d = *d * dropout_factor(dropout, step, layer, first_row + r, j);
    }
}

/// L2 weight decay, for gradient descent and momentum (E7b): grad W += λ · W, the gradient of
/// (λ/2) ‖W‖² added to the loss's. Biases are not decayed.
pub fn l2_weight_decay<F: Real, D: Dimension>(
    mut gradient: ArrayViewMut<'_, F, D>,
    weights: ArrayView<'_, F, D>,
    decay: F,
) {
    Zip::from(&mut gradient)
        .and(&weights)
        .for_each(|g, &w| *g = *g + decay * w);
}

/// Decoupled weight decay, for Adam (AdamW, E7c): W −= lr · (λ · W), from the weights before
/// the optimiser's step, which follows it. Biases are not decayed.
pub fn decoupled_weight_decay<F: Real, D: Dimension>(
    mut weights: ArrayViewMut<'_, F, D>,
    learning_rate: F,
    decay: F,
) {
    weights.mapv_inplace(|w| w - learning_rate * (decay * w));
}
