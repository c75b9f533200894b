//! The NumPy reader: MNIST written by this test as an `.npz` (Keras' layout), as `.npy` files
//! and as float arrays reads back as the very bytes and labels the IDX loader gives; and a
//! table of bad files, each an error naming the file and the array, none a panic, none
//! allocating what its header claims.

mod common;
#[path = "common/export.rs"]
mod export;

use std::fs;
use std::time::Instant;

use common::{Scratch, mnist_dir};
use export::{npy_bytes, set_arrays, write_npz};
use mlp_core::data::{self, DataFormat, load_numpy};

#[test]
fn mnist_written_as_npz_and_npy_reads_back_the_same_bytes() {
    let mnist = data::load(&mnist_dir(), DataFormat::Mnist).unwrap();
    let scratch = Scratch::new("numpy-round-trip");
    let (x_train, y_train) = set_arrays(&mnist.train);
    let (x_test, y_test) = set_arrays(&mnist.test);
    let npz = scratch.path().join("mnist.npz");
    let arrays = [
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_test", x_test),
        ("y_test", y_test),
    ];
    write_npz(&npz, &arrays);
    let npy_dir = scratch.path().join("npy");
    fs::create_dir(&npy_dir).unwrap();
    for (name, bytes) in &arrays {
        fs::write(npy_dir.join(format!("{name}.npy")), bytes).unwrap();
    }
    for path in [&npz, &npy_dir, &scratch.path().to_path_buf()] {
        let read = load_numpy(path).unwrap();
        assert_eq!(read.train, mnist.train, "{}", path.display());
        assert_eq!(read.test, mnist.test, "{}", path.display());
        assert!(read.notes.is_empty(), "{:?}", read.notes);
    }
}

#[test]
fn float_images_in_either_range_read_back_the_same_bytes_and_say_which() {
    let test = data::load(&mnist_dir(), DataFormat::Mnist)
        .unwrap()
        .test
        .first(500);
    let scratch = Scratch::new("numpy-floats");
    let shape = [test.len(), 28, 28];
    let unit: Vec<u8> = (test.images.iter())
        .flat_map(|&b| (f32::from(b) / 255.0).to_le_bytes())
        .collect();
    let whole: Vec<u8> = (test.images.iter())
        .flat_map(|&b| f64::from(b).to_le_bytes())
        .collect();
    let labels: Vec<u8> = test
        .labels
        .iter()
        .flat_map(|&l| i64::from(l).to_le_bytes())
        .collect();
    for (descr, bytes, said) in [("<f4", unit, "in 0..1"), ("<f8", whole, "in 0..255")] {
        let path = scratch.path().join(format!("{}.npz", &descr[1..]));
        let arrays = [
            ("x_train", npy_bytes(descr, &shape, &bytes)),
            ("y_train", npy_bytes("<i8", &[test.len()], &labels)),
        ];
        write_npz(&path, &arrays);
        let read = load_numpy(&path).unwrap();
        assert_eq!(read.train, test, "{descr}");
        assert!(read.test.is_empty());
        assert_eq!(read.notes.len(), 1, "{:?}", read.notes);
        assert!(read.notes[0].contains(said), "{:?}", read.notes);
    }
}

