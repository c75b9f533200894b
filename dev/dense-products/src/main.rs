//! Each dense product of the seed's and the modern preset's layers after the first, at batch
//! 100 on one thread, by matrixmultiply, gemm and `mlp_core::dense`, in alternating rounds:
//! microseconds per product (the median of the rounds), GFLOP/s, and each against
//! matrixmultiply as a ratio. Each product is what a training step does: the forward product
//! with its bias (and mlp-core's with the sigmoid too), the delta with W(k+1)ᵀ and the
//! sigmoid's derivative (mlp-core's transposing W(k+1) first, as a step does), the gradient.
//!
//! Each product is called again and again on the same operands, so they stay in the caches:
//! a step's products find them colder, and gemm's lead here did not hold there
//! (docs/performance.md, 2026-12-06, night). `ONLY_INPUTS=256` times only the layers of that
//! many inputs; `CHECK_BITS=1` instead counts, on a few shapes, the outputs where gemm's bits
//! differ from mlp-core's.

// `gemm` is called through raw pointers; mlp-core itself forbids unsafe code.
#![allow(unsafe_code)]

use std::time::Instant;

use mlp_core::Activation;
use mlp_core::cpu::{hidden_delta, linear_forward, weights_gradient};
use mlp_core::dense::{
    dense_hidden_delta, dense_linear_forward, dense_weights_gradient, transpose_into,
};
use mlp_core::simd::InstructionSet;
use ndarray::{Array1, Array2, Zip};

const ROUNDS: usize = 7;
const BATCH: usize = 100;
/// (inputs, outputs, outputs of the next layer) of the layers after the first: the seed's,
/// then modern's. An output layer has no delta product of its own.
const LAYERS: [(usize, usize, Option<usize>); 5] = [
    (64, 32, Some(16)),
    (32, 16, Some(10)),
    (16, 10, None),
    (256, 128, Some(10)),
    (128, 10, None),
];

fn matrix(rows: usize, cols: usize, salt: usize) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        ((i * 31 + j * 17 + salt) % 23) as f32 / 23.0 - 0.5
    })
}

