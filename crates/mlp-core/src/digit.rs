//! A picture of one handwritten digit (PNG or JPEG) made MNIST-like, the way MNIST itself was
//! made from NIST's scans: grey levels with the ink bright on black, the digit cropped, scaled
//! to fit a 20 x 20 box keeping its aspect ratio (with anti-aliasing), and placed in a 28 x 28
//! field so that its centre of mass is the field's centre.

use std::io::{self, BufRead, Cursor, Seek};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2, s};

use crate::data::IMAGE_SIDE;

/// The box the digit is scaled to fit, as in MNIST.
pub const DIGIT_BOX: usize = 20;
/// A pixel belongs to the digit when its ink, after the background is removed and the
/// darkest stroke is scaled to 1, is above this: low enough to keep the anti-aliased rim of
/// a digit, high enough to ignore paper grain and JPEG ringing.
pub const INK_THRESHOLD: f32 = 0.15;

/// The most pixels a picture may have: a 48-megapixel photo's worth, which takes about 1 GB
/// while it is made MNIST-like. Larger pictures are refused before they are decoded.
pub const MAX_PIXELS: u64 = 48_000_000;

#[derive(Debug, thiserror::Error)]
pub enum DigitError {
    #[error(
        "{} is {width} x {height} pixels, more than the {limit} pixels a picture may have; \
         scale it down (a digit needs no more than a few hundred pixels a side)", path.display()
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u64,
    },
    #[error(transparent)]
    Input(#[from] crate::input::InputError),
    #[error("cannot read the image {} (give a PNG or JPEG file)", path.display())]
    Read {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error(
        "{} has no digit in it: every pixel is the background colour (or nearly so); \
         give a picture of one dark digit on light paper, or a light one on black", path.display()
    )]
    Empty { path: PathBuf },
}

/// Reads the picture at `path` and returns its 28 x 28 MNIST-like pixels, row-major,
/// 0 = background, 255 = full ink.
pub fn load_digit(path: &Path) -> Result<Vec<u8>, DigitError> {
    // A FIFO or a device would block or never end: refused before the decoder opens it. A
    // file that cannot be read at all is the decoder's to report, as any unreadable picture.
    match crate::input::regular_file_size(path) {
        Ok(_) | Err(crate::input::InputError::Io { .. }) => {}
        Err(refused) => return Err(refused.into()),
    }
    digit_from(path, MAX_PIXELS, || {
        image::ImageReader::open(path).and_then(|reader| reader.with_guessed_format())
    })
}

/// [`load_digit`] on a picture file's bytes; `name` names it in errors.
pub fn decode_digit(bytes: &[u8], name: &Path) -> Result<Vec<u8>, DigitError> {
    decode_digit_within(bytes, name, MAX_PIXELS)
}

/// [`decode_digit`], refusing pictures of more than `max_pixels` pixels: a server decoding
/// several at once sets a lower limit than one command's.
pub fn decode_digit_within(
    bytes: &[u8],
    name: &Path,
    max_pixels: u64,
) -> Result<Vec<u8>, DigitError> {
    digit_from(name, max_pixels, || {
        image::ImageReader::new(Cursor::new(bytes)).with_guessed_format()
    })
}

/// The digit in the picture that `open` reads, refusing one of more than `max_pixels`
/// pixels from its header alone, before it is decoded.
fn digit_from<R: BufRead + Seek>(
    path: &Path,
    max_pixels: u64,
    open: impl Fn() -> io::Result<image::ImageReader<R>>,
) -> Result<Vec<u8>, DigitError> {
    let picture = picture_from(path, max_pixels, open)?;
    mnist_like(luminance(&picture).view()).ok_or_else(|| DigitError::Empty {
        path: path.to_path_buf(),
    })
}

/// The picture file at `path` decoded, refusing one of more than `max_pixels` pixels from its
/// header alone, before it is decoded. The caller checks that `path` is a regular file.
pub fn read_picture(path: &Path, max_pixels: u64) -> Result<image::DynamicImage, DigitError> {
    picture_from(path, max_pixels, || {
        image::ImageReader::open(path).and_then(|reader| reader.with_guessed_format())
    })
}