#[test]
fn bad_numpy_files_are_refused_naming_the_file_and_the_array() {
    let scratch = Scratch::new("numpy-bad");
    let x = |n: usize| npy_bytes("|u1", &[n, 2, 2], &vec![7; n * 4]);
    let y = |n: usize| npy_bytes("|u1", &[n], &vec![1; n]);
    let mut long_header = b"\x93NUMPY\x02\x00".to_vec();
    long_header.extend(1_000_000_000u32.to_le_bytes());
    let mut short = x(3);
    short.truncate(short.len() - 1);
    let mut fortran = x(1);
    let at = (fortran.windows(5)).position(|w| w == b"False").unwrap();
    fortran[at..at + 5].copy_from_slice(b"True ");
    let floats =
        |values: &[f32]| -> Vec<u8> { values.iter().flat_map(|v| v.to_le_bytes()).collect() };
    type Case = (&'static str, Vec<(&'static str, Vec<u8>)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "no magic string",
            vec![("x_train", b"not numpy at all".to_vec()), ("y_train", y(1))],
            "array x_train: it is not a .npy array",
        ),
        (
            "a header that claims a gigabyte",
            vec![("x_train", long_header), ("y_train", y(1))],
            "array x_train: its header claims 1000000000 bytes, more than NumPy's own limit",
        ),
        (
            "a shape that claims a terabyte",
            vec![
                ("x_train", npy_bytes("|u1", &[1 << 40], &[])),
                ("y_train", y(1)),
            ],
            "array x_train: its header claims shape [1099511627776] of |u1, more than",
        ),
        (
            "data shorter than its header says",
            vec![("x_train", short), ("y_train", y(3))],
            "array x_train: its header promises 12 bytes of data",
        ),
        (
            "Fortran order",
            vec![("x_train", fortran), ("y_train", y(1))],
            "array x_train: is in Fortran order",
        ),
        (
            "complex numbers",
            vec![
                ("x_train", npy_bytes("<c8", &[1, 1, 1], &[0; 8])),
                ("y_train", y(1)),
            ],
            "array x_train: is of type <c8: arrays must be integers, float32 or float64",
        ),
        (
            "a one-dimensional image array",
            vec![
                ("x_train", npy_bytes("|u1", &[4], &[0; 4])),
                ("y_train", y(4)),
            ],
            "array x_train: has shape [4]: images must be",
        ),
        (
            "images that are not square",
            vec![
                ("x_train", npy_bytes("|u1", &[1, 10], &[0; 10])),
                ("y_train", y(1)),
            ],
            "array x_train: has shape (1, 10): 10 pixels an image is not a square",
        ),
        (
            "wide integer images",
            vec![
                ("x_train", npy_bytes("<i4", &[1, 1, 1], &[0; 4])),
                ("y_train", y(1)),
            ],
            "array x_train: is an integer array wider than uint8",
        ),
        (
            "a float image above 255",
            vec![
                ("x_train", npy_bytes("<f4", &[1, 1, 1], &floats(&[300.0]))),
                ("y_train", y(1)),
            ],
            "array x_train: holds 300: float images must lie in 0..1 or in 0..255",
        ),
        (
            "a NaN in a float image",
            vec![
                (
                    "x_train",
                    npy_bytes("<f4", &[1, 1, 1], &floats(&[f32::NAN])),
                ),
                ("y_train", y(1)),
            ],
            "array x_train: value 0 is NaN",
        ),
        (
            "float labels",
            vec![
                ("x_train", x(1)),
                ("y_train", npy_bytes("<f4", &[1], &floats(&[1.0]))),
            ],
            "array y_train: is of type float32: labels must be integers",
        ),
        (
            "one-hot labels",
            vec![
                ("x_train", x(2)),
                ("y_train", npy_bytes("|u1", &[2, 10], &[0; 20])),
            ],
            "array y_train: has shape (2, 10): labels must be class numbers",
        ),
        (
            "a label of 300",
            vec![
                ("x_train", x(1)),
                ("y_train", npy_bytes("<i8", &[1], &300i64.to_le_bytes())),
            ],
            "array y_train: label 0 is 300, outside 0..255",
        ),
        (
            "a negative label",
            vec![
                ("x_train", x(1)),
                ("y_train", npy_bytes("<i4", &[1], &(-1i32).to_le_bytes())),
            ],
            "array y_train: label 0 is -1",
        ),
        (
            "fewer labels than images",
            vec![("x_train", x(3)), ("y_train", y(2))],
            "array y_train: holds 2 labels, but x_train holds 3 images",
        ),
        (
            "no training labels",
            vec![("x_train", x(1))],
            "needs the arrays x_train and y_train (it holds x_train.npy)",
        ),
        (
            "test images without test labels",
            vec![("x_train", x(1)), ("y_train", y(1)), ("x_test", x(1))],
            "array y_test: is missing, where x_test is there",
        ),
        (
            "test images of another size",
            vec![
                ("x_train", x(1)),
                ("y_train", y(1)),
                ("x_test", npy_bytes("|u1", &[1, 3, 3], &[0; 9])),
                ("y_test", y(1)),
            ],
            "array x_test: its images are 3 x 3, but x_train's are 2 x 2",
        ),
    ];
    for (what, arrays, expected) in &cases {
        let path = scratch.path().join("bad.npz");
        write_npz(&path, arrays);
        let started = Instant::now();
        let error = load_numpy(&path).expect_err(what).to_string();
        assert!(
            error.starts_with(&path.display().to_string()) && error.contains(expected),
            "{what}: {error}"
        );
        assert!(
            started.elapsed().as_secs() < 5,
            "{what} took {:?}",
            started.elapsed()
        );
        println!("{what}: {error}");
    }
    let not_zip = scratch.path().join("not-a-zip.npz");
    fs::write(&not_zip, b"PK but not a zip").unwrap();
    let error = load_numpy(&not_zip).unwrap_err().to_string();
    assert!(error.contains("not an .npz (zip) archive"), "{error}");
    let error = load_numpy(&scratch.path().join("none"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("is neither an .npz file nor a folder"),
        "{error}"
    );
    // The same claims in a bare .npy file are refused from its header and size alone.
    let dir = scratch.path().join("npy");
    fs::create_dir(&dir).unwrap();
    fs::write(
        dir.join("x_train.npy"),
        npy_bytes("|u1", &[1 << 16, 1 << 16], &[]),
    )
    .unwrap();
    fs::write(dir.join("y_train.npy"), y(1)).unwrap();
    let error = load_numpy(&dir).unwrap_err().to_string();
    assert!(
        error.contains("x_train.npy, array x_train: its header promises 4294967296 bytes"),
        "{error}"
    );
}
