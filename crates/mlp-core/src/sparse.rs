//! The first layer's two products with the images stored sparsely.
//!
//! Four in five MNIST pixels are 0 (80.9 % of the training set's), and a 0 in A0 adds exactly
//! nothing to S1 = A0 W1 + b1 or to A0ᵀ D1. Keeping only the non-zero pixels of each image and
//! skipping the rest computes the same sums as [`crate::cpu::linear_forward`] and
//! [`crate::cpu::weights_gradient`] with a fifth of the arithmetic: those two products are 92 %
//! of a seed training step's multiply-adds. `tests/fast_kernels.rs` checks each function here
//! against the dense reference.
//!
//! The sums run in vector registers with fused multiply-adds, sixteen f32 wide where the CPU has
//! AVX-512 and eight where it has AVX2 and FMA ([`InstructionSet`], chosen by the caller;
//! plain f32 elsewhere).

use std::ops::Range;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use pulp::{Simd, WithSimd};

use crate::data::Dataset;
use crate::simd::{InstructionSet, Prefetch};

mod by_pixel;

pub use by_pixel::{PackedFrom, PackedPixelColumns, PixelColumns, PixelEntries};

/// What a training step does to its batch's images before layer 1 reads them
/// ([`SparseImages::fill_changed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputChanges {
    pub shift: Option<crate::options::Shift>,
    pub dropout: Option<crate::options::Dropout>,
    /// The training step, from 1, whose shifts and masks these are.
    pub step: u64,
}

impl InputChanges {
    /// Whether the step changes its images at all.
    pub fn any(&self) -> bool {
        self.shift.is_some() || self.dropout.is_some()
    }
}

/// Images as the network sees them (each byte divided by 255), with their zero pixels left out:
/// compressed sparse rows.
#[derive(Debug, Clone, Default)]
pub struct SparseImages {
    /// Pixels per image: the width of A0.
    pixels: usize,
    /// Pixels per image row.
    cols: usize,
    /// Image i's entries are `starts[i]..starts[i + 1]` of `columns` and `values`.
    starts: Vec<usize>,
    /// The pixel index of each non-zero entry, increasing within an image.
    columns: Vec<u32>,
    /// The normalised value of each non-zero entry, in (0, 1].
    values: Vec<f32>,
}

impl SparseImages {
    /// The non-zero pixels of every image of `set`, normalised.
    pub fn new(set: &Dataset) -> Self {
        let pixels = set.pixels();
        let mut starts = Vec::with_capacity(set.len() + 1);
        let mut columns = Vec::new();
        let mut values = Vec::new();
        starts.push(0);
        for image in set.lit_pixels() {
            for (column, byte) in image {
                columns.push(u32::try_from(column).expect("an image has under 2^32 pixels"));
                values.push(f32::from(byte) / 255.0);
            }
            starts.push(columns.len());
        }
        Self {
            pixels,
            cols: set.cols,
            starts,
            columns,
            values,
        }
    }

    /// How many images.
    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pixels per image.
    pub fn pixels(&self) -> usize {
        self.pixels
    }

    /// How many images each pixel is lit (stored) in.
    pub fn lit_per_pixel(&self) -> Vec<usize> {
        let mut counts = vec![0; self.pixels];
        for &column in &self.columns {
            counts[column as usize] += 1;
        }
        counts
    }

    /// The fraction of pixels that are stored (not 0).
    pub fn density(&self) -> f64 {
        self.values.len() as f64 / (self.len() * self.pixels).max(1) as f64
    }

    /// Images `batch` of `source`, in order, as layer 1 reads them at training step `step`:
    /// each image moved by its shift (E0s, as `crate::cpu::shift_images` moves a dense A0,
    /// pixels moved out left out), then each pixel through input dropout (E2d for layer 0, as
    /// `crate::cpu::dropout_forward` applies it; dropped pixels left out, kept ones scaled by
    /// 1 / (1 − p)). Row r of `batch` becomes image r.
    pub fn fill_changed(&mut self, source: &SparseImages, batch: &[u32], changes: InputChanges) {
        let dropout = crate::cpu::DropoutConstants::of(changes.dropout);
        let shift = crate::cpu::ShiftConstants::of(changes.shift);
        let side = (source.pixels / source.cols.max(1), source.cols);
        self.pixels = source.pixels;
        self.cols = source.cols;
        self.starts.clear();
        self.columns.clear();
        self.values.clear();
        self.starts.push(0);
        source.prefetch_scattered(batch);
        for (row, &image) in batch.iter().enumerate() {
            let row_hash = crate::cpu::dropout_row_hash(dropout, changes.step, 0, row);
            let offsets = shift.offsets(changes.step, row);
            let (columns, values) = source.image(image as usize);
            for (&column, &x) in columns.iter().zip(values) {
                let Some(to) = crate::cpu::shifted_pixel(column as usize, offsets, side) else {
                    continue;
                };
                // Without dropout every unit is kept and the scale is 1.
                if dropout.keeps(row_hash, to as u32) {
                    self.columns.push(to as u32);
                    self.values.push(x * dropout.scale);
                }
            }
            self.starts.push(self.columns.len());
        }
    }

