//! MNIST (or any data set in MNIST's IDX layout) from a data directory: every file is checked
//! before anything reads it, and a missing set can be downloaded and verified.

mod download;
mod error;
mod idx;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use download::{FASHION_MNIST_MIRRORS, KMNIST_MIRRORS, MIRRORS, download_missing};
pub use error::DataError;
pub use idx::{
    IMAGES_MAGIC, IdxBytes, IdxKind, LABELS_MAGIC, decode_idx, parse_images, parse_labels, read_idx,
};

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

/// Which files a directory must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataFormat {
    /// MNIST itself: the canonical files, each checked against its SHA-256.
    #[default]
    Mnist,
    /// Fashion-MNIST (Zalando): MNIST's file names and shapes, ten kinds of clothing, each
    /// file checked against its SHA-256.
    FashionMnist,
    /// Kuzushiji-MNIST (Clanuwat et al. 2018): MNIST's file names and shapes, ten cursive
    /// hiragana. Its publishers, torchvision and TensorFlow Datasets give the SHA-256 and size
    /// of the .gz files, so those are what is checked.
    Kmnist,
    /// Any data set with MNIST's file names and IDX layout: no hashes, image sizes and counts
    /// from the headers.
    AnyIdx,
}

/// What a known data set's file is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The SHA-256 of the decompressed bytes: the file may be raw or gzipped.
    Content(&'static str),
    /// The SHA-256 and size of the .gz file as published: the file must be the .gz.
    Gzip { sha256: &'static str, bytes: u64 },
}

/// Kuzushiji-MNIST's .gz files: (name, SHA-256, bytes), as torchvision and TensorFlow Datasets
/// list them.
const KMNIST_GZIP: [(&str, &str, u64); 4] = [
    (
        "train-images-idx3-ubyte",
        "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4",
        18_165_135,
    ),
    (
        "train-labels-idx1-ubyte",
        "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17",
        29_497,
    ),
    (
        "t10k-images-idx3-ubyte",
        "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5",
        3_041_136,
    ),
    (
        "t10k-labels-idx1-ubyte",
        "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c",
        5_120,
    ),
];

/// The SHA-256 of the decompressed Fashion-MNIST files, as Debian's `dataset-fashion-mnist`
/// package ships them (the .gz bytes differ between mirrors; the content does not).
const FASHION_MNIST_SHA256: [(&str, &str); 4] = [
    (
        "train-images-idx3-ubyte",
        "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    ),
    (
        "train-labels-idx1-ubyte",
        "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    ),
    (
        "t10k-images-idx3-ubyte",
        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    ),
    (
        "t10k-labels-idx1-ubyte",
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    ),
];

impl DataFormat {
    /// What `file` is checked against, for a known data set.
    pub fn checksum(self, file: IdxFile) -> Option<Checksum> {
        match self {
            Self::Mnist => Some(Checksum::Content(file.sha256)),
            Self::FashionMnist => FASHION_MNIST_SHA256
                .iter()
                .find(|(name, _)| *name == file.name)
                .map(|(_, hash)| Checksum::Content(hash)),
            Self::Kmnist => KMNIST_GZIP
                .iter()
                .find(|(name, ..)| *name == file.name)
                .map(|&(_, sha256, bytes)| Checksum::Gzip { sha256, bytes }),
            Self::AnyIdx => None,
        }
    }

    /// Where a known data set is downloaded from, tried in order; each serves
    /// `<mirror><name>.gz`.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &download::MIRRORS,
            Self::FashionMnist => &download::FASHION_MNIST_MIRRORS,
            Self::Kmnist => &download::KMNIST_MIRRORS,
            Self::AnyIdx => &[],
        }
    }

    /// The data set's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST",
            Self::FashionMnist => "Fashion-MNIST",
            Self::Kmnist => "Kuzushiji-MNIST",
            Self::AnyIdx => "the IDX files",
        }
    }

    /// What each class is, where the data set names them (MNIST's are the digits).
    pub fn class_names(self) -> Option<&'static [&'static str]> {
        match self {
            Self::FashionMnist => Some(&[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ]),
            // The hiragana's romanisations, as the data set's publishers name the classes.
            Self::Kmnist => Some(&["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"]),
            Self::Mnist | Self::AnyIdx => None,
        }
    }
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

/// The files of `dir` that are there in both forms: the raw file that is read, and the `.gz`
/// beside it that is not.
pub fn shadowed_files(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    MNIST_FILES
        .iter()
        .map(|f| (dir.join(f.name), dir.join(format!("{}.gz", f.name))))
        .filter(|(raw, gz)| raw.is_file() && gz.is_file())
        .collect()
}

/// The canonical files that `dir` lacks in both forms.
pub fn missing_files(dir: &Path) -> Vec<IdxFile> {
    MNIST_FILES
        .into_iter()
        .filter(|f| locate(dir, *f).is_none())
        .collect()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads one file (raw or gzipped) and, for a known data set, checks it against its
/// checksum.
fn read_checked(
    dir: &Path,
    file: IdxFile,
    format: DataFormat,
) -> Result<(PathBuf, IdxBytes), DataError> {
    let path = locate(dir, file).ok_or_else(|| DataError::Missing {
        dir: dir.to_path_buf(),
        missing: missing_files(dir)
            .iter()
            .map(|f| f.name.to_string())
            .collect(),
    })?;
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
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.to_path_buf(),
            missing: MNIST_FILES.iter().map(|f| f.name.to_string()).collect(),
        });
    }
    let (train, train_raw) = load_set(dir, TRAIN_IMAGES, TRAIN_LABELS, format)?;
    let (test, test_raw) = load_set(dir, TEST_IMAGES, TEST_LABELS, format)?;
    if (train.rows, train.cols) != (test.rows, test.cols) {
        let path = |file: IdxFile| locate(dir, file).unwrap_or_else(|| dir.join(file.name));
        return Err(DataError::SizeMismatch {
            train: path(TRAIN_IMAGES),
            train_size: (train.rows, train.cols),
            test: path(TEST_IMAGES),
            test_size: (test.rows, test.cols),
        });
    }
    let checked = Mnist { train, test };
    let all_raw = train_raw && test_raw && MNIST_FILES.iter().all(|f| dir.join(f.name).is_file());
    match (format, all_raw, dir.to_str()) {
        (DataFormat::Mnist, true, Some(base)) => read_with_mnist_crate(dir, base, checked),
        _ => Ok(checked),
    }
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
