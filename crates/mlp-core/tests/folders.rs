//! The picture-folder reader: MNIST written by this test as PNG folders reads back as the very
//! bytes and labels the IDX loader gives, in the same order; larger pictures are brought to
//! the side by area averaging; `PictureStyle::Digit` prepares a photo as `predict` does; and a
//! table of bad folders and pictures, each an error naming the place, none a panic.

mod common;
#[path = "common/export.rs"]
mod export;

use std::fs;
use std::path::Path;

use common::{Scratch, mnist_dir};
use export::write_png_folders;
use mlp_core::data::{self, DataFormat, PictureOptions, PictureStyle, input_pixels, load_folders};

fn digit_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

#[test]
fn mnist_written_as_png_folders_reads_back_the_same_bytes_in_the_same_order() {
    let mnist = data::load(&mnist_dir(), DataFormat::Mnist).unwrap();
    let (train, test) = (mnist.test.first(3000), mnist.train.first(1000));
    let scratch = Scratch::new("folders-round-trip");
    write_png_folders(&scratch.path().join("train"), &train, &digit_names());
    write_png_folders(&scratch.path().join("test"), &test, &digit_names());
    let read = load_folders(scratch.path(), PictureOptions::default()).unwrap();
    assert_eq!(read.class_names, Some(digit_names()));
    assert_eq!(read.train, train);
    assert_eq!(read.test, test);
    assert!(read.notes.is_empty(), "{:?}", read.notes);
    // Without train/ and test/, the folder's classes are the training set and nothing tests.
    let read = load_folders(&scratch.path().join("test"), PictureOptions::default()).unwrap();
    assert_eq!(read.train, test);
    assert!(read.test.is_empty());
}

#[test]
fn a_larger_picture_is_area_averaged_to_the_side() {
    let test = data::load(&mnist_dir(), DataFormat::Mnist).unwrap().test;
    let scratch = Scratch::new("folders-resize");
    let pixels = &test.images[..784];
    // Each pixel as a 2 x 2 block: averaging the blocks gives the digit back exactly.
    let big = image::GrayImage::from_fn(56, 56, |x, y| {
        image::Luma([pixels[(y / 2 * 28 + x / 2) as usize]])
    });
    let path = scratch.path().join("big.png");
    big.save(&path).unwrap();
    assert_eq!(
        input_pixels(&path, PictureOptions::default()).unwrap(),
        pixels
    );
    let options = PictureOptions {
        side: 14,
        ..PictureOptions::default()
    };
    assert_eq!(input_pixels(&path, options).unwrap().len(), 14 * 14);
}

#[test]
fn the_digit_style_prepares_a_photo_as_predict_does() {
    let scratch = Scratch::new("folders-digit");
    // A dark bar on light paper, off centre.
    let photo = image::GrayImage::from_fn(90, 120, |x, y| {
        let ink = (20..35).contains(&x) && (30..100).contains(&y);
        image::Luma([if ink { 30 } else { 230 }])
    });
    let path = scratch.path().join("photo.jpg");
    photo.save(&path).unwrap();
    let options = PictureOptions {
        style: PictureStyle::Digit,
        ..PictureOptions::default()
    };
    let prepared = input_pixels(&path, options).unwrap();
    assert_eq!(prepared, mlp_core::digit::load_digit(&path).unwrap());
    // Bright ink on black, centred: the middle column is lit, the corners are not.
    assert!(
        prepared[14 * 28 + 14] > 200,
        "{:?}",
        &prepared[14 * 28..15 * 28]
    );
    assert_eq!(prepared[0], 0);
    let options = PictureOptions {
        side: 32,
        ..options
    };
    assert_eq!(input_pixels(&path, options).unwrap().len(), 32 * 32);
}

/// A PNG of `width` x `height` as its header says, with a valid header checksum and a body of
/// one pixel: a picture that lies about its size.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::GrayImage::new(1, 1)
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    // IHDR: length (4), type (4) at byte 8, width and height at 16 and 20, CRC at 29.
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    bytes
}

