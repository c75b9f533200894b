//! MNIST (or any data set in MNIST's IDX layout) from a data directory: every file is checked
//! before anything reads it, and a missing set can be downloaded and verified.

mod csv;
mod download;
mod emnist;
mod error;
mod folders;
mod idx;
mod numpy;
mod sets;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use csv::{CsvImages, MAX_LINE_BYTES, load_csv_dir, read_csv};
pub use download::{FASHION_MNIST_MIRRORS, KMNIST_MIRRORS, MIRRORS, download_missing};
pub use emnist::download_emnist;
pub use error::DataError;
pub use folders::{
    MAX_PICTURE_PIXELS, MAX_SIDE, PictureOptions, PictureStyle, input_pixels, load_folders,
};
pub use idx::{
    IMAGES_MAGIC, IdxBytes, IdxKind, LABELS_MAGIC, decode_idx, parse_images, parse_labels, read_idx,
};
pub use numpy::{MAX_ARRAY_BYTES, MAX_HEADER_BYTES, load_npy_dir, load_numpy, read_npz};
pub use sets::{Checksum, DataFormat, EMNIST_ZIP, EMNIST_ZIP_MD5};

/// MNIST's image side: every loaded image must be 28 x 28.
pub const IMAGE_SIDE: usize = 28;

/// One of the four canonical files, with the SHA-256 of its decompressed bytes
/// (`shared/data/mnist/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxFile {
    pub name: &'static str,
    pub kind: IdxKind,
    pub sha256: &'static str,
}

pub const TRAIN_IMAGES: IdxFile = IdxFile {
    name: "train-images-idx3-ubyte",
    kind: IdxKind::Images,
    sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
};
pub const TRAIN_LABELS: IdxFile = IdxFile {
    name: "train-labels-idx1-ubyte",
    kind: IdxKind::Labels,
    sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
};
pub const TEST_IMAGES: IdxFile = IdxFile {
    name: "t10k-images-idx3-ubyte",
    kind: IdxKind::Images,
    sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
};
pub const TEST_LABELS: IdxFile = IdxFile {
    name: "t10k-labels-idx1-ubyte",
    kind: IdxKind::Labels,
    sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
};
pub const MNIST_FILES: [IdxFile; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// Images as bytes, row-major, and their labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// count x rows x cols bytes, 0 = background.
    pub images: Vec<u8>,
    /// One digit per image.
    pub labels: Vec<u8>,
    pub rows: usize,
    pub cols: usize,
}

impl Dataset {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image (784 for MNIST).
    pub fn pixels(&self) -> usize {
        self.rows * self.cols
    }

    /// Each image's lit (non-zero) pixels, image by image: (pixel index, byte), the pixels in
    /// increasing order. What the first layer's fast kernels on both backends are built from:
    /// a 0 adds nothing to A0 W1 or to A0ᵀ D1.
    pub fn lit_pixels(&self) -> impl Iterator<Item = impl Iterator<Item = (usize, u8)> + '_> + '_ {
        self.images
            .chunks_exact(self.pixels().max(1))
            .take(self.len())
            .map(|image| {
                image
                    .iter()
                    .enumerate()
                    .filter(|&(_, &byte)| byte != 0)
                    .map(|(pixel, &byte)| (pixel, byte))
            })
    }

    /// The first `count` images (all of them if there are fewer).
    pub fn first(&self, count: usize) -> Dataset {
        self.images_in(0..count.min(self.len()))
    }

    /// The set split in two: all but the last `count` images, and the last `count` (a
    /// validation set held out of training, say). `count` must not exceed the set.
    pub fn split_last(&self, count: usize) -> (Dataset, Dataset) {
        let keep = self.len() - count;
        (self.images_in(0..keep), self.images_in(keep..self.len()))
    }