    /// Asks for the lit pixels of images `batch` into the cache, unless the batch is a run of
    /// consecutive images. A shuffled batch's images lie anywhere in the set (72 MB for
    /// MNIST's training images), and a kernel that reaches each one in turn waits for its
    /// misses; consecutive images lie one after another, where the CPU's own prefetching
    /// already reads ahead, and asking again only slowed the seed's file-order epoch
    /// (docs/performance.md).
    fn prefetch_scattered(&self, batch: &[u32]) {
        if batch.windows(2).all(|pair| pair[1] == pair[0] + 1) {
            return;
        }
        let prefetch = Prefetch::new();
        for &image in batch {
            let (columns, values) = self.image(image as usize);
            prefetch.lines(columns);
            prefetch.lines(values);
        }
    }

    /// Image `image`'s non-zero pixels: their indices and normalised values.
    pub fn image(&self, image: usize) -> (&[u32], &[f32]) {
        let range = self.starts[image]..self.starts[image + 1];
        (&self.columns[range.clone()], &self.values[range])
    }
}

/// S1 = A0 W1 + b1, where row r of A0 is image `batch[r]` of `images`, on `simd`'s vectors.
/// Each column's sums are the same whichever columns are computed together, so threads can
/// share out W1's columns: `weights`, `bias` and `sum` may hold any run of them.
///
/// - `images`: A0's rows, sparse, each `in` pixels wide
/// - `batch`: (B) image indices
/// - `weights` W1: (in, out), standard (row-major) layout
/// - `bias` b1: (out)
/// - `sum` S1: (B, out), each row contiguous, overwritten
pub fn sparse_linear_forward(
    simd: InstructionSet,
    images: &SparseImages,
    batch: &[u32],
    weights: ArrayView2<f32>,
    bias: ArrayView1<f32>,
    sum: ArrayViewMut2<f32>,
) {
    images.prefetch_scattered(batch);
    // Row r of S1 is b1 plus, for each lit pixel p of its image, x · row p of W1.
    simd.dispatch(ScaledRowSums {
        entries: |r: usize| images.image(batch[r] as usize),
        matrix: MatrixColumns::of(weights, 0..bias.len()),
        finish: Finish::Bias(bias.as_slice().expect("b1 is contiguous")),
        out: sum,
    });
}

/// The rows of grad W1 = scale · A0ᵀ D1 of the pixels `by_pixel` holds (P of them, from some
/// first pixel), on `simd`'s vectors: row p is scale times, for each batch row r where the
/// pixel is lit, x · row r of D1. Each row of grad W1 belongs to one pixel, so the rows can be
/// shared out between threads.
///
/// - `by_pixel`: the batch's lit pixels regrouped by pixel ([`PixelColumns::fill_from`]),
///   batch rows increasing within a pixel
/// - `delta` D1: (B, out), standard layout
/// - `gradient`: (P, out), standard layout, overwritten
pub fn sparse_weights_gradient(
    simd: InstructionSet,
    by_pixel: &(impl PixelEntries + ?Sized),
    delta: ArrayView2<f32>,
    scale: f32,
    gradient: ArrayViewMut2<f32>,
) {
    let columns = 0..delta.ncols();
    sparse_weights_gradient_columns(simd, by_pixel, delta, columns, scale, gradient);
}

/// Columns `columns` of [`sparse_weights_gradient`]'s rows: their sums do not depend on the
/// other columns, so threads can share out the columns as well as the rows.
///
/// - `delta` D1: (B, out), standard layout, all its columns
/// - `gradient`: (P, columns), each row contiguous, overwritten
pub fn sparse_weights_gradient_columns(
    simd: InstructionSet,
    by_pixel: &(impl PixelEntries + ?Sized),
    delta: ArrayView2<f32>,
    columns: Range<usize>,
    scale: f32,
    gradient: ArrayViewMut2<f32>,
) {
    simd.dispatch(ScaledRowSums {
        entries: |p: usize| by_pixel.pixel(p),
        matrix: MatrixColumns::of(delta, columns),
        finish: Finish::Scale(scale),
        out: gradient,
    });
}

