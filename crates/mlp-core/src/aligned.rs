//! Arrays whose values start on a cache line.
//!
//! The fast CPU kernels load the rows of W1, of D1 and of the layers' outputs a vector at a time
//! (64 bytes with AVX-512). ndarray keeps an array's values in a `Vec<f32>`, and the system
//! allocator places a large one 16 bytes past a 64-byte boundary, so that every such load of a
//! 64-column row straddled two cache lines. On issue 27's Xeon the seed's first-layer forward
//! product took 0.0335 s an epoch in training that way, against 0.0172 s with W1 aligned
//! (docs/performance.md). The arrays here keep a few floats of room before their first value
//! and start where the address is a multiple of [`CACHE_LINE`]: with rows a multiple of 16
//! floats wide, every row is then aligned too.

use ndarray::{Array, Array1, Dimension, s};

use crate::network::Layer;

/// The bytes of a cache line, and of an AVX-512 vector.
pub const CACHE_LINE: usize = 64;

/// Floats of room kept before the first value, to move it onto a cache line.
const ROOM: usize = CACHE_LINE / std::mem::size_of::<f32>() - 1;

/// Zeros of `shape`, starting on a cache line.
pub fn aligned_zeros<D: Dimension>(shape: D) -> Array<f32, D> {
    let len = shape.size();
    let values = vec![0.0f32; len + ROOM];
    let first = values.as_ptr().align_offset(CACHE_LINE).min(ROOM);
    Array1::from_vec(values)
        .slice_move(s![first..first + len])
        .into_shape_with_order(shape)
        .expect("a contiguous run of the shape's size")
}

/// `array`'s values starting on a cache line, in row-major order: `array` itself where they
/// already are, else a copy.
pub fn aligned<D: Dimension>(array: Array<f32, D>) -> Array<f32, D> {
    let on_a_line = (array.as_ptr() as usize).is_multiple_of(CACHE_LINE);
    if on_a_line && array.is_standard_layout() {
        return array;
    }
    let mut copy = aligned_zeros(array.raw_dim());
    copy.assign(&array);
    copy
}

/// Moves each layer's weights and bias onto cache lines.
pub fn align_layers(layers: &mut [Layer]) {
    for layer in layers {
        layer.weights = aligned(std::mem::take(&mut layer.weights));
        layer.bias = aligned(std::mem::take(&mut layer.bias));
    }
}

#[cfg(test)]
mod tests {
    use ndarray::{Array2, Ix2};

    use super::*;

    #[test]
    fn zeros_and_copies_start_on_a_cache_line_and_keep_their_values() {
        for (rows, cols) in [(784, 64), (3, 5), (0, 7), (1, 1)] {
            let zeros = aligned_zeros(Ix2(rows, cols));
            assert_eq!(zeros.dim(), (rows, cols));
            // An empty array has no first value to place.
            let empty = rows * cols == 0;
            assert!(empty || (zeros.as_ptr() as usize).is_multiple_of(CACHE_LINE));
            assert!(zeros.iter().all(|&x| x == 0.0));
            let values = Array2::from_shape_fn((rows, cols), |(r, c)| (r * cols + c) as f32);
            let copy = aligned(values.clone());
            assert_eq!(copy, values);
            assert!(empty || (copy.as_ptr() as usize).is_multiple_of(CACHE_LINE));
            assert!(copy.as_slice().is_some(), "row by row");
        }
    }

    #[test]
    fn a_transposed_view_is_copied_row_by_row() {
        let values = Array2::from_shape_fn((3, 4), |(r, c)| (r * 4 + c) as f32);
        let transposed = aligned(values.t().to_owned().reversed_axes());
        assert_eq!(transposed, values);
        assert!(transposed.is_standard_layout());
    }
}
