use std::path::PathBuf;

/// Everything that can be wrong with a data directory or one of its files. Each message names
/// the file or directory and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(
        "no {set} data in {dir}: missing {missing}. Put its four files (raw or .gz) there, or \
         point {hint}",
        dir = .dir.display(),
        missing = .missing.join(", "),
        hint = where_to_point(.set, *.download)
    )]
    Missing {
        dir: PathBuf,
        set: &'static str,
        missing: Vec<String>,
        /// The command that fetches this set, where one does.
        download: Option<&'static str>,
    },
    #[error("no {set} data in {}: missing {}. {hint}", dir.display(), missing.join(", "))]
    MissingUnmirrored {
        dir: PathBuf,
        set: &'static str,
        missing: Vec<String>,
        hint: String,
    },
    #[error(
        "{} holds a label 0, but EMNIST Letters labels its letters 1 to 26: this is not an EMNIST \
         Letters file (pass --any-idx to load it as it is)",
        path.display()
    )]
    LetterZero { path: PathBuf },
    #[error(
        "{}{}{}: {problem}",
        path.display(),
        if *line > 0 { format!(", line {line}") } else { String::new() },
        column.map_or(String::new(), |c| format!(", column {c}"))
    )]
    Csv {
        path: PathBuf,
        /// From 1, the header's line included; 0 for the file as a whole.
        line: usize,
        /// From 1, where one column is at fault.
        column: Option<usize>,
        problem: String,
    },
    #[error(
        "{}{}: {problem}",
        path.display(),
        array.as_ref().map_or(String::new(), |a| format!(", array {a}"))
    )]
    Numpy {
        path: PathBuf,
        /// The array at fault, where one is.
        array: Option<String>,
        problem: String,
    },
    #[error("{}: {problem}", path.display())]
    Folder { path: PathBuf, problem: String },
    #[error("cannot use the picture {}: {problem}", path.display())]
    Picture { path: PathBuf, problem: String },
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not valid gzip; delete it and download it again", path.display())]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not an IDX {kind} file: magic number {found:#010x}, expected {expected:#010x}", path.display())]
    BadMagic {
        path: PathBuf,
        kind: &'static str,
        found: u32,
        expected: u32,
    },
    #[error("{} is {found} bytes but its header promises {expected}: the file is truncated or has trailing bytes; download it again", path.display())]
    WrongLength {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error("{} holds more than the {expected} bytes its header promises: it has trailing bytes or a wrong header; download it again", path.display())]
    TrailingBytes { path: PathBuf, expected: u64 },
    #[error(
        "{}'s header promises {promised} bytes, more than the {available} bytes of memory \
         available: its header is wrong, or the data set is too large for this machine",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        promised: u64,
        available: u64,
    },
    #[error("{} holds no images: a data set needs at least one training and one test image", path.display())]
    Empty { path: PathBuf },
    #[error(
        "{} changed while it was being read (the mnist crate read other bytes than were \
         checked); run again once nothing is writing the data directory", path.display()
    )]
    Changed { path: PathBuf },
    #[error("{} holds {rows}x{cols} images: an image needs at least one pixel", path.display())]
    BadImageSize { path: PathBuf, rows: u32, cols: u32 },
    #[error(
        "{} holds {}x{} images, but {} holds {}x{}: the training and test images must be the same size",
        test.display(), test_size.0, test_size.1, train.display(), train_size.0, train_size.1
    )]
    SizeMismatch {
        train: PathBuf,
        train_size: (usize, usize),
        test: PathBuf,
        test_size: (usize, usize),
    },
    #[error("{} holds {image_count} images but {} holds {label_count} labels", images.display(), labels.display())]
    CountMismatch {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },
    #[error(
        "{} is not the {set} file it is named after: SHA-256 of its content is {found}, expected {expected}. \
         Replace it, or pass --any-idx to load another data set in the same IDX layout",
        path.display()
    )]
    Checksum {
        path: PathBuf,
        set: &'static str,
        expected: String,
        found: String,
    },
    #[error(
        "{} is read raw, but {set}'s published SHA-256 are of its .gz files: keep the file \
         gzipped (as downloaded) so that it can be checked, or pass --any-idx to load it unchecked",
        path.display()
    )]
    NeedsGzip { path: PathBuf, set: &'static str },
    #[error(
        "{} is not the {set} file it is named after: it is {found} bytes, the published one \
         {expected}. Replace it, or pass --any-idx to load another data set in the same IDX layout",
        path.display()
    )]
    GzipSize {
        path: PathBuf,
        set: &'static str,
        expected: u64,
        found: u64,
    },
    #[error(transparent)]
    Write(#[from] crate::atomic::OutputError),
    #[error("could not download {file} into {}: {}. Copy the file there by hand, or set --data-dir / MNIST_DIR", dir.display(), attempts.join("; "))]
    Download {
        file: String,
        dir: PathBuf,
        attempts: Vec<String>,
    },
}

/// The end of [`DataError::Missing`]'s message: where the data can come from.
fn where_to_point(set: &str, download: Option<&str>) -> String {
    // MNIST_DIR is where MNIST and --any-idx look by default (the set nothing downloads).
    let env = if set == "MNIST" || download.is_none() {
        " or MNIST_DIR"
    } else {
        ""
    };
    match download {
        Some(command) => format!(
            "--data-dir{env} at a directory that has them, or run `{command}` on a machine \
             with internet"
        ),
        None => format!("--data-dir{env} at a directory that has them"),
    }
}