/// W1 −= lr · grad W1, with grad W1 = scale · A0ᵀ D1 as [`sparse_weights_gradient`] computes
/// it, row by row, without storing it: the same numbers as that function followed by
/// [`crate::cpu::gradient_descent_update`]. Rows of pixels lit nowhere in the batch have a zero
/// gradient and are left as they are.
///
/// - `weights`: the rows of W1 of the pixels `by_pixel` holds, (P, out), standard layout,
///   updated in place
/// - the rest as [`sparse_weights_gradient`]
pub fn sparse_gradient_descent(
    simd: InstructionSet,
    by_pixel: &(impl PixelEntries + ?Sized),
    delta: ArrayView2<f32>,
    (scale, learning_rate): (f32, f32),
    weights: ArrayViewMut2<f32>,
) {
    let columns = 0..delta.ncols();
    sparse_gradient_descent_columns(
        simd,
        by_pixel,
        delta,
        columns,
        (scale, learning_rate),
        weights,
    );
}

/// Columns `columns` of [`sparse_gradient_descent`]: `weights` is (P, columns), each row
/// contiguous, updated in place; `delta` D1 is (B, out), all its columns.
pub fn sparse_gradient_descent_columns(
    simd: InstructionSet,
    by_pixel: &(impl PixelEntries + ?Sized),
    delta: ArrayView2<f32>,
    columns: Range<usize>,
    (scale, learning_rate): (f32, f32),
    weights: ArrayViewMut2<f32>,
) {
    simd.dispatch(ScaledRowSums {
        entries: |p: usize| by_pixel.pixel(p),
        matrix: MatrixColumns::of(delta, columns),
        finish: Finish::Descend {
            scale,
            learning_rate,
        },
        out: weights,
    });
}

/// Some columns of a matrix stored row by row: what the sparse products read a row of.
#[derive(Clone, Copy)]
struct MatrixColumns<'a> {
    /// The whole matrix, row after row.
    values: &'a [f32],
    /// Its row length.
    stride: usize,
    /// The first column and the width.
    first: usize,
    width: usize,
}

impl<'a> MatrixColumns<'a> {
    fn of(matrix: ArrayView2<'a, f32>, columns: Range<usize>) -> Self {
        assert!(
            columns.start <= columns.end && columns.end <= matrix.ncols(),
            "columns {columns:?} of {}",
            matrix.ncols()
        );
        Self {
            stride: matrix.ncols(),
            values: matrix.to_slice().expect("the matrix is stored row by row"),
            first: columns.start,
            width: columns.len(),
        }
    }

    /// Row `row`'s columns.
    #[inline(always)]
    fn row(self, row: usize) -> &'a [f32] {
        let start = row * self.stride + self.first;
        &self.values[start..start + self.width]
    }
}

/// How an output row is made from the sum Σ x · matrix row i of its entries.
#[derive(Clone, Copy)]
enum Finish<'a> {
    /// bias + sum
    Bias(&'a [f32]),
    /// scale · sum
    Scale(f32),
    /// out − learning_rate · (scale · sum); rows without entries are left alone.
    Descend { scale: f32, learning_rate: f32 },
}

/// The kernel every sparse product here shares: output row o is made (see [`Finish`]) from
/// the sum Σ x · matrix row i over the (i, x) that `entries(o)` lists.
struct ScaledRowSums<'a, E> {
    entries: E,
    matrix: MatrixColumns<'a>,
    finish: Finish<'a>,
    out: ArrayViewMut2<'a, f32>,
}

/// Vector registers summed at once: eight independent chains of fused multiply-adds, enough
/// to hide their latency, while a block of the output row stays in registers. A row's last
/// vectors go in blocks of 4, 2 and 1: the seed's 64 columns are 8 vectors of AVX2 but 4 of
/// AVX-512, which would otherwise be summed one chain at a time.
const BLOCK: usize = 8;