    /// Images `range` of the set, in order.
    fn images_in(&self, range: std::ops::Range<usize>) -> Dataset {
        let pixels = self.pixels();
        Dataset {
            images: self.images[range.start * pixels..range.end * pixels].to_vec(),
            labels: self.labels[range].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// The training and the test (validation) set, with what the files say of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
    /// Each class's name, by label, where the data names its classes (folders of pictures,
    /// the known sets but MNIST).
    pub class_names: Option<Vec<String>>,
    /// What the run should say of how the files were read (a float array's scale, pictures
    /// skipped), one line each.
    pub notes: Vec<String>,
}

impl Mnist {
    /// The sets of a format that names no classes and has nothing to note.
    pub fn new(train: Dataset, test: Dataset) -> Self {
        Self {
            train,
            test,
            class_names: None,
            notes: Vec::new(),
        }
    }

    /// The sets with `format`'s class names, where it names them.
    fn named(self, format: DataFormat) -> Self {
        let names = format
            .class_names()
            .map(|names| names.iter().map(|n| n.to_string()).collect());
        Self {
            class_names: names,
            ..self
        }
    }
}

/// Where a file of `dir` lies, under its name in `format`: the raw file if there is one,
/// else its `.gz`.
pub fn locate(dir: &Path, format: DataFormat, file: IdxFile) -> Option<PathBuf> {
    let name = format.file_name(file);
    let raw = dir.join(&name);
    let gz = dir.join(format!("{name}.gz"));
    [raw, gz].into_iter().find(|p| p.is_file())
}

/// The files of `dir` that are there in both forms: the raw file that is read, and the `.gz`
/// beside it that is not.
pub fn shadowed_files(dir: &Path, format: DataFormat) -> Vec<(PathBuf, PathBuf)> {
    MNIST_FILES
        .iter()
        .map(|&f| format.file_name(f))
        .map(|name| (dir.join(&name), dir.join(format!("{name}.gz"))))
        .filter(|(raw, gz)| raw.is_file() && gz.is_file())
        .collect()
}

/// The files of `format` that `dir` lacks in both forms.
pub fn missing_files(dir: &Path, format: DataFormat) -> Vec<IdxFile> {
    MNIST_FILES
        .into_iter()
        .filter(|f| locate(dir, format, *f).is_none())
        .collect()
}

/// The error for a directory that lacks `missing` of `format`'s files.
fn missing(dir: &Path, format: DataFormat, missing: &[IdxFile]) -> DataError {
    let names = missing.iter().map(|&f| format.file_name(f)).collect();
    match format.where_to_get() {
        Some(hint) => DataError::MissingUnmirrored {
            dir: dir.to_path_buf(),
            set: format.name(),
            missing: names,
            hint,
        },
        None => DataError::Missing {
            dir: dir.to_path_buf(),
            set: format.name(),
            missing: names,
            download: format.download_command(),
        },
    }
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A digest in lower-case hex.
fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads one file (raw or gzipped) and, for a known data set, checks it against its
/// checksum.
fn read_checked(
    dir: &Path,
    file: IdxFile,
    format: DataFormat,
) -> Result<(PathBuf, IdxBytes), DataError> {
    let path = locate(dir, format, file)
        .ok_or_else(|| missing(dir, format, &missing_files(dir, format)))?;
    let read = read_idx(&path, file.kind)?;
    match format.checksum(file) {
        Some(Checksum::Content(expected)) => {
            check_sha256(&path, format, &read.bytes, expected)?;
        }
        Some(Checksum::Gzip { sha256, bytes }) => {
            if !read.gzipped {
                return Err(DataError::NeedsGzip {
                    path,
                    set: format.name(),
                });
            }
            let file_bytes = std::fs::read(&path).map_err(|source| DataError::Io {
                path: path.clone(),
                source,
            })?;
            check_gzip(&path, format, &file_bytes, (sha256, bytes))?;
        }
        None => {}
    }
    Ok((path, read))
}

/// Fails unless `bytes` (the content of `path`) have the SHA-256 `expected`.
fn check_sha256(
    path: &Path,
    format: DataFormat,
    bytes: &[u8],
    expected: &str,
) -> Result<(), DataError> {
    let found = sha256_hex(bytes);
    if found != expected {
        return Err(DataError::Checksum {
            path: path.to_path_buf(),
            set: format.name(),
            expected: expected.to_string(),
            found,
        });
    }
    Ok(())
}

/// Fails unless the .gz file's bytes have the published size and SHA-256.
fn check_gzip(
    path: &Path,
    format: DataFormat,
    file_bytes: &[u8],
    (sha256, bytes): (&str, u64),
) -> Result<(), DataError> {
    if file_bytes.len() as u64 != bytes {
        return Err(DataError::GzipSize {
            path: path.to_path_buf(),
            set: format.name(),
            expected: bytes,
            found: file_bytes.len() as u64,
        });
    }
    check_sha256(path, format, file_bytes, sha256)
}

/// One set, checked and parsed: its images and labels file, with counts that agree and at
/// least one image. Also says whether both files were read raw.
fn load_set(
    dir: &Path,
    images: IdxFile,
    labels: IdxFile,
    format: DataFormat,
) -> Result<(Dataset, bool), DataError> {
    let (images_path, image_bytes) = read_checked(dir, images, format)?;
    let (labels_path, label_bytes) = read_checked(dir, labels, format)?;
    let set = Dataset {
        labels: parse_labels(&labels_path, &label_bytes.bytes)?.to_vec(),
        ..parse_images(&images_path, &image_bytes.bytes)?
    };
    let image_count = set.images.len() / set.pixels().max(1);
    if image_count != set.labels.len() {
        return Err(DataError::CountMismatch {
            images: images_path,
            image_count,
            labels: labels_path,
            label_count: set.labels.len(),
        });
    }
    if set.is_empty() {
        return Err(DataError::Empty { path: images_path });
    }
    Ok((set, !image_bytes.gzipped && !label_bytes.gzipped))
}

/// Loads the training and test sets from `dir`, checking every file first.
///
/// For MNIST the bytes that reach the network are read by the `mnist` crate when all four
/// files are raw (their bytes not gzipped, whatever their names); the crate reads the files
/// again by name and panics on a bad one, so what it returns must equal what was checked here,
/// and a file that changed in between is an error. Gzipped files are decoded by this module.
pub fn load(dir: &Path, format: DataFormat) -> Result<Mnist, DataError> {
    match format {
        DataFormat::Csv => return csv::load_csv_dir(dir),
        DataFormat::Numpy => return numpy::load_numpy(dir),
        DataFormat::Folders(options) => return folders::load_folders(dir, options),
        _ => {}
    }
    if !dir.is_dir() {
        return Err(missing(dir, format, &MNIST_FILES));
    }
    let (train, train_raw) = load_set(dir, TRAIN_IMAGES, TRAIN_LABELS, format)?;
    let (test, test_raw) = load_set(dir, TEST_IMAGES, TEST_LABELS, format)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        let path = |file: IdxFile| {
            locate(dir, format, file).unwrap_or_else(|| dir.join(format.file_name(file)))
        };
        return Err(DataError::SizeMismatch {
            train: path(TRAIN_IMAGES),
            train_size: (train.rows, train.cols),
            test: path(TEST_IMAGES),
            test_size: (test.rows, test.cols),
        });
    }
    if format.emnist_split().is_some() {
        let label_path = |file| locate(dir, format, file).unwrap_or_else(|| dir.to_path_buf());
        return Ok(Mnist::new(
            as_emnist_stores_it(train, format, label_path(TRAIN_LABELS))?,
            as_emnist_stores_it(test, format, label_path(TEST_LABELS))?,
        )
        .named(format));
    }
    let checked = Mnist::new(train, test).named(format);
    let all_raw = train_raw && test_raw && MNIST_FILES.iter().all(|f| dir.join(f.name).is_file());
    match (format, all_raw, dir.to_str()) {
        (DataFormat::Mnist, true, Some(base)) => read_with_mnist_crate(dir, base, checked),
        _ => Ok(checked),
    }
}

/// An EMNIST set as it is meant to be seen: each image transposed (EMNIST stores them column
/// by column, which reads as mirrored and turned), and for Letters each label 1..26 made
/// 0..25, so that the classes start at 0. A Letters label of 0 is refused, naming `labels`.
fn as_emnist_stores_it(
    set: Dataset,
    format: DataFormat,
    labels: PathBuf,
) -> Result<Dataset, DataError> {
    let (rows, cols) = (set.rows, set.cols);
    let mut images = vec![0; set.images.len()];
    for (stored, image) in set
        .images
        .chunks_exact(rows * cols)
        .zip(images.chunks_exact_mut(rows * cols))
    {
        for (i, &byte) in stored.iter().enumerate() {
            // Stored row r, column c is the image's column r, row c.
            let (r, c) = (i / cols, i % cols);
            image[c * rows + r] = byte;
        }
    }
    let labels = match format {
        DataFormat::EmnistLetters => set
            .labels
            .iter()
            .map(|&l| l.checked_sub(1))
            .collect::<Option<Vec<u8>>>()
            .ok_or(DataError::LetterZero { path: labels })?,
        _ => set.labels,
    };
    Ok(Dataset {
        images,
        labels,
        rows: cols,
        cols: rows,
    })
}

/// Reads the four raw MNIST files, already checked by [`load`], with the `mnist` crate, and
/// returns them if it read the bytes that were checked.
fn read_with_mnist_crate(dir: &Path, base: &str, checked: Mnist) -> Result<Mnist, DataError> {
    let read = catch_unwind(AssertUnwindSafe(|| {
        mnist::MnistBuilder::new()
            .base_path(base)
            .label_format_digit()
            .training_set_length(checked.train.len() as u32)
            .validation_set_length(0)
            .test_set_length(checked.test.len() as u32)
            .finalize()
    }))
    .map_err(|_| DataError::Changed {
        path: dir.to_path_buf(),
    })?;
    let same =
        |set: &Dataset, images: &[u8], labels: &[u8]| set.images == images && set.labels == labels;
    if !same(&checked.train, &read.trn_img, &read.trn_lbl)
        || !same(&checked.test, &read.tst_img, &read.tst_lbl)
    {
        return Err(DataError::Changed {
            path: dir.to_path_buf(),
        });
    }
    let side = |set: &Dataset| (set.rows, set.cols);
    Ok(Mnist {
        class_names: checked.class_names.clone(),
        notes: checked.notes.clone(),
        train: Dataset {
            images: read.trn_img,
            labels: read.trn_lbl,
            rows: side(&checked.train).0,
            cols: side(&checked.train).1,
        },
        test: Dataset {
            images: read.tst_img,
            labels: read.tst_lbl,
            rows: side(&checked.test).0,
            cols: side(&checked.test).1,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gz_file_passes_only_with_the_published_size_and_sha256() {
        let path = Path::new("train-images-idx3-ubyte.gz");
        let bytes = b"any bytes stand for a .gz file here";
        let hash = sha256_hex(bytes);
        let published = (hash.as_str(), bytes.len() as u64);
        assert!(check_gzip(path, DataFormat::Kmnist, bytes, published).is_ok());
        let longer = (hash.as_str(), bytes.len() as u64 + 1);
        let err = check_gzip(path, DataFormat::Kmnist, bytes, longer).unwrap_err();
        assert!(matches!(err, DataError::GzipSize { .. }), "{err}");
        let other = sha256_hex(b"other bytes");
        let err = check_gzip(path, DataFormat::Kmnist, bytes, (&other, published.1)).unwrap_err();
        assert!(err.to_string().contains(&other), "{err}");
    }
}
