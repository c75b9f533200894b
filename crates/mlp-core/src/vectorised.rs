//! The sigmoid of `cpu/mod.rs` computed a vector at a time (eight or sixteen values, as the
//! [`InstructionSet`] has them).
//!
//! `f32::exp` is a call per value that the compiler cannot vectorise; in a seed training step
//! the 12,200 sigmoids took as long as the first layer's forward product. Here exp is
//! evaluated as Cephes' `expf` does it (2ⁿ · a degree-6 polynomial on [−ln2/2, ln2/2], within
//! 2 ulp), so each sigmoid is within a few ulp of the reference's; the tests bound it.

use ndarray::ArrayViewMut2;
use pulp::{Simd, WithSimd};

use crate::cpu::sigmoid;
use crate::simd::InstructionSet;

/// Ak = sigmoid(Sk) in place, as [`crate::cpu::sigmoid_forward`], on `simd`'s vectors.
///
/// - `values`: (B, out), standard layout, Sk on entry and Ak on return
pub fn sigmoid_forward_vectorised(simd: InstructionSet, mut values: ArrayViewMut2<f32>) {
    match values.as_slice_mut() {
        Some(values) => simd.dispatch(SigmoidInPlace(values)),
        None => values.mapv_inplace(sigmoid),
    }
}

struct SigmoidInPlace<'a>(&'a mut [f32]);

impl WithSimd for SigmoidInPlace<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (vectors, tail) = S::as_mut_simd_f32s(self.0);
        for v in vectors {
            *v = sigmoid_vector(simd, *v);
        }
        for s in tail {
            *s = sigmoid(*s);
        }
    }
}

/// 1 / (1 + exp(−s)) for each lane. exp's argument is clamped to [−87, 88], where 2ⁿ is a
/// normal float: beyond it the sigmoid is 1 or below 1e−38 either way.
#[inline(always)]
pub(crate) fn sigmoid_vector<S: Simd>(simd: S, s: S::f32s) -> S::f32s {
    let x = simd.max_f32s(
        simd.min_f32s(simd.neg_f32s(s), simd.splat_f32s(88.0)),
        simd.splat_f32s(-87.0),
    );
    let e = exp_vector(simd, x);
    let one = simd.splat_f32s(1.0);
    simd.div_f32s(one, simd.add_f32s(one, e))
}

/// exp(x) for x in [−87, 88]: x = n ln2 + r with n = round(x / ln2), exp(x) = 2ⁿ · exp(r).
#[inline(always)]
fn exp_vector<S: Simd>(simd: S, x: S::f32s) -> S::f32s {
    // Adding 1.5 · 2²³ rounds x / ln2 to an integer n, which lands in the low mantissa bits.
    const ROUNDING: f32 = 12_582_912.0;
    // ln2 split in two: n · LN2_HIGH is exact, so r loses nothing to cancellation.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    // Cephes' coefficients, as f32 (the last, 0.500000012, rounds to exactly 0.5).
    const POLYNOMIAL: [f32; 6] = [
        1.987_569_2e-4,
        1.398_2e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
    let splat = |v: f32| simd.splat_f32s(v);
    let shifted = simd.mul_add_e_f32s(x, splat(std::f32::consts::LOG2_E), splat(ROUNDING));
    let n = simd.sub_f32s(shifted, splat(ROUNDING));
    let r = simd.mul_add_e_f32s(n, splat(-LN2_HIGH), x);
    let r = simd.mul_add_e_f32s(n, splat(-LN2_LOW), r);
    let mut p = splat(POLYNOMIAL[0]);
    for &c in &POLYNOMIAL[1..] {
        p = simd.mul_add_e_f32s(p, r, splat(c));
    }
    // exp(r) ≈ 1 + r + r² p(r)
    let exp_r = simd.mul_add_e_f32s(p, simd.mul_f32s(r, r), simd.add_f32s(r, splat(1.0)));
    // 2ⁿ: the integer n (the shifted bits minus the rounding constant's) plus the exponent
    // bias 127, moved into the exponent field.
    let n_bits = simd.sub_u32s(
        simd.transmute_u32s_f32s(shifted),
        simd.splat_u32s(ROUNDING.to_bits()),
    );
    let biased = simd.add_u32s(n_bits, simd.splat_u32s(127));
    let power = simd.transmute_f32s_u32s(simd.mul_u32s(biased, simd.splat_u32s(1 << 23)));
    simd.mul_f32s(exp_r, power)
}
