//! The CPU backend's fast kernels against the reference functions of `cpu/mod.rs`: the first
//! layer's sparse products on random images that are mostly 0 (as MNIST's are), in a shuffled
//! batch order, for widths that fill whole vector registers, part of one, and neither; and the
//! vectorised sigmoid. Each on every instruction set this CPU has (scalar, AVX2, AVX-512).

mod common;

use common::{assert_matrix_passes, instruction_sets, random_matrix};
use mlp_core::Dataset;
use mlp_core::compare::{Difference, Tolerance};
use mlp_core::cpu::{
    AdamStep, adam_update, gradient_descent_update, linear_forward, sigmoid_forward,
    weights_gradient,
};
use mlp_core::rng::Rng;
use mlp_core::simd::InstructionSet;
use mlp_core::sparse::{
    PackedPixelColumns, PixelColumns, SparseImages, sparse_gradient_descent,
    sparse_gradient_descent_columns, sparse_linear_forward, sparse_weights_gradient,
    sparse_weights_gradient_columns,
};
use mlp_core::vectorised::{adam_update_vectorised, sigmoid_forward_vectorised};
use ndarray::{Array1, Array2, Axis, s};

/// Both sides are f32 sums of the same terms in another order. With up to ~160 lit pixels of
/// O(1) terms, the sums reach ~10 and their rounding (f32 epsilon 6e-8 per addition, growing
/// with the number of terms) reaches ~1e-5: 1e-5 absolute plus 1e-4 relative.
const SUMMATION_ORDER: Tolerance = Tolerance::new(1e-5, 1e-4);

/// `count` images of `pixels` bytes, about `lit` of them non-zero, the rest 0.
fn mostly_dark_images(count: usize, pixels: usize, lit: f64, rng: &mut Rng) -> Dataset {
    let images = (0..count * pixels)
        .map(|_| {
            if rng.next_f64() < lit {
                1 + (rng.next_u64() % 255) as u8
            } else {
                0
            }
        })
        .collect();
    Dataset {
        images,
        labels: vec![0; count],
        rows: 1,
        cols: pixels,
    }
}

/// A0 as the dense reference sees it: rows `batch` of the set, each byte over 255.
fn dense_rows(set: &Dataset, batch: &[u32]) -> Array2<f32> {
    let pixels = set.pixels();
    Array2::from_shape_fn((batch.len(), pixels), |(r, p)| {
        f32::from(set.images[batch[r] as usize * pixels + p]) / 255.0
    })
}

/// grad W1 = scale · A0ᵀ D1 by the dense reference function.
fn reference_gradient(
    set: &Dataset,
    batch: &[u32],
    delta: &Array2<f32>,
    scale: f32,
) -> Array2<f32> {
    let mut gradient = Array2::zeros((set.pixels(), delta.ncols()));
    let input = dense_rows(set, batch);
    weights_gradient(input.view(), delta.view(), scale, gradient.view_mut());
    gradient
}

/// A shuffled batch of `rows` of the set's images, some of them twice.
fn batch_of(rows: usize, count: usize, rng: &mut Rng) -> Vec<u32> {
    (0..rows)
        .map(|_| (rng.next_u64() % count as u64) as u32)
        .collect()
}

/// A first-layer case: mostly-dark images, a shuffled batch of them and a random D1 for it.
struct Case {
    set: Dataset,
    images: SparseImages,
    batch: Vec<u32>,
    delta: Array2<f32>,
}

impl Case {
    fn new(count: usize, pixels: usize, outputs: usize, rng: &mut Rng) -> Self {
        let set = mostly_dark_images(count, pixels, 0.2, rng);
        let batch = batch_of(count, count, rng);
        Self {
            images: SparseImages::new(&set),
            delta: random_matrix(batch.len(), outputs, rng),
            set,
            batch,
        }
    }
}

/// (images, pixels, outputs): 64 outputs fill eight AVX2 registers (one block) or four
/// AVX-512 ones; 70 leaves a partial register; 13 is under two; 1 is a lone column; 3 pixels
/// is a tiny image; 200 is a block of 8 AVX-512 registers, then 4, then a partial one; 48 is
/// three AVX-512 registers (2 + 1).
/// The columns of a cache line of f32, on which a cut by hidden units falls.
const UNIT_LINE: usize = 16;

const SHAPES: [(usize, usize, usize); 7] = [
    (100, 784, 64),
    (37, 50, 70),
    (20, 29, 13),
    (7, 11, 1),
    (5, 3, 9),
    (12, 40, 200),
    (9, 30, 48),
];

