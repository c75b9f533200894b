//! The register-tiled products of the layers after the first (`mlp_core::dense`) against the
//! reference functions of `cpu/mod.rs`, on every instruction set this CPU has, for shapes that
//! fill whole tiles, leave partial ones in rows and columns, and a column or a row alone.

mod common;

use common::{assert_matrix_passes, instruction_sets, random_matrix};
use mlp_core::Activation;
use mlp_core::compare::Tolerance;
use mlp_core::cpu::{
    activation_forward, hidden_delta, linear_forward, sigmoid_forward, weights_gradient,
};
use mlp_core::dense::{
    dense_hidden_delta, dense_linear_forward, dense_weights_gradient, dense_weights_gradient_rows,
    transpose_into,
};
use mlp_core::rng::Rng;
use ndarray::{Array1, Array2, Axis};

/// Both sides are f32 sums of the same up to 256 terms of O(1) in another order (and the
/// sigmoid's exp differs by an ulp or two): their rounding reaches ~1e-5 on sums of ~10.
const SUMMATION_ORDER: Tolerance = Tolerance::new(1e-5, 1e-4);

/// (rows, depth, columns): the seed's three layers after the first and the modern preset's
/// two at batch 100; then shapes whose rows leave a partial tile of 4 and whose columns end
/// inside a vector (of 8 or 16 lanes), a lone column, a lone row and a depth of 1.
const SHAPES: [(usize, usize, usize); 10] = [
    (100, 64, 32),
    (100, 32, 16),
    (100, 16, 10),
    (100, 256, 128),
    (100, 128, 10),
    (7, 13, 5),
    (13, 40, 37),
    (5, 33, 1),
    (1, 20, 50),
    (6, 1, 17),
];

#[test]
fn dense_linear_forward_should_match_reference() {
    let mut rng = Rng::new(21);
    for (rows, depth, columns) in SHAPES {
        let input = random_matrix(rows, depth, &mut rng);
        let weights = random_matrix(depth, columns, &mut rng);
        let bias = Array1::from_shape_fn(columns, |_| rng.standard_normal() as f32);
        let mut sum = Array2::zeros((rows, columns));
        linear_forward(input.view(), weights.view(), bias.view(), sum.view_mut());
        let mut activation = sum.clone();
        sigmoid_forward(activation.view_mut());
        for simd in instruction_sets() {
            for (sigmoid, reference) in [(false, &sum), (true, &activation)] {
                let mut out = Array2::from_elem((rows, columns), f32::NAN);
                let (x, w, b) = (input.view(), weights.view(), bias.view());
                dense_linear_forward(simd, x, w, b, sigmoid, out.view_mut());
                let what = if sigmoid { "sigmoid(S)" } else { "S" };
                assert_matrix_passes(
                    &format!("{what} {rows}x{depth}x{columns} {simd}"),
                    &out,
                    reference,
                    SUMMATION_ORDER,
                );
            }
        }
    }
}

#[test]
fn dense_hidden_delta_should_match_reference() {
    let mut rng = Rng::new(22);
    for (rows, next, out) in SHAPES {
        let next_delta = random_matrix(rows, next, &mut rng);
        let next_weights = random_matrix(out, next, &mut rng);
        let mut transposed = Array2::from_elem((next, out), f32::NAN);
        transpose_into(next_weights.view(), transposed.view_mut());
        for kind in [Activation::Sigmoid, Activation::Relu, Activation::Tanh] {
            let mut activation = random_matrix(rows, out, &mut rng);
            activation_forward(activation.view_mut(), kind);
            let mut reference = Array2::zeros((rows, out));
            let (d, w, a) = (next_delta.view(), next_weights.view(), activation.view());
            hidden_delta(d, w, a, kind, reference.view_mut());
            for simd in instruction_sets() {
                let mut delta = Array2::from_elem((rows, out), f32::NAN);
                let (d, wt, a) = (next_delta.view(), transposed.view(), activation.view());
                dense_hidden_delta(simd, d, wt, (a, kind), delta.view_mut());
                let name = format!("D {rows}x{next}x{out} {kind:?} {simd}");
                assert_matrix_passes(&name, &delta, &reference, SUMMATION_ORDER);
            }
        }
    }
}

#[test]
fn dense_weights_gradient_should_match_reference() {
    let mut rng = Rng::new(23);
    for (rows, inputs, outputs) in SHAPES {
        let input = random_matrix(rows, inputs, &mut rng);
        let delta = random_matrix(rows, outputs, &mut rng);
        let scale = 1.0 / rows as f32;
        let mut reference = Array2::zeros((inputs, outputs));
        weights_gradient(input.view(), delta.view(), scale, reference.view_mut());
        for simd in instruction_sets() {
            let mut gradient = Array2::from_elem((inputs, outputs), f32::NAN);
            let (x, d) = (input.view(), delta.view());
            dense_weights_gradient(simd, x, d, scale, gradient.view_mut());
            let name = format!("grad W {rows}x{inputs}x{outputs} {simd}");
            assert_matrix_passes(&name, &gradient, &reference, SUMMATION_ORDER);

            // The rows of two runs of inputs apart, as threads cut by hidden units make
            // them: the same bits.
            let cut = inputs / 2;
            let mut in_parts = Array2::from_elem((inputs, outputs), f32::NAN);
            let (top, bottom) = in_parts.view_mut().split_at(Axis(0), cut);
            for (units, part) in [(0..cut, top), (cut..inputs, bottom)] {
                dense_weights_gradient_rows(simd, x, units, d, scale, part);
            }
            assert_eq!(in_parts, gradient, "{name} in two runs of rows");
        }
    }
}

/// A ReLU unit that is off (a = 0) passes no delta back, whatever the sum behind it.
#[test]
fn dense_hidden_delta_of_units_that_are_off_is_zero() {
    let mut rng = Rng::new(24);
    let (rows, next, out) = (9, 12, 21);
    let next_delta = random_matrix(rows, next, &mut rng);
    let transposed = random_matrix(next, out, &mut rng);
    let activation = Array2::zeros((rows, out));
    for simd in instruction_sets() {
        let mut delta = Array2::from_elem((rows, out), f32::NAN);
        let (d, wt) = (next_delta.view(), transposed.view());
        dense_hidden_delta(
            simd,
            d,
            wt,
            (activation.view(), Activation::Relu),
            delta.view_mut(),
        );
        assert!(delta.iter().all(|&d| d == 0.0), "{simd}: {delta}");
    }
}