/// The picture that `open` reads, as [`read_picture`].
fn picture_from<R: BufRead + Seek>(
    path: &Path,
    max_pixels: u64,
    open: impl Fn() -> io::Result<image::ImageReader<R>>,
) -> Result<image::DynamicImage, DigitError> {
    let unreadable = |source: image::ImageError| DigitError::Read {
        path: path.to_path_buf(),
        source,
    };
    let open = || open().map_err(|e| unreadable(image::ImageError::IoError(e)));
    let (width, height) = open()?.into_dimensions().map_err(unreadable)?;
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(DigitError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit: max_pixels,
        });
    }
    let mut reader = open()?;
    let mut limits = image::Limits::default();
    // The decoder's own buffers, for a file whose header told less than the truth.
    limits.max_alloc = Some(max_pixels * 8);
    reader.limits(limits);
    reader.decode().map_err(unreadable)
}

/// Brightness 0 (black) .. 1 (white) of each pixel, (height, width); transparent pixels
/// count as white paper.
pub fn luminance(picture: &image::DynamicImage) -> Array2<f32> {
    let grey = picture.to_luma_alpha32f();
    let (width, height) = grey.dimensions();
    Array2::from_shape_fn((height as usize, width as usize), |(y, x)| {
        let [luma, alpha] = grey.get_pixel(x as u32, y as u32).0;
        luma * alpha + (1.0 - alpha)
    })
}

/// The MNIST-like 28 x 28 digit in `brightness` (height, width; 0 black .. 1 white), or
/// `None` when there is no ink in it.
pub fn mnist_like(brightness: ArrayView2<f32>) -> Option<Vec<u8>> {
    mnist_like_sized(brightness, IMAGE_SIDE)
}

/// [`mnist_like`] in a `side` x `side` field, the digit's box scaled as MNIST's 20 is to its
/// 28 (so `side` 28 is MNIST's own).
pub fn mnist_like_sized(brightness: ArrayView2<f32>, side: usize) -> Option<Vec<u8>> {
    let digit_box = ((side * DIGIT_BOX + IMAGE_SIDE / 2) / IMAGE_SIDE).max(1);
    let ink = ink(brightness)?;
    let (top, bottom, left, right) = ink_box(ink.view())?;
    let digit = ink.slice(s![top..bottom, left..right]);
    let (height, width) = digit.dim();
    let longest = height.max(width) as f32;
    let scaled_size = |extent: usize| {
        ((extent as f32 * digit_box as f32 / longest).round() as usize).clamp(1, digit_box)
    };
    let scaled = resample_area(digit, scaled_size(height), scaled_size(width));
    let field = centre_by_mass(scaled.view(), side);
    Some(
        field
            .iter()
            .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect(),
    )
}

/// Ink 0..1 per pixel: brightness inverted when the background (the median of the border
/// pixels) is light, the background level subtracted, and the strongest ink scaled to 1.
/// `None` when nothing stands out from the background.
fn ink(brightness: ArrayView2<f32>) -> Option<Array2<f32>> {
    let (height, width) = brightness.dim();
    if height == 0 || width == 0 {
        return None;
    }
    let mut border: Vec<f32> = brightness
        .indexed_iter()
        .filter(|((y, x), _)| *y == 0 || *x == 0 || *y == height - 1 || *x == width - 1)
        .map(|(_, &v)| v)
        .collect();
    border.sort_by(f32::total_cmp);
    let background = border[border.len() / 2];
    let light_paper = background > 0.5;
    let raw = brightness.mapv(|v| if light_paper { 1.0 - v } else { v });
    let background_ink = if light_paper {
        1.0 - background
    } else {
        background
    };
    let strongest = raw.iter().copied().fold(0.0f32, f32::max);
    let range = strongest - background_ink;
    // Less than a tenth of the full scale between paper and the darkest stroke: no digit.
    if range < 0.1 {
        return None;
    }
    Some(raw.mapv(|v| ((v - background_ink) / range).max(0.0)))
}

/// The smallest box (top, bottom, left, right; ends exclusive) holding every pixel whose ink
/// is above [`INK_THRESHOLD`].
fn ink_box(ink: ArrayView2<f32>) -> Option<(usize, usize, usize, usize)> {
    let mut found: Option<(usize, usize, usize, usize)> = None;
    for ((y, x), &v) in ink.indexed_iter() {
        if v > INK_THRESHOLD {
            found = Some(match found {
                None => (y, y + 1, x, x + 1),
                Some((t, b, l, r)) => (t.min(y), b.max(y + 1), l.min(x), r.max(x + 1)),
            });
        }
    }
    found
}