/// The sets the CPU reports are the ones the kernels run on, so that no test passes by
/// running scalar code where a vector path was meant.
#[test]
fn every_instruction_set_the_cpu_reports_is_tested() {
    let sets = InstructionSet::available();
    assert!(sets.contains(&InstructionSet::Scalar));
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        assert_eq!(sets.contains(&InstructionSet::Avx2), avx2);
        let avx512 = is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512cd")
            && is_x86_feature_detected!("avx512dq")
            && is_x86_feature_detected!("avx512vl");
        assert_eq!(sets.contains(&InstructionSet::Avx512), avx512 && avx2);
    }
    assert_eq!(InstructionSet::best(), *sets.last().unwrap());
}

#[test]
fn sparse_linear_forward_should_match_reference() {
    let mut rng = Rng::new(11);
    for (count, pixels, outputs) in SHAPES {
        let set = mostly_dark_images(count, pixels, 0.2, &mut rng);
        let images = SparseImages::new(&set);
        let batch = batch_of(count, count, &mut rng);
        let weights = random_matrix(pixels, outputs, &mut rng);
        let bias = Array1::from_shape_fn(outputs, |_| rng.standard_normal() as f32);

        let mut reference = Array2::zeros((batch.len(), outputs));
        linear_forward(
            dense_rows(&set, &batch).view(),
            weights.view(),
            bias.view(),
            reference.view_mut(),
        );
        for simd in instruction_sets() {
            let mut sum = Array2::from_elem((batch.len(), outputs), f32::NAN);
            let (w, b) = (weights.view(), bias.view());
            sparse_linear_forward(simd, &images, &batch, w, b, sum.view_mut());
            let name = format!("S1 {count}x{pixels}x{outputs} {simd}");
            assert_matrix_passes(&name, &sum, &reference, SUMMATION_ORDER);

            // The same columns from two blocks of W1's columns, cut on a cache line, as
            // threads cut by hidden units make them: the same bits.
            let cut = outputs / 2 / UNIT_LINE * UNIT_LINE;
            let mut in_blocks = Array2::from_elem((batch.len(), outputs), f32::NAN);
            let (left, right) = in_blocks.view_mut().split_at(Axis(1), cut);
            for (units, part) in [(0..cut, left), (cut..outputs, right)] {
                let block = weights.slice(s![.., units.clone()]).to_owned();
                let b = bias.slice(s![units]);
                sparse_linear_forward(simd, &images, &batch, block.view(), b, part);
            }
            assert_eq!(in_blocks, sum, "S1 from two blocks of units");
        }
    }
}

#[test]
fn sparse_weights_gradient_should_match_reference() {
    let mut rng = Rng::new(12);
    let mut by_pixel = PixelColumns::default();
    for (count, pixels, outputs) in SHAPES {
        let Case {
            set,
            images,
            batch,
            delta,
        } = Case::new(count, pixels, outputs, &mut rng);
        for (scale, simd) in [1.0, 1.0 / batch.len() as f32]
            .into_iter()
            .flat_map(|scale| {
                instruction_sets()
                    .into_iter()
                    .map(move |simd| (scale, simd))
            })
        {
            let mut gradient = Array2::from_elem((pixels, outputs), f32::NAN);
            let lists = by_pixel.fill_from(&images, &batch, 0..pixels);
            sparse_weights_gradient(simd, lists, delta.view(), scale, gradient.view_mut());
            // The same lists packed, as the fast backend keeps them for the file order.
            let mut from_packed = Array2::from_elem((pixels, outputs), f32::NAN);
            let packed = PackedPixelColumns::packed(lists);
            sparse_weights_gradient(simd, &packed, delta.view(), scale, from_packed.view_mut());
            assert_eq!(from_packed, gradient, "grad W1 from packed lists");
            let reference = reference_gradient(&set, &batch, &delta, scale);
            assert_matrix_passes(
                &format!("grad W1 {count}x{pixels}x{outputs} scale {scale} {simd}"),
                &gradient,
                &reference,
                SUMMATION_ORDER,
            );

            // The same rows computed in two parts, as two threads share them.
            let mut halves = Array2::from_elem((pixels, outputs), f32::NAN);
            let half = pixels / 2;
            let (top, bottom) = halves.view_mut().split_at(Axis(0), half);
            for (pixel_range, rows) in [(0..half, top), (half..pixels, bottom)] {
                let lists = by_pixel.fill_from(&images, &batch, pixel_range);
                sparse_weights_gradient(simd, lists, delta.view(), scale, rows);
            }
            assert_eq!(halves, gradient, "grad W1 in two parts");

            // The same rows' columns in two parts cut on a cache line, as threads cut by
            // hidden units make them.
            let cut = outputs / 2 / UNIT_LINE * UNIT_LINE;
            let mut columns = Array2::from_elem((pixels, outputs), f32::NAN);
            let (left, right) = columns.view_mut().split_at(Axis(1), cut);
            let lists = by_pixel.fill_from(&images, &batch, 0..pixels);
            for (units, mut part) in [(0..cut, left), (cut..outputs, right)] {
                let mut block = Array2::from_elem((pixels, units.len()), f32::NAN);
                let (d, out) = (delta.view(), block.view_mut());
                sparse_weights_gradient_columns(simd, lists, d, units, scale, out);
                part.assign(&block);
            }
            assert_eq!(columns, gradient, "grad W1 in two parts of its columns");
        }
    }
}