fn good_png() -> Vec<u8> {
    let mut bytes = Vec::new();
    image::GrayImage::from_pixel(4, 4, image::Luma([200]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// Writes `files` (path under `root`, bytes; a path ending in `/` is a folder) into `root`.
fn lay_out(root: &Path, files: &[(String, Vec<u8>)]) {
    fs::create_dir_all(root).unwrap();
    for (name, bytes) in files {
        let path = root.join(name);
        if name.ends_with('/') {
            fs::create_dir_all(&path).unwrap();
            continue;
        }
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, bytes).unwrap();
    }
}

#[test]
fn bad_folders_and_pictures_are_refused_naming_the_place() {
    let scratch = Scratch::new("folders-bad");
    let good = || ("a/good.png".to_string(), good_png());
    let mut truncated = good_png();
    truncated.truncate(truncated.len() / 2);
    let many: Vec<(String, Vec<u8>)> = (0..257)
        .map(|i| (format!("c{i:03}/x.png"), good_png()))
        .collect();
    let blank = PictureOptions {
        style: PictureStyle::Digit,
        ..PictureOptions::default()
    };
    type Case = (
        &'static str,
        Vec<(String, Vec<u8>)>,
        PictureOptions,
        &'static str,
        &'static str,
    );
    let plain = PictureOptions::default();
    let cases: Vec<Case> = vec![
        (
            "an empty folder",
            vec![],
            plain,
            "",
            "holds no class folders",
        ),
        (
            "files but no class folders",
            vec![("x.png".into(), good_png())],
            plain,
            "",
            "holds no class folders",
        ),
        (
            "class folders with no pictures",
            vec![("a/notes.txt".into(), b"hello".to_vec())],
            plain,
            "",
            "holds no PNG or JPEG picture",
        ),
        (
            "a corrupt PNG",
            vec![
                good(),
                ("a/bad.png".into(), b"\x89PNG\r\n\x1a\nnonsense".to_vec()),
            ],
            plain,
            "a/bad.png",
            "cannot use the picture",
        ),
        (
            "a truncated PNG",
            vec![good(), ("b/cut.png".into(), truncated)],
            plain,
            "b/cut.png",
            "cannot use the picture",
        ),
        (
            "text named .jpg",
            vec![good(), ("a/text.jpg".into(), b"just words".to_vec())],
            plain,
            "a/text.jpg",
            "cannot use the picture",
        ),
        (
            "an empty picture file",
            vec![good(), ("a/empty.png".into(), Vec::new())],
            plain,
            "a/empty.png",
            "cannot use the picture",
        ),
        (
            "a picture claiming 10 gigapixels",
            vec![
                good(),
                ("a/huge.png".into(), png_claiming(100_000, 100_000)),
            ],
            plain,
            "a/huge.png",
            "100000 x 100000 pixels, more than the 16000000",
        ),
        (
            "a test class that training lacks",
            vec![
                ("train/a/x.png".into(), good_png()),
                ("test/b/x.png".into(), good_png()),
            ],
            plain,
            "test/b",
            "is a class that",
        ),
        (
            "257 classes",
            many,
            plain,
            "",
            "holds 257 class folders; at most 256",
        ),
        (
            "a side of 0",
            vec![good()],
            PictureOptions { side: 0, ..plain },
            "",
            "the picture side 0 is outside 1..512",
        ),
        (
            "a side of 1000",
            vec![good()],
            PictureOptions {
                side: 1000,
                ..plain
            },
            "",
            "the picture side 1000 is outside 1..512",
        ),
        (
            "a blank page in the digit style",
            vec![good()],
            blank,
            "a/good.png",
            "has no digit in it",
        ),
    ];
    for (i, (what, files, options, place, expected)) in cases.into_iter().enumerate() {
        let root = scratch.path().join(format!("case{i}"));
        lay_out(&root, &files);
        let error = load_folders(&root, options).expect_err(what).to_string();
        let place = root.join(place).display().to_string();
        assert!(
            error.contains(place.trim_end_matches('/')) && error.contains(expected),
            "{what}: {error}"
        );
        println!("{what}: {error}");
    }
    let missing = scratch.path().join("no-such-folder");
    let error = load_folders(&missing, plain).unwrap_err().to_string();
    assert!(error.contains("no-such-folder: is not a folder"), "{error}");
}

#[test]
fn a_fifo_among_the_pictures_is_refused_and_skip_bad_counts_what_it_leaves_out() {
    let scratch = Scratch::new("folders-skip");
    let root = scratch.path();
    lay_out(
        root,
        &[
            ("a/1.png".into(), good_png()),
            ("a/2.png".into(), b"not a picture".to_vec()),
            ("b/3.png".into(), good_png()),
            ("b/readme.txt".into(), b"notes".to_vec()),
        ],
    );
    let fifo = root.join("b/pipe.png");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    let has_fifo = made.is_ok_and(|s| s.success());
    let error = load_folders(root, PictureOptions::default())
        .unwrap_err()
        .to_string();
    assert!(error.contains("a/2.png"), "{error}");
    let options = PictureOptions {
        skip_bad: true,
        ..PictureOptions::default()
    };
    let read = load_folders(root, options).unwrap();
    assert_eq!(read.train.labels, vec![0, 1]);
    let skipped = if has_fifo { 2 } else { 1 };
    let notes = read.notes.join("\n");
    assert!(
        notes.contains(&format!(
            "skipped {skipped} of the {} pictures",
            2 + skipped
        )),
        "{notes}"
    );
    assert!(
        notes.contains("left out 1 entries") && notes.contains("readme.txt"),
        "{notes}"
    );
    if has_fifo {
        assert!(
            notes.contains("pipe.png") && notes.contains("not a regular file"),
            "{notes}"
        );
    }
}
