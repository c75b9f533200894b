//! The products of the layers after the first, whose inputs are dense: E1, E4 and E5 of
//! docs/SEED.md on the [`InstructionSet`]'s vectors, register-tiled.
//!
//! These products are small (100 x 64 x 32 in the seed, 100 x 256 x 128 in the modern preset).
//! ndarray's matrixmultiply packs both operands into blocks before every product, which at
//! these sizes is a quarter of its time. This kernel reads them where they are: in
//! docs/performance.md's runs of `dev/dense-products` (which also times the `gemm` crate) it
//! took a third to a half of matrixmultiply's time on the deltas, and from 0.6 of it to a
//! quarter longer on the rest, the longest on a forward product ten columns wide. The bias, the sigmoid and the activation's derivative are
//! applied to each tile while it is still in registers, so no product needs a second pass over
//! its output. `tests/dense_kernels.rs` holds each function here to its reference in
//! `cpu/mod.rs`.

use std::ops::Range;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, s};
use pulp::{Simd, WithSimd};

use crate::options::Activation;
use crate::simd::InstructionSet;
use crate::vectorised::sigmoid_vector;

/// Sk = A(k−1) Wk + bk (E1), and Ak = sigmoid(Sk) (E2) too where `sigmoid` is set, as
/// [`crate::cpu::linear_forward`] (then [`crate::cpu::sigmoid_forward`]) computes them.
///
/// - `input` A(k−1): (B, in), standard (row-major) layout
/// - `weights` Wk: (in, out), standard layout
/// - `bias` bk: (out)
/// - `sum` Sk, or Ak: (B, out), standard layout, overwritten
pub fn dense_linear_forward(
    simd: InstructionSet,
    input: ArrayView2<f32>,
    weights: ArrayView2<f32>,
    bias: ArrayView1<f32>,
    sigmoid: bool,
    mut sum: ArrayViewMut2<f32>,
) {
    let bias = bias.as_slice().expect("bk is contiguous");
    simd.dispatch(TiledProduct {
        left: row_major(&input),
        left_layout: Left::Rows,
        depth: input.ncols(),
        right: row_major(&weights),
        finish: if sigmoid {
            Finish::BiasSigmoid(bias)
        } else {
            Finish::Bias(bias)
        },
        out: row_major_mut(&mut sum),
        width: weights.ncols(),
    });
}

/// Dk = (D(k+1) W(k+1)ᵀ) ⊙ f'(Sk) (E4), as [`crate::cpu::hidden_delta`] computes it, from
/// W(k+1)ᵀ stored row by row ([`transpose_into`]): the kernel reads the right operand's rows.
///
/// - `next_delta` D(k+1): (B, next), standard layout
/// - `next_weights_transposed` W(k+1)ᵀ: (next, out), standard layout
/// - `activation` Ak: (B, out), standard layout, with `kind` the f that made it
/// - `delta` Dk: (B, out), standard layout, overwritten
pub fn dense_hidden_delta(
    simd: InstructionSet,
    next_delta: ArrayView2<f32>,
    next_weights_transposed: ArrayView2<f32>,
    (activation, kind): (ArrayView2<f32>, Activation),
    mut delta: ArrayViewMut2<f32>,
) {
    simd.dispatch(TiledProduct {
        left: row_major(&next_delta),
        left_layout: Left::Rows,
        depth: next_delta.ncols(),
        right: row_major(&next_weights_transposed),
        finish: Finish::Derivative(row_major(&activation), kind),
        out: row_major_mut(&mut delta),
        width: next_weights_transposed.ncols(),
    });
}

/// grad Wk = scale · A(k−1)ᵀ Dk (E5), as [`crate::cpu::weights_gradient`] computes it. A(k−1)ᵀ
/// is read in place, a column of A(k−1) for each row of the gradient.
///
/// - `input` A(k−1): (B, in), standard layout
/// - `delta` Dk: (B, out), standard layout
/// - `gradient`: (in, out), standard layout, overwritten
pub fn dense_weights_gradient(
    simd: InstructionSet,
    input: ArrayView2<f32>,
    delta: ArrayView2<f32>,
    scale: f32,
    gradient: ArrayViewMut2<f32>,
) {
    let rows = 0..input.ncols();
    dense_weights_gradient_rows(simd, input, rows, delta, scale, gradient);
}

