//! Pictures made from MNIST test digits, the way a user's own pictures differ from MNIST
//! (four times larger and dark on white paper, or small and off centre on a wide black
//! page, or JPEG), must be predicted as the original digits are, once `load_digit` has made
//! them MNIST-like again. The model is the seed network after four epochs on 20,000 images
//! (60 % right on these 200 digits), so that borderline digits are common and the test is
//! sharp.

mod common;

use std::path::Path;

use common::{Scratch, mnist_dir};
use image::{GrayImage, ImageFormat, Luma, imageops};
use mlp_core::backend::Backend;
use mlp_core::data::{self, DataFormat};
use mlp_core::digit::{DigitError, load_digit};
use mlp_core::train::batches;
use mlp_core::{CpuBackend, Dataset, Hyperparameters, LayerSizes, Parameters};

/// Test digits turned into pictures.
const DIGITS: usize = 200;

fn as_picture(set: &Dataset, index: usize) -> GrayImage {
    let pixels = set.pixels();
    GrayImage::from_raw(
        set.cols as u32,
        set.rows as u32,
        set.images[index * pixels..(index + 1) * pixels].to_vec(),
    )
    .unwrap()
}

/// Four times larger (each pixel a 4 x 4 block), dark ink on white paper with a wide margin.
fn large_on_white(digit: &GrayImage) -> GrayImage {
    on_white(imageops::resize(
        digit,
        112,
        112,
        imageops::FilterType::Nearest,
    ))
}

fn on_white(mut large: GrayImage) -> GrayImage {
    imageops::invert(&mut large);
    let mut page = GrayImage::from_pixel(190, 150, Luma([255]));
    imageops::overlay(&mut page, &large, 50, 20);
    page
}

/// The original size, light on black, far from the centre of a wide page.
fn off_centre(digit: &GrayImage) -> GrayImage {
    let mut page = GrayImage::new(96, 64);
    imageops::overlay(&mut page, digit, 60, 2);
    page
}

/// The predictions of `parameters` for `images`.
fn predict(parameters: &Parameters, images: Dataset) -> Vec<u32> {
    let mut backend = CpuBackend::new(
        parameters.clone(),
        &Hyperparameters::seed_with_rate(0.01),
        &images,
        &images,
    )
    .unwrap();
    backend.evaluate().unwrap().predictions
}

fn picture_set(paths: &[std::path::PathBuf]) -> Dataset {
    Dataset {
        images: paths.iter().flat_map(|p| load_digit(p).unwrap()).collect(),
        labels: vec![0; paths.len()],
        rows: 28,
        cols: 28,
    }
}

#[test]
fn pictures_of_test_digits_are_predicted_as_the_originals() {
    let mnist = data::load(&mnist_dir(), DataFormat::Mnist).unwrap();
    let train = mnist.train.first(20_000);
    let test = mnist.test.first(DIGITS);
    let mut cpu = CpuBackend::new(
        Parameters::seed_init(&LayerSizes::seed(), 0),
        &Hyperparameters::seed(),
        &train,
        &test,
    )
    .unwrap();
    for _ in 0..4 {
        for rows in batches(train.len(), 100) {
            cpu.train_batch(rows).unwrap();
        }
    }
    let parameters = cpu.parameters().unwrap();
    let evaluation = cpu.evaluate().unwrap();
    println!(
        "the model gets {:.1}% of these digits right",
        100.0 * evaluation.accuracy()
    );
    let original = evaluation.predictions;

    let scratch = Scratch::new("digit-pictures");
    for (variant, make, format) in [
        (
            "large-on-white",
            large_on_white as fn(&GrayImage) -> GrayImage,
            ImageFormat::Png,
        ),
        ("off-centre", off_centre, ImageFormat::Png),
        ("large-on-white-jpeg", large_on_white, ImageFormat::Jpeg),
    ] {
        let paths: Vec<_> = (0..DIGITS)
            .map(|i| {
                let extension = format.extensions_str()[0];
                let path = scratch.path().join(format!("{variant}-{i}.{extension}"));
                make(&as_picture(&test, i))
                    .save_with_format(&path, format)
                    .unwrap();
                path
            })
            .collect();
        let predicted = predict(&parameters, picture_set(&paths));
        let agree = predicted
            .iter()
            .zip(&original)
            .filter(|(a, b)| a == b)
            .count();
        println!("{variant}: {agree} of {DIGITS} predicted as the original");
        // Measured: 197, 197 and 194 of 200. The few that differ are digits this weak model
        // is unsure of, tipped by the re-scaling (a box one pixel smaller or larger) or by
        // JPEG's ringing.
        assert!(
            agree >= DIGITS * 95 / 100,
            "{variant}: only {agree} of {DIGITS} pictures predicted as the original digits"
        );
    }
}

#[test]
fn unreadable_and_blank_pictures_are_refused() {
    let scratch = Scratch::new("digit-bad");
    let dir: &Path = scratch.path();
    let text = dir.join("digit.png");
    std::fs::write(&text, "not a picture").unwrap();
    let err = load_digit(&text).unwrap_err();
    assert!(matches!(err, DigitError::Read { .. }), "{err}");
    assert!(err.to_string().contains("digit.png"), "{err}");

    let err = load_digit(&dir.join("absent.png")).unwrap_err();
    assert!(matches!(err, DigitError::Read { .. }), "{err}");

    let blank = dir.join("blank.png");
    GrayImage::from_pixel(64, 48, Luma([250]))
        .save(&blank)
        .unwrap();
    let err = load_digit(&blank).unwrap_err();
    assert!(matches!(err, DigitError::Empty { .. }), "{err}");
    assert!(err.to_string().contains("blank.png"), "{err}");
}
