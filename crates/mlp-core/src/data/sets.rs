//! The data sets the loader knows: which files each has, what they are checked against,
//! where they are downloaded from, and what their classes are called.

use super::{IdxFile, PictureOptions, download};

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
    /// EMNIST Letters (Cohen et al. 2017): 26 letters, upper and lower case together, as
    /// `emnist-letters-*` files. NIST publishes one zip of every split, whose MD5 torchvision
    /// lists, and no checksum of the files in it: a download is checked by the zip's MD5,
    /// files already there are not checked. The images are stored transposed and are turned
    /// back on load, and the labels 1..26 become 0..25.
    EmnistLetters,
    /// EMNIST Balanced: 47 classes (the digits, the capitals, and the 11 lower-case letters
    /// that differ from their capitals), as `emnist-balanced-*` files, loaded as Letters is.
    EmnistBalanced,
    /// Any data set with MNIST's file names and IDX layout: no hashes, image sizes and counts
    /// from the headers.
    AnyIdx,
    /// `train.csv` and `test.csv` in Kaggle's Digit Recognizer layout (`super::read_csv`):
    /// image sizes and classes from the files, as for `AnyIdx`.
    Csv,
    /// NumPy arrays: an `.npz` with `x_train`, `y_train`, `x_test`, `y_test` (Keras'
    /// `mnist.npz`), or those as `.npy` files (`super::load_numpy`).
    Numpy,
    /// Pictures in a folder per class (`super::load_folders`), read as the options say.
    Folders(PictureOptions),
}

/// Where NIST publishes EMNIST, one zip of every split (its MD5 as torchvision lists it).
pub const EMNIST_ZIP: &str = "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip";
pub const EMNIST_ZIP_MD5: &str = "58c8d27c78d21e728a6bc7b3cc06412e";

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
            Self::EmnistLetters
            | Self::EmnistBalanced
            | Self::AnyIdx
            | Self::Csv
            | Self::Numpy
            | Self::Folders(_) => None,
        }
    }

    /// The name `file` has in this data set's directory: MNIST's, or EMNIST's
    /// `emnist-<split>-train-images-idx3-ubyte` and `-test-`.
    pub fn file_name(self, file: IdxFile) -> String {
        match self.emnist_split() {
            Some(split) => format!("emnist-{split}-{}", file.name.replace("t10k", "test")),
            None => file.name.to_string(),
        }
    }

    /// EMNIST's split name, for an EMNIST set.
    pub fn emnist_split(self) -> Option<&'static str> {
        match self {
            Self::EmnistLetters => Some("letters"),
            Self::EmnistBalanced => Some("balanced"),
            _ => None,
        }
    }

    /// Whether missing files can be fetched: from the mirrors, or for EMNIST from NIST's zip.
    pub fn downloadable(self) -> bool {
        !self.mirrors().is_empty() || self.emnist_split().is_some()
    }

    /// What to do where the files are missing and cannot be fetched, for messages.
    pub fn where_to_get(self) -> Option<String> {
        self.emnist_split().map(|split| {
            format!(
                "EMNIST is published as one zip of every split, {EMNIST_ZIP} (535 MB, MD5 \
                 {EMNIST_ZIP_MD5}), which `mlp-cli download --dataset emnist-{split}` fetches \
                 and checks; or put its gzip/emnist-{split}-*.gz files in the data directory"
            )
        })
    }

    /// Where a known data set is downloaded from, tried in order; each serves
    /// `<mirror><name>.gz`.
    pub fn mirrors(self) -> &'static [&'static str] {
        match self {
            Self::Mnist => &download::MIRRORS,
            Self::FashionMnist => &download::FASHION_MNIST_MIRRORS,
            Self::Kmnist => &download::KMNIST_MIRRORS,
            Self::EmnistLetters
            | Self::EmnistBalanced
            | Self::AnyIdx
            | Self::Csv
            | Self::Numpy
            | Self::Folders(_) => &[],
        }
    }

    /// The command that downloads this data set, for messages.
    pub fn download_command(self) -> Option<&'static str> {
        match self {
            Self::Mnist => Some("mlp-cli download"),
            Self::FashionMnist => Some("mlp-cli download --dataset fashion-mnist"),
            Self::Kmnist => Some("mlp-cli download --dataset kmnist"),
            Self::EmnistLetters => Some("mlp-cli download --dataset emnist-letters"),
            Self::EmnistBalanced => Some("mlp-cli download --dataset emnist-balanced"),
            Self::AnyIdx | Self::Csv | Self::Numpy | Self::Folders(_) => None,
        }
    }

    /// Whether the image size and the classes come from the files rather than the data set.
    pub fn shape_from_files(self) -> bool {
        matches!(
            self,
            Self::AnyIdx | Self::Csv | Self::Numpy | Self::Folders(_)
        )
    }

    /// The data set's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mnist => "MNIST",
            Self::FashionMnist => "Fashion-MNIST",
            Self::Kmnist => "Kuzushiji-MNIST",
            Self::EmnistLetters => "EMNIST Letters",
            Self::EmnistBalanced => "EMNIST Balanced",
            Self::AnyIdx => "the IDX files",
            Self::Csv => "CSV",
            Self::Numpy => "NumPy",
            Self::Folders(_) => "the picture folders",
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
            Self::EmnistLetters => Some(&LETTERS),
            Self::EmnistBalanced => Some(&BALANCED),
            Self::Mnist | Self::AnyIdx | Self::Csv | Self::Numpy | Self::Folders(_) => None,
        }
    }
}

/// EMNIST Letters' classes, upper and lower case merged.
const LETTERS: [&str; 26] = [
    "A a", "B b", "C c", "D d", "E e", "F f", "G g", "H h", "I i", "J j", "K k", "L l", "M m",
    "N n", "O o", "P p", "Q q", "R r", "S s", "T t", "U u", "V v", "W w", "X x", "Y y", "Z z",
];

/// EMNIST Balanced's classes, as `emnist-balanced-mapping.txt` orders them: the digits, the
/// capitals (those whose lower case looks alike stand for both), then the 11 lower-case
/// letters that look otherwise.
const BALANCED: [&str; 47] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G", "H", "I",
    "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z", "a", "b",
    "d", "e", "f", "g", "h", "n", "q", "r", "t",
];