impl<'a, E: Fn(usize) -> (&'a [u32], &'a [f32])> WithSimd for ScaledRowSums<'a, E> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let (matrix, finish, mut out) = (self.matrix, self.finish, self.out);
        let width = out.ncols();
        assert_eq!(
            width, matrix.width,
            "an output row is as wide as the columns"
        );
        for (o, out_row) in out.outer_iter_mut().enumerate() {
            let out_row = out_row.into_slice().expect("an output row is contiguous");
            let (indices, values) = (self.entries)(o);
            if indices.is_empty() && matches!(finish, Finish::Descend { .. }) {
                continue;
            }
            let (out_vectors, out_tail) = S::as_mut_simd_f32s(out_row);
            let mut first = 0;
            let mut blocks = out_vectors.chunks_exact_mut(BLOCK);
            for block in &mut blocks {
                sum_block::<S, BLOCK>(simd, (indices, values), matrix, finish, first, block);
                first += BLOCK;
            }
            let mut rest = blocks.into_remainder();
            while !rest.is_empty() {
                let (block, after) = rest.split_at_mut(1 << rest.len().ilog2().min(2));
                let entries = (indices, values);
                match block.len() {
                    4 => sum_block::<S, 4>(simd, entries, matrix, finish, first, block),
                    2 => sum_block::<S, 2>(simd, entries, matrix, finish, first, block),
                    _ => sum_block::<S, 1>(simd, entries, matrix, finish, first, block),
                }
                first += block.len();
                rest = after;
            }
            let tail_start = width - out_tail.len();
            for (column, out) in out_tail.iter_mut().enumerate() {
                let sum: f32 = indices
                    .iter()
                    .zip(values)
                    .map(|(&i, &x)| x * matrix.row(i as usize)[tail_start + column])
                    .sum();
                *out = match finish {
                    Finish::Bias(bias) => bias[tail_start + column] + sum,
                    Finish::Scale(scale) => scale * sum,
                    Finish::Descend {
                        scale,
                        learning_rate,
                    } => *out - learning_rate * (scale * sum),
                };
            }
        }
    }
}

/// Output vectors `first..first + N` of a row, `block`, from the sums over its entries.
#[inline(always)]
fn sum_block<S: Simd, const N: usize>(
    simd: S,
    (indices, values): (&[u32], &[f32]),
    matrix: MatrixColumns<'_>,
    finish: Finish<'_>,
    first: usize,
    block: &mut [S::f32s],
) {
    let block: &mut [S::f32s; N] = block.try_into().expect("N vectors");
    let sums = row_sums(simd, indices, values, matrix, first);
    finish_block(simd, finish, first * S::F32_LANES, sums, block);
}

/// Σ x · (vectors first..first + N of matrix row i) over the entries, in registers.
#[inline(always)]
fn row_sums<S: Simd, const N: usize>(
    simd: S,
    indices: &[u32],
    values: &[f32],
    matrix: MatrixColumns<'_>,
    first: usize,
) -> [S::f32s; N] {
    let mut sums = [simd.splat_f32s(0.0); N];
    for (&i, &x) in indices.iter().zip(values) {
        let row = &S::as_simd_f32s(matrix.row(i as usize)).0[first..first + N];
        let x = simd.splat_f32s(x);
        for (sum, &m) in sums.iter_mut().zip(row) {
            *sum = simd.mul_add_e_f32s(x, m, *sum);
        }
    }
    sums
}

/// Writes a block of an output row, starting at column `column`, from its sums.
#[inline(always)]
fn finish_block<S: Simd, const N: usize>(
    simd: S,
    finish: Finish<'_>,
    column: usize,
    sums: [S::f32s; N],
    block: &mut [S::f32s; N],
) {
    match finish {
        Finish::Bias(bias) => {
            let bias = &S::as_simd_f32s(&bias[column..]).0[..N];
            for ((out, sum), &b) in block.iter_mut().zip(sums).zip(bias) {
                *out = simd.add_f32s(b, sum);
            }
        }
        Finish::Scale(scale) => {
            let scale = simd.splat_f32s(scale);
            for (out, sum) in block.iter_mut().zip(sums) {
                *out = simd.mul_f32s(scale, sum);
            }
        }
        Finish::Descend {
            scale,
            learning_rate,
        } => {
            let (scale, rate) = (simd.splat_f32s(scale), simd.splat_f32s(learning_rate));
            for (out, sum) in block.iter_mut().zip(sums) {
                let gradient = simd.mul_f32s(scale, sum);
                *out = simd.sub_f32s(*out, simd.mul_f32s(rate, gradient));
            }
        }
    }
}