/// Rows `rows` of [`dense_weights_gradient`]'s grad Wk: those of inputs `rows`, which do not
/// depend on the others, so threads can share out Wk's rows.
///
/// - `input` A(k−1): (B, in), standard layout, all its columns
/// - `gradient`: (rows, out), standard layout, overwritten
pub fn dense_weights_gradient_rows(
    simd: InstructionSet,
    input: ArrayView2<f32>,
    rows: Range<usize>,
    delta: ArrayView2<f32>,
    scale: f32,
    mut gradient: ArrayViewMut2<f32>,
) {
    assert!(
        rows.end <= input.ncols() && gradient.nrows() == rows.len(),
        "gradient rows {rows:?} of {} inputs into {} rows",
        input.ncols(),
        gradient.nrows()
    );
    simd.dispatch(TiledProduct {
        left: row_major(&input),
        left_layout: Left::Columns { first: rows.start },
        depth: input.nrows(),
        right: row_major(&delta),
        finish: Finish::Scale(scale),
        out: row_major_mut(&mut gradient),
        width: delta.ncols(),
    });
}

/// `transposed` = `matrix`ᵀ: (in, out) becomes (out, in), both in standard layout, a 32 x 32
/// block at a time: column by column, each element read would be on a cache line of its own
/// (the modern preset's W2ᵀ took 33 µs so, 16 µs by blocks).
pub fn transpose_into(matrix: ArrayView2<f32>, mut transposed: ArrayViewMut2<f32>) {
    const SIDE: usize = 32;
    let (rows, columns) = matrix.dim();
    for row in (0..rows).step_by(SIDE) {
        for column in (0..columns).step_by(SIDE) {
            let (row_end, column_end) = ((row + SIDE).min(rows), (column + SIDE).min(columns));
            let block = matrix.slice(s![row..row_end, column..column_end]);
            transposed
                .slice_mut(s![column..column_end, row..row_end])
                .assign(&block.t());
        }
    }
}

fn row_major<'a>(matrix: &ArrayView2<'a, f32>) -> &'a [f32] {
    matrix
        .to_slice()
        .expect("the dense kernels read matrices stored row by row")
}

fn row_major_mut<'a>(matrix: &'a mut ArrayViewMut2<'_, f32>) -> &'a mut [f32] {
    matrix
        .as_slice_mut()
        .expect("the dense kernels write matrices stored row by row")
}

/// What is made of an output tile's sums before it is stored.
#[derive(Clone, Copy)]
enum Finish<'a> {
    /// bias + sum
    Bias(&'a [f32]),
    /// sigmoid(bias + sum)
    BiasSigmoid(&'a [f32]),
    /// scale · sum
    Scale(f32),
    /// sum · f'(a), with a the output's element of these activations (same shape as the output)
    Derivative(&'a [f32], Activation),
}

/// How the left operand L (m, depth) of a product is stored.
#[derive(Clone, Copy, PartialEq)]
enum Left {
    /// Row by row: element (i, d) at `i * depth + d` (A(k−1) and D(k+1)).
    Rows,
    /// Column by column: element (i, d) at `d * m + first + i` (rows `first..` of A(k−1)ᵀ, read
    /// in place).
    Columns { first: usize },
}

/// out (m, width) = finish(L R), with L (m, depth) stored as `left_layout` says and R
/// (depth, width) stored row by row.
struct TiledProduct<'a> {
    left: &'a [f32],
    left_layout: Left,
    depth: usize,
    right: &'a [f32],
    finish: Finish<'a>,
    out: &'a mut [f32],
    width: usize,
}

/// A tile of output rows by vectors of columns is summed in registers: each element of L read
/// feeds V multiply-adds, each vector of R read feeds R. 4 x 2 (and 8 x 1 where a row is one
/// vector wide) is 8 independent chains, enough to hide the FMA latency, within the 16 vector
/// registers of AVX2, with fewer loads than multiply-adds (6 x 2 measured no faster,
/// docs/performance.md). The rows left over go one at a time.
const WIDE_TILE_ROWS: usize = 4;
const NARROW_TILE_ROWS: usize = 8;

impl WithSimd for TiledProduct<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(mut self, simd: S) {
        let lanes = S::F32_LANES;
        let rows = self.out.len() / self.width.max(1);
        let mut column = 0;
        while column < self.width {
            let wide = self.width - column > lanes;
            let tall = if wide {
                WIDE_TILE_ROWS
            } else {
                NARROW_TILE_ROWS
            };
            let mut row = 0;
            while row < rows {
                let tile_rows = if rows - row >= tall { tall } else { 1 };
                match (tile_rows, wide) {
                    (1, true) => self.tile::<S, 1, 2>(simd, row, column),
                    (1, false) => self.tile::<S, 1, 1>(simd, row, column),
                    (_, true) => self.tile::<S, WIDE_TILE_ROWS, 2>(simd, row, column),
                    (_, false) => self.tile::<S, NARROW_TILE_ROWS, 1>(simd, row, column),
                }
                row += tile_rows;
            }
            column += if wide { 2 * lanes } else { lanes };
        }
    }
}