#[test]
fn sparse_images_keep_only_lit_pixels() {
    let set = Dataset {
        images: vec![0, 255, 0, 51, 0, 0, 0, 0, 102, 0, 0, 0],
        labels: vec![0; 3],
        rows: 2,
        cols: 2,
    };
    let images = SparseImages::new(&set);
    assert_eq!(images.len(), 3);
    assert_eq!(images.pixels(), 4);
    assert_eq!(images.image(0), (&[1u32, 3][..], &[1.0f32, 0.2][..]));
    assert_eq!(images.image(1), (&[][..], &[][..]));
    assert_eq!(images.image(2), (&[0u32][..], &[0.4f32][..]));
    assert!((images.density() - 3.0 / 12.0).abs() < 1e-12);
}

/// An all-dark batch has no entries at all: the gradient must still be written (as 0), not
/// left as whatever the buffer held.
#[test]
fn sparse_weights_gradient_of_dark_images_is_zero() {
    let set = Dataset {
        images: vec![0; 2 * 9],
        labels: vec![0; 2],
        rows: 3,
        cols: 3,
    };
    let images = SparseImages::new(&set);
    let delta = Array2::from_elem((2, 5), 1.5f32);
    for simd in instruction_sets() {
        let mut gradient = Array2::from_elem((9, 5), f32::NAN);
        let mut by_pixel = PixelColumns::default();
        let lists = by_pixel.fill_from(&images, &[1, 0], 0..9);
        sparse_weights_gradient(simd, lists, delta.view(), 1.0, gradient.view_mut());
        assert!(gradient.iter().all(|&g| g == 0.0), "{simd}: {gradient}");
    }
}

/// The vectorised sigmoid against the reference's, and both against float64, over the whole
/// range a pre-activation can take (tails included, where exp overflows or the result
/// underflows), on a length that leaves a partial vector.
#[test]
fn sigmoid_forward_vectorised_should_match_reference() {
    let count = 20_003;
    let sums: Vec<f32> = (0..count)
        .map(|i| -100.0 + 200.0 * i as f32 / (count - 1) as f32)
        .collect();
    let mut reference = Array2::from_shape_vec((1, count), sums.clone()).expect("one row");
    sigmoid_forward(reference.view_mut());
    let exact: Vec<f32> = sums
        .iter()
        .map(|&s| (1.0 / (1.0 + (-f64::from(s)).exp())) as f32)
        .collect();
    // A few ulp of the result (f32 epsilon is 1.2e-7), and nothing absolute beyond the
    // smallest normal floats where exp's argument is clamped.
    let ulps = Tolerance::new(1e-37, 5e-7);
    let mut results = vec![("reference".to_string(), reference)];
    for simd in instruction_sets() {
        let mut vectorised = Array2::from_shape_vec((1, count), sums.clone()).expect("one row");
        sigmoid_forward_vectorised(simd, vectorised.view_mut());
        results.push((format!("vectorised {simd}"), vectorised));
    }
    for (name, values) in &results {
        let difference =
            Difference::between(values.as_slice().expect("standard layout"), &exact, ulps);
        println!("sigmoid {name} vs float64: {difference}");
        assert!(difference.passes(), "sigmoid {name}: {difference}");
    }
}

