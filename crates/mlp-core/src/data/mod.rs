//! MNIST (or any data set in MNIST's IDX layout) from a data directory: every file is checked
//! before anything reads it, and a missing set can be downloaded and verified.

mod download;
mod error;
mod idx;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use download::{MIRRORS, download_missing};
pub use error::DataError;
pub use idx::{IMAGES_MAGIC, LABELS_MAGIC, parse_images, parse_labels};

/// MNIST's image side: every loaded image must be 28 x 28.
pub const IMAGE_SIDE: usize = 28;

/// One of the four canonical files, with the SHA-256 of its decompressed bytes
/// (`shared/data/mnist/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdxFile {
    pub name: &'static str,
    pub sha256: &'static str,
}

pub const TRAIN_IMAGES: IdxFile = IdxFile {
    name: "train-images-idx3-ubyte",
    sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
};
pub const TRAIN_LABELS: IdxFile = IdxFile {
    name: "train-labels-idx1-ubyte",
    sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
};
pub const TEST_IMAGES: IdxFile = IdxFile {
    name: "t10k-images-idx3-ubyte",
    sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
};
pub const TEST_LABELS: IdxFile = IdxFile {
    name: "t10k-labels-idx1-ubyte",
    sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
};
pub const MNIST_FILES: [IdxFile; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// Which files a directory must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataFormat {
    /// MNIST itself: the canonical files, each checked against its SHA-256.
    #[default]
    Mnist,
    /// Any data set with MNIST's file names and IDX layout (Fashion-MNIST, say): no hashes,
    /// counts from the headers.
    AnyIdx,
}

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

    /// The first `count` images (all of them if there are fewer).
    pub fn first(&self, count: usize) -> Dataset {
        let count = count.min(self.len());
        Dataset {
            images: self.images[..count * self.pixels()].to_vec(),
            labels: self.labels[..count].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// The training and the test (validation) set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
}

/// Where a file of `dir` lies: the raw file if there is one, else its `.gz`.
pub fn locate(dir: &Path, file: IdxFile) -> Option<PathBuf> {
    let raw = dir.join(file.name);
    let gz = dir.join(format!("{}.gz", file.name));
    [raw, gz].into_iter().find(|p| p.is_file())
}

/// The canonical files that `dir` lacks in both forms.
pub fn missing_files(dir: &Path) -> Vec<IdxFile> {
    MNIST_FILES
        .into_iter()
        .filter(|f| locate(dir, *f).is_none())
        .collect()
}

/// Reads a file and decompresses it when it starts with gzip's magic bytes, whatever its name.
pub fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    gunzip_if_gzip(path, bytes)
}

pub(crate) fn gunzip_if_gzip(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>, DataError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut decoded = Vec::with_capacity(bytes.len() * 4);
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut decoded)
        .map_err(|source| DataError::Gzip {
            path: path.to_path_buf(),
            source,
        })?;
    Ok(decoded)
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads one file (raw or gzipped) and, for MNIST, checks its decompressed SHA-256.
fn read_checked(
    dir: &Path,
    file: IdxFile,
    format: DataFormat,
) -> Result<(PathBuf, Vec<u8>), DataError> {
    let path = locate(dir, file).ok_or_else(|| DataError::Missing {
        dir: dir.to_path_buf(),
        missing: missing_files(dir)
            .iter()
            .map(|f| f.name.to_string())
            .collect(),
    })?;
    let bytes = read_maybe_gzip(&path)?;
    if format == DataFormat::Mnist {
        let found = sha256_hex(&bytes);
        if found != file.sha256 {
            return Err(DataError::Checksum {
                path,
                expected: file.sha256.to_string(),
                found,
            });
        }
    }
    Ok((path, bytes))
}

/// One set: its images and labels file, checked and parsed, with counts that agree.
fn load_set(
    dir: &Path,
    images: IdxFile,
    labels: IdxFile,
    format: DataFormat,
) -> Result<Dataset, DataError> {
    let (images_path, image_bytes) = read_checked(dir, images, format)?;
    let (labels_path, label_bytes) = read_checked(dir, labels, format)?;
    let set = Dataset {
        labels: parse_labels(&labels_path, &label_bytes)?.to_vec(),
        ..parse_images(&images_path, &image_bytes)?
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
    Ok(set)
}

/// Loads the training and test sets from `dir`, checking every file first.
///
/// For MNIST the bytes that reach the network are read by the `mnist` crate when all four raw
/// files are present (the crate panics on bad files, so it only ever sees files checked
/// here); gzipped files are decoded by this module's own IDX parser.
pub fn load(dir: &Path, format: DataFormat) -> Result<Mnist, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            missing: MNIST_FILES.iter().map(|f| f.name.to_string()).collect(),
        });
    }
    let checked = Mnist {
        train: load_set(dir, TRAIN_IMAGES, TRAIN_LABELS, format)?,
        test: load_set(dir, TEST_IMAGES, TEST_LABELS, format)?,
    };
    let all_raw = MNIST_FILES.iter().all(|f| dir.join(f.name).is_file());
    match (format, all_raw, dir.to_str()) {
        (DataFormat::Mnist, true, Some(base)) => Ok(read_with_mnist_crate(base, checked)),
        _ => Ok(checked),
    }
}

/// Reads the four raw MNIST files, already checked by [`load`], with the `mnist` crate.
fn read_with_mnist_crate(base: &str, checked: Mnist) -> Mnist {
    let read = mnist::MnistBuilder::new()
        .base_path(base)
        .label_format_digit()
        .training_set_length(checked.train.len() as u32)
        .validation_set_length(0)
        .test_set_length(checked.test.len() as u32)
        .finalize();
    let side = |set: &Dataset| (set.rows, set.cols);
    Mnist {
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
    }
}
