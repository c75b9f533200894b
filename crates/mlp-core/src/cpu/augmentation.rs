//! Beyond the seed: random shifts of the training images (docs/SEED.md's E0s), the readable
//! function every backend's fast path is checked against, and the hash that draws the offsets.

use ndarray::{ArrayView2, ArrayViewMut2};

use super::Real;
use super::regularisation::hash32;
use crate::options::Shift;

/// How far batch row `row` of training step `step` (from 1) moves: (dx, dy), each in
/// −pixels..=pixels, from a hash of (seed, step, row). The step changes with every batch, so
/// an image moves anew each epoch; a kernel knows its row without reading the training order.
pub fn shift_offsets(shift: Shift, step: u64, row: usize) -> (i32, i32) {
    let constants = ShiftConstants::of(Some(shift));
    constants.offsets(step, row)
}

/// The numbers [`shift_offsets`] is made of, as a GPU kernel takes them: no shift is 0 pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShiftConstants {
    /// The seed folded to 32 bits.
    pub seed: u32,
    /// The largest move along each axis.
    pub pixels: u32,
}

impl ShiftConstants {
    pub fn of(shift: Option<Shift>) -> Self {
        match shift {
            None => Self { seed: 0, pixels: 0 },
            Some(s) => Self {
                seed: (s.seed ^ (s.seed >> 32)) as u32,
                pixels: s.pixels,
            },
        }
    }

    /// (dx, dy) of batch row `row` at step `step`: hash32 of (seed, step, row), then of that
    /// with 0 for dx and with 1 for dy, each taken modulo 2 · pixels + 1.
    pub fn offsets(self, step: u64, row: usize) -> (i32, i32) {
        if self.pixels == 0 {
            return (0, 0);
        }
        let mut h = hash32(self.seed);
        for part in [step as u32, row as u32] {
            h = hash32(h ^ part);
        }
        let span = 2 * self.pixels + 1;
        let offset = |axis: u32| (hash32(h ^ axis) % span) as i32 - self.pixels as i32;
        (offset(0), offset(1))
    }
}

/// Where pixel `pixel` of a `rows` x `cols` image lands when the image moves by (dx, dy):
/// `None` where it leaves the image. Pixels that stay keep their order.
pub fn shifted_pixel(
    pixel: usize,
    (dx, dy): (i32, i32),
    (rows, cols): (usize, usize),
) -> Option<usize> {
    let row = (pixel / cols) as i64 + i64::from(dy);
    let col = (pixel % cols) as i64 + i64::from(dx);
    let inside = (0..rows as i64).contains(&row) && (0..cols as i64).contains(&col);
    inside.then(|| row as usize * cols + col as usize)
}

/// Ã0 = A0 with row r moved by `shift_offsets(shift, t, first_row + r)` (E0s): Ã0[r, (i + dy)
/// · cols + j + dx] = A0[r, i · cols + j], the pixels moved past the edge lost and the
/// uncovered ones 0. Layer 1 reads Ã0 in E1 and E5.
///
/// - `images` A0: (B, rows · cols), each row an image row by row
/// - `shifted` Ã0: (B, rows · cols), overwritten
pub fn shift_images<F: Real>(
    images: ArrayView2<F>,
    mut shifted: ArrayViewMut2<F>,
    (shift, step): (Shift, u64),
    (rows, cols): (usize, usize),
    first_row: usize,
) {
    shifted.fill(F::zero());
    for (r, image) in images.outer_iter().enumerate() {
        let offsets = shift_offsets(shift, step, first_row + r);
        for (pixel, &x) in image.iter().enumerate() {
            if let Some(to) = shifted_pixel(pixel, offsets, (rows, cols)) {
                shifted[[r, to]] = x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn offsets_stay_within_the_limit_and_reach_every_value() {
        let shift = Shift { pixels: 2, seed: 7 };
        let mut seen = std::collections::BTreeSet::new();
        for row in 0..500 {
            let (dx, dy) = shift_offsets(shift, 3, row);
            assert!(dx.abs() <= 2 && dy.abs() <= 2, "{dx}, {dy}");
            seen.insert((dx, dy));
        }
        assert_eq!(seen.len(), 25, "every (dx, dy) of -2..=2 is drawn");
        let at = |step| {
            (0..9)
                .map(|row| shift_offsets(shift, step, row))
                .collect::<Vec<_>>()
        };
        assert_ne!(at(3), at(4), "each step moves the rows anew");
    }

    #[test]
    fn a_shifted_image_moves_and_loses_what_leaves_it() {
        // A 2 x 3 image 1 2 3 / 4 5 6 moved one right and one down is 0 0 0 / 0 1 2.
        let image = Array2::from_shape_vec((1, 6), vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        let shift = (0..)
            .map(|seed| Shift { pixels: 1, seed })
            .find(|&s| shift_offsets(s, 1, 0) == (1, 1))
            .unwrap();
        let mut shifted = Array2::zeros((1, 6));
        shift_images(image.view(), shifted.view_mut(), (shift, 1), (2, 3), 0);
        assert_eq!(shifted.as_slice().unwrap(), &[0.0, 0.0, 0.0, 0.0, 1.0, 2.0]);
        assert_eq!(shifted_pixel(2, (1, 0), (2, 3)), None);
        assert_eq!(shifted_pixel(3, (-1, -1), (2, 3)), None);
        assert_eq!(shifted_pixel(4, (-1, -1), (2, 3)), Some(0));
    }
}