/// The fused first-layer descent step against the reference's gradient then update.
#[test]
fn sparse_gradient_descent_should_match_reference() {
    let mut rng = Rng::new(13);
    let mut by_pixel = PixelColumns::default();
    for (count, pixels, outputs) in SHAPES {
        let Case {
            set,
            images,
            batch,
            delta,
        } = Case::new(count, pixels, outputs, &mut rng);
        let weights = random_matrix(pixels, outputs, &mut rng);
        let (scale, rate) = (1.0 / batch.len() as f32, 0.3);

        let gradient = reference_gradient(&set, &batch, &delta, scale);
        let mut reference = weights.clone();
        gradient_descent_update(reference.view_mut(), gradient.view(), rate);
        for simd in instruction_sets() {
            let mut descended = weights.clone();
            let lists = by_pixel.fill_from(&images, &batch, 0..pixels);
            sparse_gradient_descent(
                simd,
                lists,
                delta.view(),
                (scale, rate),
                descended.view_mut(),
            );
            assert_matrix_passes(
                &format!("W1 after descent {count}x{pixels}x{outputs} {simd}"),
                &descended,
                &reference,
                SUMMATION_ORDER,
            );

            // Two blocks of W1's columns, cut on a cache line, descended apart: the same bits.
            let cut = outputs / 2 / UNIT_LINE * UNIT_LINE;
            let mut columns = weights.clone();
            let (left, right) = columns.view_mut().split_at(Axis(1), cut);
            for (units, mut part) in [(0..cut, left), (cut..outputs, right)] {
                let mut block = part.to_owned();
                let (d, rates) = (delta.view(), (scale, rate));
                sparse_gradient_descent_columns(simd, lists, d, units, rates, block.view_mut());
                part.assign(&block);
            }
            assert_eq!(
                columns, descended,
                "W1 after descent in two parts of its columns"
            );
        }
    }
}

/// Adam's vectorised step against the reference's, bit for bit, over a few steps (the bias
/// corrections change with t) on a length that leaves a partial vector, with gradients from
/// tiny to large, and a third of the moments starting just above the smallest normal float
/// with a zero gradient, so that they decay below it and are flushed to 0.
#[test]
fn adam_update_vectorised_should_match_reference_bit_for_bit() {
    let mut rng = Rng::new(37);
    let len = 1_000 * 3 + 7;
    let start = random_matrix(1, len, &mut rng);
    for simd in instruction_sets() {
        let (mut reference, mut vectorised) = (start.clone(), start.clone());
        let decaying = |i: usize| i.is_multiple_of(3);
        let tiny = |(_, i): (usize, usize)| if decaying(i) { 1.4e-38 } else { 0.0 };
        let start_moment = || Array2::<f32>::from_shape_fn((1, len), tiny);
        let (mut m_reference, mut v_reference) = (start_moment(), start_moment());
        let (mut m_vectorised, mut v_vectorised) = (start_moment(), start_moment());
        for t in 1..=4 {
            let scale = 10f32.powi(t as i32 * 2 - 5);
            let mut gradient = random_matrix(1, len, &mut rng).mapv(|g| g * scale);
            for (i, g) in gradient.iter_mut().enumerate() {
                if decaying(i) {
                    *g = 0.0;
                }
            }
            let step = AdamStep {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
                t,
            };
            let reference_state = (m_reference.view_mut(), v_reference.view_mut());
            adam_update(
                reference.view_mut(),
                reference_state.0,
                reference_state.1,
                gradient.view(),
                1e-3,
                step,
            );
            let tensors = (
                vectorised.as_slice_mut().expect("one row"),
                m_vectorised.as_slice_mut().expect("one row"),
                v_vectorised.as_slice_mut().expect("one row"),
            );
            let gradient = gradient.as_slice().expect("one row");
            adam_update_vectorised(simd, tensors, gradient, 1e-3, step);
        }
        let bits = |a: &Array2<f32>| a.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
        let differing = (bits(&reference).iter().zip(bits(&vectorised)))
            .filter(|(a, b)| *a != b)
            .count();
        println!("adam {simd}: {differing} of {len} parameters differ in any bit");
        let flushed = m_reference.iter().step_by(3).all(|&m| m == 0.0);
        assert!(flushed, "the decaying first moments end flushed to 0");
        assert_eq!(bits(&vectorised), bits(&reference), "parameters, {simd}");
        assert_eq!(
            bits(&m_vectorised),
            bits(&m_reference),
            "first moments, {simd}"
        );
        assert_eq!(
            bits(&v_vectorised),
            bits(&v_reference),
            "second moments, {simd}"
        );
    }
}