/// `source` resized to (height, width) by area averaging: each output pixel is the mean of
/// the source area it covers, fractional pixels weighted by the fraction covered. This is the
/// anti-aliasing MNIST's scaling had; it neither loses thin strokes when shrinking nor adds
/// ringing.
pub fn resample_area(source: ArrayView2<f32>, height: usize, width: usize) -> Array2<f32> {
    let (source_height, source_width) = source.dim();
    let weights_along = |from: usize, to: usize| -> Vec<Vec<(usize, f32)>> {
        let step = from as f32 / to as f32;
        (0..to)
            .map(|i| {
                let (start, end) = (i as f32 * step, (i + 1) as f32 * step);
                (start.floor() as usize..(end.ceil() as usize).min(from))
                    .map(|j| {
                        let covered = (end.min(j as f32 + 1.0) - start.max(j as f32)).max(0.0);
                        (j, covered / step)
                    })
                    .collect()
            })
            .collect()
    };
    let rows = weights_along(source_height, height);
    let cols = weights_along(source_width, width);
    Array2::from_shape_fn((height, width), |(y, x)| {
        rows[y]
            .iter()
            .flat_map(|&(sy, wy)| {
                cols[x]
                    .iter()
                    .map(move |&(sx, wx)| wy * wx * source[(sy, sx)])
            })
            .sum()
    })
}

/// `digit` placed in a `side` x `side` field of zeros so that its centre of mass lands on
/// pixel (side / 2, side / 2), counting pixels from 0 (rounded to whole pixels, and kept inside
/// the field). That is where MNIST's digits have it: over the test set the centre of mass is at
/// row 14.01, column 14.01 on average.
pub fn centre_by_mass(digit: ArrayView2<f32>, side: usize) -> Array2<f32> {
    let (height, width) = digit.dim();
    let mass: f32 = digit.sum();
    let (mut row_moment, mut col_moment) = (0.0f32, 0.0f32);
    for ((y, x), &v) in digit.indexed_iter() {
        row_moment += v * y as f32;
        col_moment += v * x as f32;
    }
    let centre = side as f32 / 2.0;
    let offset = |moment: f32, extent: usize| -> usize {
        let wanted = (centre - moment / mass.max(f32::MIN_POSITIVE)).round();
        wanted.clamp(0.0, side.saturating_sub(extent) as f32) as usize
    };
    let (top, left) = (offset(row_moment, height), offset(col_moment, width));
    let mut field = Array2::zeros((side, side));
    let (fit_h, fit_w) = (height.min(side - top), width.min(side - left));
    field
        .slice_mut(s![top..top + fit_h, left..left + fit_w])
        .assign(&digit.slice(s![..fit_h, ..fit_w]));
    field
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resampling_keeps_the_mean() {
        let source = Array2::from_shape_fn((7, 5), |(y, x)| (y * 5 + x) as f32);
        let small = resample_area(source.view(), 3, 2);
        let (a, b) = (source.mean().unwrap(), small.mean().unwrap());
        assert!((a - b).abs() < 1e-4, "{a} {b}");
        let same = resample_area(source.view(), 7, 5);
        assert!(same.iter().zip(&source).all(|(x, y)| (x - y).abs() < 1e-5));
    }

    #[test]
    fn a_dark_square_on_white_becomes_a_centred_bright_square() {
        let mut page = Array2::from_elem((60, 90), 1.0f32);
        page.slice_mut(s![5..15, 70..80]).fill(0.0);
        let digit = mnist_like(page.view()).unwrap();
        let field = Array2::from_shape_vec((28, 28), digit).unwrap();
        // 20 x 20 full ink and nothing else, its centre of mass (index 9.5 of the square)
        // within a pixel of index 14.
        assert_eq!(field.iter().filter(|&&v| v == 255).count(), 400);
        assert_eq!(field.iter().filter(|&&v| v > 0).count(), 400);
        let inked: Vec<(usize, usize)> = field
            .indexed_iter()
            .filter(|(_, v)| **v > 0)
            .map(|(at, _)| at)
            .collect();
        let top = inked.iter().map(|p| p.0).min().unwrap();
        let left = inked.iter().map(|p| p.1).min().unwrap();
        assert!(
            (4..=5).contains(&top) && (4..=5).contains(&left),
            "{top} {left}"
        );
    }

    #[test]
    fn a_blank_page_has_no_digit() {
        assert!(mnist_like(Array2::from_elem((30, 30), 0.97f32).view()).is_none());
        assert!(mnist_like(Array2::<f32>::zeros((0, 0)).view()).is_none());
    }
}