/// The mean seconds of one call of `f`, over enough calls for about 20 ms.
fn seconds_per_call(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut calls = 0;
    while start.elapsed().as_secs_f64() < 0.02 {
        f();
        calls += 1;
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

/// C (m, n) = alpha C + beta L R through gemm, with L and R given by (pointer, column stride,
/// row stride).
#[allow(clippy::too_many_arguments)]
fn gemm_product(
    out: &mut Array2<f32>,
    read_out: bool,
    depth: usize,
    (lhs, lhs_cs, lhs_rs): (*const f32, isize, isize),
    (rhs, rhs_cs, rhs_rs): (*const f32, isize, isize),
    beta: f32,
) {
    let (m, n) = out.dim();
    // SAFETY: every pointer and stride describes a live matrix of the stated shape.
    unsafe {
        gemm::gemm(
            m,
            n,
            depth,
            out.as_mut_ptr(),
            1,
            n as isize,
            read_out,
            lhs,
            lhs_cs,
            lhs_rs,
            rhs,
            rhs_cs,
            rhs_rs,
            1.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

struct Layer {
    input: Array2<f32>,
    weights: Array2<f32>,
    bias: Array1<f32>,
    delta: Array2<f32>,
    activation: Array2<f32>,
    next_delta: Array2<f32>,
    next_weights: Array2<f32>,
}

impl Layer {
    /// A layer of (inputs, outputs), with a next layer of `next` outputs behind it.
    fn new((inputs, outputs): (usize, usize), next: usize) -> Self {
        Self {
            input: matrix(BATCH, inputs, 1),
            weights: matrix(inputs, outputs, 2),
            bias: Array1::from_shape_fn(outputs, |j| j as f32 / 100.0),
            delta: matrix(BATCH, outputs, 3),
            activation: matrix(BATCH, outputs, 4).mapv(|a| a + 0.5),
            next_delta: matrix(BATCH, next, 5),
            next_weights: matrix(outputs, next, 6),
        }
    }
}

/// [matrixmultiply, gemm, mlp-core] seconds of one product, `which` 0 forward, 1 delta,
/// 2 gradient.
fn time_product(layer: &Layer, which: usize, simd: InstructionSet) -> [f64; 3] {
    let (outputs, next) = (layer.weights.ncols(), layer.next_weights.ncols());
    let mut sum = Array2::zeros((BATCH, outputs));
    let mut gradient = Array2::zeros(layer.weights.dim());
    let mut transposed = Array2::zeros((next, outputs));
    let sigmoid = Activation::Sigmoid;
    let (x, w, b) = (layer.input.view(), layer.weights.view(), layer.bias.view());
    let (d, wn, a) = (
        layer.next_delta.view(),
        layer.next_weights.view(),
        layer.activation.view(),
    );
    let ptr = |m: &Array2<f32>| m.as_ptr();
    match which {
        0 => [
            seconds_per_call(|| linear_forward(x, w, b, sum.view_mut())),
            seconds_per_call(|| {
                sum.assign(&b.broadcast((BATCH, outputs)).unwrap());
                let lhs = (ptr(&layer.input), 1, x.ncols() as isize);
                let rhs = (ptr(&layer.weights), 1, outputs as isize);
                gemm_product(&mut sum, true, x.ncols(), lhs, rhs, 1.0);
            }),
            seconds_per_call(|| dense_linear_forward(simd, x, w, b, false, sum.view_mut())),
        ],
        1 => [
            seconds_per_call(|| hidden_delta(d, wn, a, sigmoid, sum.view_mut())),
            seconds_per_call(|| {
                let lhs = (ptr(&layer.next_delta), 1, next as isize);
                let rhs = (ptr(&layer.next_weights), next as isize, 1);
                gemm_product(&mut sum, false, next, lhs, rhs, 1.0);
                Zip::from(&mut sum)
                    .and(&a)
                    .for_each(|d, &a| *d *= a * (1.0 - a));
            }),
            seconds_per_call(|| {
                transpose_into(wn, transposed.view_mut());
                dense_hidden_delta(simd, d, transposed.view(), (a, sigmoid), sum.view_mut());
            }),
        ],
        _ => {
            let delta = layer.delta.view();
            [
                seconds_per_call(|| weights_gradient(x, delta, 1.0, gradient.view_mut())),
                seconds_per_call(|| {
                    let lhs = (ptr(&layer.input), x.ncols() as isize, 1);
                    let rhs = (ptr(&layer.delta), 1, outputs as isize);
                    gemm_product(&mut gradient, false, BATCH, lhs, rhs, 1.0);
                }),
                seconds_per_call(|| {
                    dense_weights_gradient(simd, x, delta, 1.0, gradient.view_mut())
                }),
            ]
        }
    }
}

/// Whether gemm gives mlp-core's bits on each product of `layer`, `rows` rows.
fn same_bits(
    inputs: usize,
    outputs: usize,
    next: usize,
    rows: usize,
    simd: InstructionSet,
) -> [usize; 3] {
    let x = matrix(rows, inputs, 1);
    let w = matrix(inputs, outputs, 2).mapv(|v| v * 0.731);
    let b = Array1::from_shape_fn(outputs, |j| j as f32 / 100.0 - 0.3);
    let dn = matrix(rows, next, 5).mapv(|v| v * 1.37);
    let wn = matrix(outputs, next, 6).mapv(|v| v * 0.173);
    let a = matrix(rows, outputs, 4).mapv(|v| v + 0.5);
    let delta = matrix(rows, outputs, 3).mapv(|v| v * 0.91);
    let ptr = |m: &Array2<f32>| m.as_ptr();
    let differ = |p: &Array2<f32>, q: &Array2<f32>| {
        p.iter()
            .zip(q)
            .filter(|(u, v)| u.to_bits() != v.to_bits())
            .count()
    };
    let mut own = Array2::zeros((rows, outputs));
    dense_linear_forward(simd, x.view(), w.view(), b.view(), false, own.view_mut());
    let mut theirs = b.broadcast((rows, outputs)).unwrap().to_owned();
    gemm_product(
        &mut theirs,
        true,
        inputs,
        (ptr(&x), 1, inputs as isize),
        (ptr(&w), 1, outputs as isize),
        1.0,
    );
    let forward = differ(&own, &theirs);
    let mut transposed = Array2::zeros((next, outputs));
    transpose_into(wn.view(), transposed.view_mut());
    dense_hidden_delta(
        simd,
        dn.view(),
        transposed.view(),
        (a.view(), Activation::Sigmoid),
        own.view_mut(),
    );
    gemm_product(
        &mut theirs,
        false,
        next,
        (ptr(&dn), 1, next as isize),
        (ptr(&wn), next as isize, 1),
        1.0,
    );
    Zip::from(&mut theirs)
        .and(&a)
        .for_each(|d, &a| *d *= a * (1.0 - a));
    let deltas = differ(&own, &theirs);
    let mut own = Array2::zeros((inputs, outputs));
    let mut theirs = Array2::zeros((inputs, outputs));
    dense_weights_gradient(simd, x.view(), delta.view(), 0.37, own.view_mut());
    gemm_product(
        &mut theirs,
        false,
        rows,
        (ptr(&x), inputs as isize, 1),
        (ptr(&delta), 1, outputs as isize),
        0.37,
    );
    [forward, deltas, differ(&own, &theirs)]
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let simd = InstructionSet::best();
    if std::env::var_os("CHECK_BITS").is_some() {
        for (i, o, n, r) in [
            (64, 32, 16, 100),
            (256, 128, 10, 100),
            (256, 128, 10, 50),
            (128, 256, 128, 50),
            (512, 512, 10, 200),
            (512, 512, 512, 100),
            (37, 29, 13, 7),
            (784, 33, 5, 1),
            (3, 100, 17, 3),
        ] {
            println!(
                "{i}-{o} next {n}, {r} rows: elements differing (forward, delta, gradient) {:?}",
                same_bits(i, o, n, r, simd)
            );
        }
        return;
    }
    println!(
        "batch {BATCH}, one thread, mlp-core on {simd}, medians of {ROUNDS} alternating rounds"
    );
    println!(
        "| product | shape (m x k x n) | matrixmultiply µs | gemm µs | mlp-core µs | GFLOP/s (mm / gemm / mlp-core) | gemm / mm | mlp-core / mm |"
    );
    println!("| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |");
    let only: Option<usize> = std::env::var("ONLY_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok());
    for (inputs, outputs, next) in LAYERS {
        if only.is_some_and(|only| only != inputs) {
            continue;
        }
        let layer = Layer::new((inputs, outputs), next.unwrap_or(1));
        for (which, name) in ["forward", "delta", "gradient"].into_iter().enumerate() {
            if which == 1 && next.is_none() {
                continue;
            }
            let next = next.unwrap_or(1);
            let mut times = [Vec::new(), Vec::new(), Vec::new()];
            for _ in 0..ROUNDS {
                for (t, s) in times.iter_mut().zip(time_product(&layer, which, simd)) {
                    t.push(s);
                }
            }
            let [mm, gemm, own] = times.map(median);
            let (m, k, n) = match which {
                0 => (BATCH, inputs, outputs),
                1 => (BATCH, next, outputs),
                _ => (inputs, BATCH, outputs),
            };
            let gflops = |s: f64| 2.0 * (m * k * n) as f64 / s / 1e9;
            println!(
                "| {name} {inputs}-{outputs} | {m} x {k} x {n} | {:.2} | {:.2} | {:.2} | {:.0} / {:.0} / {:.0} | {:.2} | {:.2} |",
                mm * 1e6,
                gemm * 1e6,
                own * 1e6,
                gflops(mm),
                gflops(gemm),
                gflops(own),
                gemm / mm,
                own / mm
            );
        }
    }
}
