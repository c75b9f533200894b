//! The sigmoid and Adam's step of `cpu/mod.rs` computed a vector at a time (eight or sixteen
//! values, as the [`InstructionSet`] has them).
//!
//! `f32::exp` is a call per value that the compiler cannot vectorise; in a seed training step
//! the 12,200 sigmoids took as long as the first layer's forward product. Here exp is
//! evaluated as Cephes' `expf` does it (2ⁿ · a degree-6 polynomial on [−ln2/2, ln2/2], within
//! 2 ulp), so each sigmoid is within a few ulp of the reference's; the tests bound it.

use ndarray::ArrayViewMut2;
use pulp::{Simd, WithSimd};

use crate::cpu::{AdamStep, flush_subnormal, sigmoid};
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

/// Adam's step ([`crate::cpu::adam_update`]) on `simd`'s vectors, on tensors stored as one run
/// of values each. Its operations are the reference's, in its order and none fused, and each
/// is rounded once by IEEE 754 whatever the vector width, so the two give the same bits. The
/// reference's loop runs four values at a time (x86-64's baseline SSE), and its square roots and
/// divisions were the largest item of the modern preset's profile (docs/performance.md).
///
/// - `parameter`, `first_moment`, `second_moment`: updated in place
/// - `gradient`: as long as the others
pub fn adam_update_vectorised(
    simd: InstructionSet,
    (parameter, first_moment, second_moment): (&mut [f32], &mut [f32], &mut [f32]),
    gradient: &[f32],
    learning_rate: f32,
    step: AdamStep<f32>,
) {
    let len = parameter.len();
    assert!(
        [first_moment.len(), second_moment.len(), gradient.len()] == [len; 3],
        "Adam's tensors differ in length"
    );
    simd.dispatch(AdamInPlace {
        parameter,
        first_moment,
        second_moment,
        gradient,
        learning_rate,
        step,
    });
}

struct AdamInPlace<'a> {
    parameter: &'a mut [f32],
    first_moment: &'a mut [f32],
    second_moment: &'a mut [f32],
    gradient: &'a [f32],
    learning_rate: f32,
    step: AdamStep<f32>,
}

impl WithSimd for AdamInPlace<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (correction1, correction2) = self.step.corrections();
        let (beta1, beta2) = (self.step.beta1, self.step.beta2);
        let constants = [
            beta1,
            1.0 - beta1,
            beta2,
            1.0 - beta2,
            correction1,
            correction2,
            self.learning_rate,
            self.step.epsilon,
        ];
        let [b1, rest1, b2, rest2, c1, c2, rate, epsilon] = constants.map(|c| simd.splat_f32s(c));
        let (parameters, parameter_tail) = S::as_mut_simd_f32s(self.parameter);
        let (firsts, first_tail) = S::as_mut_simd_f32s(self.first_moment);
        let (seconds, second_tail) = S::as_mut_simd_f32s(self.second_moment);
        let (gradients, gradient_tail) = S::as_simd_f32s(self.gradient);
        let normal = simd.splat_f32s(f32::MIN_POSITIVE);
        let flush = |x: S::f32s| {
            let subnormal = simd.less_than_f32s(simd.abs_f32s(x), normal);
            simd.select_f32s(subnormal, simd.splat_f32s(0.0), x)
        };
        let vectors = parameters
            .iter_mut()
            .zip(firsts)
            .zip(seconds)
            .zip(gradients);
        for (((p, m), v), &g) in vectors {
            *m = flush(simd.add_f32s(simd.mul_f32s(b1, *m), simd.mul_f32s(rest1, g)));
            *v = flush(simd.add_f32s(
                simd.mul_f32s(b2, *v),
                simd.mul_f32s(simd.mul_f32s(rest2, g), g),
            ));
            let numerator = simd.mul_f32s(rate, simd.mul_f32s(*m, c1));
            let denominator = simd.add_f32s(simd.sqrt_f32s(simd.mul_f32s(*v, c2)), epsilon);
            *p = simd.sub_f32s(*p, simd.div_f32s(numerator, denominator));
        }
        let tails = parameter_tail.iter_mut().zip(first_tail).zip(second_tail);
        for (((p, m), v), &g) in tails.zip(gradient_tail) {
            let [b1, rest1, b2, rest2, c1, c2, rate, epsilon] = constants;
            *m = flush_subnormal(b1 * *m + rest1 * g);
            *v = flush_subnormal(b2 * *v + rest2 * g * g);
            *p -= rate * (*m * c1) / ((*v * c2).sqrt() + epsilon);
        }
    }
}
