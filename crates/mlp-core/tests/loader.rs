//! The MNIST loader on good files (raw and gzipped, synthetic and real) and on every kind of
//! bad file: each must give an error that names the file, never a panic.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;

use common::{Scratch, mnist_dir};
use mlp_core::data::{self, DataError, DataFormat, IMAGES_MAGIC, LABELS_MAGIC, MNIST_FILES};

fn images_file(count: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [IMAGES_MAGIC, count, rows, cols] {
        bytes.extend(v.to_be_bytes());
    }
    bytes.extend((0..count * rows * cols).map(|i| (i % 251) as u8));
    bytes
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for v in [LABELS_MAGIC, labels.len() as u32] {
        bytes.extend(v.to_be_bytes());
    }
    bytes.extend(labels);
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// A small IDX set: 5 training and 3 test images of 28x28.
fn write_small_set(dir: &Path, gzipped: bool) {
    let files = [
        images_file(5, 28, 28),
        labels_file(&[0, 1, 2, 3, 9]),
        images_file(3, 28, 28),
        labels_file(&[4, 5, 6]),
    ];
    for (file, bytes) in MNIST_FILES.iter().zip(files) {
        if gzipped {
            fs::write(dir.join(format!("{}.gz", file.name)), gzip(&bytes)).unwrap();
        } else {
            fs::write(dir.join(file.name), bytes).unwrap();
        }
    }
}

fn load_any(dir: &Path) -> Result<data::Mnist, DataError> {
    data::load(dir, DataFormat::AnyIdx)
}

/// Replaces the raw file `name` of a good small set by `bytes` and returns the load error.
fn error_with(name: &str, bytes: Vec<u8>) -> String {
    let scratch = Scratch::new(&format!("bad-{name}-{}", bytes.len()));
    write_small_set(scratch.path(), false);
    fs::write(scratch.path().join(name), bytes).unwrap();
    let message = load_any(scratch.path()).unwrap_err().to_string();
    assert!(
        message.contains(name),
        "the error must name the file: {message}"
    );
    message
}

#[test]
fn raw_and_gzipped_idx_sets_load_alike_with_counts_from_headers() {
    let raw = Scratch::new("raw");
    let gz = Scratch::new("gz");
    write_small_set(raw.path(), false);
    write_small_set(gz.path(), true);
    let from_raw = load_any(raw.path()).unwrap();
    assert_eq!(from_raw, load_any(gz.path()).unwrap());
    assert_eq!((from_raw.train.len(), from_raw.test.len()), (5, 3));
    assert_eq!(from_raw.train.pixels(), 784);
    assert_eq!(from_raw.train.labels, vec![0, 1, 2, 3, 9]);
    assert_eq!(from_raw.train.images[..3], [0, 1, 2]);
}

#[test]
fn missing_directory_and_missing_file_say_what_to_supply() {
    let message = load_any(Path::new("/nonexistent/mnist"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/nonexistent/mnist") && message.contains("train-images-idx3-ubyte"),
        "{message}"
    );
    assert!(
        message.contains("--data-dir") && message.contains("MNIST_DIR"),
        "{message}"
    );

    let scratch = Scratch::new("missing-one");
    write_small_set(scratch.path(), false);
    fs::remove_file(scratch.path().join("t10k-labels-idx1-ubyte")).unwrap();
    let message = load_any(scratch.path()).unwrap_err().to_string();
    assert!(
        message.contains("missing t10k-labels-idx1-ubyte"),
        "{message}"
    );
}

#[test]
fn wrong_magic_is_reported() {
    let mut bytes = images_file(5, 28, 28);
    bytes[3] = 0x01;
    assert!(error_with("train-images-idx3-ubyte", bytes).contains("magic number 0x00000801"));
    let message = error_with("t10k-labels-idx1-ubyte", images_file(3, 28, 28));
    assert!(message.contains("not an IDX labels file"), "{message}");
}

#[test]
fn truncated_files_and_trailing_bytes_are_reported() {
    let mut bytes = images_file(5, 28, 28);
    bytes.truncate(bytes.len() - 1);
    assert!(error_with("train-images-idx3-ubyte", bytes).contains("truncated"));
    let mut bytes = labels_file(&[4, 5, 6]);
    bytes.push(7);
    assert!(
        error_with("t10k-labels-idx1-ubyte", bytes).contains("12 bytes but its header promises 11")
    );
    assert!(error_with("train-labels-idx1-ubyte", vec![0, 0, 8]).contains("3 bytes"));
}

#[test]
fn image_and_label_counts_must_agree() {
    let message = error_with("train-labels-idx1-ubyte", labels_file(&[1, 2, 3, 4]));
    assert!(
        message.contains("5 images") && message.contains("4 labels"),
        "{message}"
    );
}

#[test]
fn test_images_of_another_size_than_the_training_images_are_rejected() {
    let message = error_with("t10k-images-idx3-ubyte", images_file(3, 32, 32));
    assert!(
        message.contains("32x32") && message.contains("28x28") && message.contains("same size"),
        "{message}"
    );
    let message = error_with("t10k-images-idx3-ubyte", images_file(3, 0, 28));
    assert!(message.contains("at least one pixel"), "{message}");
}

#[test]
fn labels_beyond_nine_are_classes_of_their_own() {
    let scratch = Scratch::new("many-classes");
    write_small_set(scratch.path(), false);
    let labels = labels_file(&[0, 1, 12, 3, 25]);
    fs::write(scratch.path().join("train-labels-idx1-ubyte"), labels).unwrap();
    let loaded = load_any(scratch.path()).unwrap();
    assert_eq!(loaded.train.labels, [0, 1, 12, 3, 25]);
}

#[test]
fn gzip_garbage_is_reported() {
    let scratch = Scratch::new("gzip-garbage");
    write_small_set(scratch.path(), true);
    let mut bytes = gzip(&images_file(5, 28, 28));
    bytes.truncate(bytes.len() / 2);
    fs::write(scratch.path().join("train-images-idx3-ubyte.gz"), bytes).unwrap();
    let message = load_any(scratch.path()).unwrap_err().to_string();
    assert!(
        message.contains("train-images-idx3-ubyte.gz is not valid gzip"),
        "{message}"
    );
}

#[test]
fn files_that_are_not_mnist_fail_its_checksum_but_load_as_any_idx() {
    let scratch = Scratch::new("not-mnist");
    write_small_set(scratch.path(), false);
    let message = data::load(scratch.path(), DataFormat::Mnist)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("SHA-256") && message.contains("--any-idx"),
        "{message}"
    );
    assert!(load_any(scratch.path()).is_ok());
}

#[test]
fn real_mnist_loads_gzipped_and_raw_through_the_mnist_crate_alike() {
    let shared = mnist_dir();
    let from_gz = data::load(&shared, DataFormat::Mnist).unwrap();
    assert_eq!((from_gz.train.len(), from_gz.test.len()), (60_000, 10_000));
    assert_eq!(&from_gz.train.labels[..5], &[5, 0, 4, 1, 9]);

    let raw = Scratch::new("raw-mnist");
    for file in MNIST_FILES {
        let path = data::locate(&shared, DataFormat::Mnist, file).unwrap();
        fs::write(
            raw.path().join(file.name),
            data::read_idx(&path, file.kind).unwrap().bytes,
        )
        .unwrap();
    }
    assert_eq!(data::load(raw.path(), DataFormat::Mnist).unwrap(), from_gz);
}

#[test]
fn gzip_bytes_under_a_raw_name_load_without_the_mnist_crate() {
    // The checker reads the gzipped labels by their magic bytes; the mnist crate, which reads
    // files by name and panics on gzip, must not be handed them.
    let shared = mnist_dir();
    let from_gz = data::load(&shared, DataFormat::Mnist).unwrap();
    let mixed = Scratch::new("gzip-under-raw-name");
    for file in MNIST_FILES {
        let bytes = data::read_idx(
            &data::locate(&shared, DataFormat::Mnist, file).unwrap(),
            file.kind,
        )
        .unwrap()
        .bytes;
        let bytes = if file.name == "train-labels-idx1-ubyte" {
            gzip(&bytes)
        } else {
            bytes
        };
        fs::write(mixed.path().join(file.name), bytes).unwrap();
    }
    assert_eq!(
        data::load(mixed.path(), DataFormat::Mnist).unwrap(),
        from_gz
    );
}

#[test]
fn a_header_whose_sizes_multiply_past_u64_is_an_error() {
    // Found by the idx fuzz target: three u32 dimensions overflowed the promised length.
    let mut header = Vec::new();
    for v in [IMAGES_MAGIC, u32::MAX, u32::MAX, u32::MAX] {
        header.extend(v.to_be_bytes());
    }
    let path = Path::new("overflow-idx");
    let kind = data::IdxKind::Images;
    let err = data::decode_idx(path, &header[..], header.len() as u64, kind).unwrap_err();
    assert!(err.to_string().contains("overflow-idx"), "{err}");
}

/// Kuzushiji-MNIST's published checksums are of its .gz files: a .gz of another size or
/// content is refused naming the file and the published figure, and a raw file is refused
/// with what to do, since it cannot be checked.
#[test]
fn kmnist_files_are_checked_as_the_published_gz_files() {
    let scratch = Scratch::new("kmnist-gz");
    write_small_set(scratch.path(), true);
    let err = data::load(scratch.path(), DataFormat::Kmnist)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train-images-idx3-ubyte.gz")
            && err.contains("Kuzushiji-MNIST")
            && err.contains("the published one 18165135"),
        "{err}"
    );
    let raw = Scratch::new("kmnist-raw");
    write_small_set(raw.path(), false);
    let err = data::load(raw.path(), DataFormat::Kmnist)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("published SHA-256 are of its .gz files") && err.contains("--any-idx"),
        "{err}"
    );
    // What the names mean and where they come from.
    assert_eq!(DataFormat::Kmnist.class_names().unwrap()[3], "tsu");
    assert_eq!(DataFormat::Kmnist.mirrors(), data::KMNIST_MIRRORS);
}

/// EMNIST's files are found by their own names; a Letters label of 0 is not EMNIST's.
#[test]
fn emnist_letters_files_are_found_by_name_and_a_label_0_is_refused() {
    let scratch = Scratch::new("emnist-zero");
    let files = [
        images_file(5, 28, 28),
        labels_file(&[1, 2, 26, 3, 0]),
        images_file(3, 28, 28),
        labels_file(&[4, 5, 6]),
    ];
    for (file, bytes) in MNIST_FILES.iter().zip(files) {
        let name = DataFormat::EmnistLetters.file_name(*file);
        fs::write(scratch.path().join(name), bytes).unwrap();
    }
    let err = data::load(scratch.path(), DataFormat::EmnistLetters)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("emnist-letters-train-labels-idx1-ubyte") && err.contains("label 0"),
        "{err}"
    );
    assert_eq!(
        DataFormat::EmnistBalanced.file_name(MNIST_FILES[2]),
        "emnist-balanced-test-images-idx3-ubyte"
    );
}