impl TiledProduct<'_> {
    /// Output rows `row..row + R`, vectors of columns from `column` (the last one partial where
    /// the row ends inside it): the sums over the depth in registers, then finished and stored.
    #[inline(always)]
    fn tile<S: Simd, const R: usize, const V: usize>(
        &mut self,
        simd: S,
        row: usize,
        column: usize,
    ) {
        let (lanes, width, depth) = (S::F32_LANES, self.width, self.depth);
        let mut sums = [[simd.splat_f32s(0.0); V]; R];
        let full = column + V * lanes <= width;
        let rights = self.right.chunks_exact(width);
        match self.left_layout {
            Left::Rows => {
                for (d, right_row) in rights.enumerate() {
                    let mut xs = [0.0; R];
                    for (r, x) in xs.iter_mut().enumerate() {
                        *x = self.left[(row + r) * depth + d];
                    }
                    add_products::<S, R, V>(simd, &mut sums, &xs, right_row, (column, full));
                }
            }
            Left::Columns { first } => {
                let m = self.left.len() / depth.max(1);
                let rows = first + row..first + row + R;
                for (column_d, right_row) in self.left.chunks_exact(m).zip(rights) {
                    let xs: &[f32; R] = column_d[rows.clone()].try_into().expect("R rows");
                    add_products::<S, R, V>(simd, &mut sums, xs, right_row, (column, full));
                }
            }
        }
        for (r, sums) in sums.into_iter().enumerate() {
            let start = (row + r) * width;
            for (v, sum) in sums.into_iter().enumerate() {
                let at = column + v * lanes;
                let value = self.finished(simd, sum, start, at);
                let end = (at + lanes).min(width);
                let out = &mut self.out[start + at..start + end];
                if out.len() == lanes {
                    S::as_mut_simd_f32s(out).0[0] = value;
                } else {
                    simd.partial_store_f32s(out, value);
                }
            }
        }
    }

    /// The output vector at columns `at..` of the row starting at `row_start`, from its sums.
    #[inline(always)]
    fn finished<S: Simd>(&self, simd: S, sum: S::f32s, row_start: usize, at: usize) -> S::f32s {
        match self.finish {
            Finish::Bias(bias) => simd.add_f32s(load(simd, bias, at), sum),
            Finish::BiasSigmoid(bias) => {
                sigmoid_vector(simd, simd.add_f32s(load(simd, bias, at), sum))
            }
            Finish::Scale(scale) => simd.mul_f32s(simd.splat_f32s(scale), sum),
            Finish::Derivative(activations, kind) => {
                let row = &activations[row_start..row_start + self.width];
                let a = load(simd, row, at);
                simd.mul_f32s(sum, derivative(simd, a, kind))
            }
        }
    }
}

/// sums[r][v] += xs[r] · (vector v of `right_row` from column `column`), for a tile's R rows
/// and V vectors. (A closure here would be compiled without the instruction set's features.)
#[inline(always)]
fn add_products<S: Simd, const R: usize, const V: usize>(
    simd: S,
    sums: &mut [[S::f32s; V]; R],
    xs: &[f32; R],
    right_row: &[f32],
    (column, full): (usize, bool),
) {
    let lanes = S::F32_LANES;
    let mut right = [simd.splat_f32s(0.0); V];
    if full {
        let vectors = S::as_simd_f32s(&right_row[column..column + V * lanes]).0;
        right.copy_from_slice(&vectors[..V]);
    } else {
        for (v, w) in right.iter_mut().enumerate() {
            *w = load(simd, right_row, column + v * lanes);
        }
    }
    for (sums, &x) in sums.iter_mut().zip(xs) {
        let x = simd.splat_f32s(x);
        for (sum, &w) in sums.iter_mut().zip(&right) {
            *sum = simd.mul_add_e_f32s(x, w, *sum);
        }
    }
}

/// The vector of `values[at..]`, with zeros past its end.
#[inline(always)]
fn load<S: Simd>(simd: S, values: &[f32], at: usize) -> S::f32s {
    let lanes = S::F32_LANES;
    if values.len() - at >= lanes {
        S::as_simd_f32s(&values[at..at + lanes]).0[0]
    } else {
        simd.partial_load_f32s(&values[at..])
    }
}

/// f'(s) through a = f(s) for each lane, as [`crate::cpu::activation_derivative`] computes it.
#[inline(always)]
fn derivative<S: Simd>(simd: S, a: S::f32s, kind: Activation) -> S::f32s {
    let one = simd.splat_f32s(1.0);
    match kind {
        Activation::Sigmoid => simd.mul_f32s(a, simd.sub_f32s(one, a)),
        Activation::Relu => {
            let lit = simd.greater_than_f32s(a, simd.splat_f32s(0.0));
            simd.select_f32s(lit, one, simd.splat_f32s(0.0))
        }
        Activation::Tanh => simd.sub_f32s(one, simd.mul_f32s(a, a)),
    }
}
