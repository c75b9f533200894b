//! Images as NumPy arrays: an `.npz` archive holding `x_train`, `y_train`, `x_test` and
//! `y_test` (Keras' `mnist.npz` layout), or those four arrays as `.npy` files in a directory.
//!
//! Images are `x` of shape (N, H, W), (N, H, W, 1) or (N, P) with P a square, C order; uint8
//! (0 = background), or float32/float64 all in 0..1 (scaled by 255) or all in 0..255, rounded
//! to whole numbers: which of the two is said in the set's notes. Labels are `y` of shape (N,),
//! any integer type, each 0..255. The test pair may be absent (a run then holds training
//! images out with `--validation`).
//!
//! Each array's header is parsed by `npyz` only after its length is checked against NumPy's own
//! limit ([`MAX_HEADER_BYTES`]), and the data its header promises must be exactly what the file
//! (or the archive's entry) holds before a byte of it is read: a header claiming a terabyte is
//! refused at once, and the data is read as it arrives, never allocated on the header's word.

use std::io::{self, BufReader, Read};
use std::path::Path;

use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar};

use super::{DataError, Dataset, Mnist};

/// The longest header accepted: NumPy's own `max_header_size` (numpy ≥ 1.24 refuses longer
/// ones as unsafe to parse).
pub const MAX_HEADER_BYTES: usize = 10_000;

/// The largest array accepted, in bytes (MNIST's training images as float64 are 376 MB).
pub const MAX_ARRAY_BYTES: u64 = 16 << 30;

/// The four arrays' names, as Keras' `mnist.npz` has them.
const ARRAYS: [&str; 4] = ["x_train", "y_train", "x_test", "y_test"];

fn numpy_error(path: &Path, array: Option<&str>, problem: String) -> DataError {
    DataError::Numpy {
        path: path.to_path_buf(),
        array: array.map(str::to_string),
        problem,
    }
}

/// Loads the NumPy data at `path`: an `.npz` file, or a directory holding either exactly one
/// `.npz` or the files `x_train.npy`, `y_train.npy` (and `x_test.npy`, `y_test.npy`).
pub fn load_numpy(path: &Path) -> Result<Mnist, DataError> {
    if path.is_file() {
        return read_npz(path);
    }
    if !path.is_dir() {
        return Err(numpy_error(
            path,
            None,
            "is neither an .npz file nor a folder of .npy files".into(),
        ));
    }
    let archives = npz_files(path)?;
    match archives.as_slice() {
        [one] => read_npz(one),
        [] => load_npy_dir(path),
        more => Err(numpy_error(
            path,
            None,
            format!(
                "holds {} .npz files ({}); give the one to read as --data-dir",
                more.len(),
                names(more)
            ),
        )),
    }
}

fn names(paths: &[std::path::PathBuf]) -> String {
    let names: Vec<String> = paths
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    names.join(", ")
}

/// The `.npz` files of directory `dir`, sorted.
fn npz_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, DataError> {
    let entries = std::fs::read_dir(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| DataError::Io {
                path: dir.to_path_buf(),
                source,
            })?
            .path();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npz"))
        {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The training and test sets of an `.npz` archive (see the module's documentation).
pub fn read_npz(path: &Path) -> Result<Mnist, DataError> {
    let (file, _) =
        crate::input::open_regular(path).map_err(|e| numpy_error(path, None, e.to_string()))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| numpy_error(path, None, format!("not an .npz (zip) archive: {e}")))?;
    let mut read = |name: &str| -> Result<Option<Array>, DataError> {
        let entry_name = format!("{name}.npy");
        let entry = match archive.by_name(&entry_name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => return Err(numpy_error(path, Some(name), e.to_string())),
        };
        let size = entry.size();
        read_array(entry, size, (path, name)).map(Some)
    };
    let arrays = [
        read("x_train")?,
        read("y_train")?,
        read("x_test")?,
        read("y_test")?,
    ];
    let entries = archive.file_names().map(str::to_string).collect();
    sets_from(path, arrays, entries)
}

/// The training and test sets of the `.npy` files of directory `dir`.
pub fn load_npy_dir(dir: &Path) -> Result<Mnist, DataError> {
    let read = |name: &str| -> Result<Option<Array>, DataError> {
        let path = dir.join(format!("{name}.npy"));
        if !path.exists() {
            return Ok(None);
        }
        let (file, size) = crate::input::open_regular(&path)
            .map_err(|e| numpy_error(&path, None, e.to_string()))?;
        read_array(BufReader::new(file), size, (&path, name)).map(Some)
    };
    let arrays = [
        read("x_train")?,
        read("y_train")?,
        read("x_test")?,
        read("y_test")?,
    ];
    sets_from(dir, arrays, Vec::new())
}

/// The sets from the four arrays, each present or not; `entries` lists an archive's entries
/// for the error of a missing training pair.
fn sets_from(
    path: &Path,
    [x_train, y_train, x_test, y_test]: [Option<Array>; 4],
    entries: Vec<String>,
) -> Result<Mnist, DataError> {
    let (Some(x_train), Some(y_train)) = (x_train, y_train) else {
        let found = if entries.is_empty() {
            String::new()
        } else {
            format!(" (it holds {})", entries.join(", "))
        };
        return Err(numpy_error(
            path,
            None,
            format!(
                "needs the arrays x_train and y_train{found}: images (N, H, W) and labels \
                 (N,), as Keras' mnist.npz has them, or as x_train.npy and y_train.npy"
            ),
        ));
    };
    let train = pair(path, "train", x_train, y_train)?;
    let test = match (x_test, y_test) {
        (Some(x), Some(y)) => pair(path, "test", x, y)?,
        (None, None) => Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            rows: train.set.rows,
            cols: train.set.cols,
        }
        .into(),
        (x, _) => {
            let missing = if x.is_some() { "y_test" } else { "x_test" };
            return Err(numpy_error(
                path,
                Some(missing),
                format!(
                    "is missing, where {} is there",
                    ARRAYS[2 + usize::from(x.is_none())]
                ),
            ));
        }
    };
    if (test.set.rows, test.set.cols) != (train.set.rows, train.set.cols) && !test.set.is_empty() {
        return Err(numpy_error(
            path,
            Some("x_test"),
            format!(
                "its images are {} x {}, but x_train's are {} x {}",
                test.set.rows, test.set.cols, train.set.rows, train.set.cols
            ),
        ));
    }
    let notes = train.notes.into_iter().chain(test.notes).collect();
    Ok(Mnist {
        train: train.set,
        test: test.set,
        class_names: None,
        notes,
    })
}

/// A set made from arrays, and what the run should be told of how they were read.
struct Pair {
    set: Dataset,
    notes: Vec<String>,
}

impl From<Dataset> for Pair {
    fn from(set: Dataset) -> Self {
        Self {
            set,
            notes: Vec::new(),
        }
    }
}

/// The set of images `x` and labels `y` (`which` is "train" or "test").
fn pair(path: &Path, which: &str, x: Array, y: Array) -> Result<Pair, DataError> {
    let (x_name, y_name) = (format!("x_{which}"), format!("y_{which}"));
    let (count, rows, cols) =
        image_shape(&x.shape).map_err(|problem| numpy_error(path, Some(&x_name), problem))?;
    let labels = labels(path, &y_name, y)?;
    if labels.len() != count {
        return Err(numpy_error(
            path,
            Some(&y_name),
            format!(
                "holds {} labels, but {x_name} holds {count} images",
                labels.len()
            ),
        ));
    }
    let (images, note) =
        image_bytes(x.values).map_err(|problem| numpy_error(path, Some(&x_name), problem))?;
    Ok(Pair {
        set: Dataset {
            images,
            labels,
            rows,
            cols,
        },
        notes: note
            .map(|n| format!("{}: {x_name} {n}", path.display()))
            .into_iter()
            .collect(),
    })
}

/// (count, rows, cols) of an image array's shape, or what is wrong with it.
fn image_shape(shape: &[usize]) -> Result<(usize, usize, usize), String> {
    match *shape {
        [count, rows, cols] | [count, rows, cols, 1] if rows > 0 && cols > 0 => {
            Ok((count, rows, cols))
        }
        [count, pixels] => {
            let side = (pixels as f64).sqrt().round() as usize;
            if side == 0 || side * side != pixels {
                return Err(format!(
                    "has shape ({count}, {pixels}): {pixels} pixels an image is not a square; \
                     give (N, H, W)"
                ));
            }
            Ok((count, side, side))
        }
        _ => Err(format!(
            "has shape {shape:?}: images must be (N, H, W), (N, H, W, 1) or (N, H*W)"
        )),
    }
}

/// The labels of array `y`, each checked to lie in 0..255.
fn labels(path: &Path, name: &str, y: Array) -> Result<Vec<u8>, DataError> {
    let error = |problem| numpy_error(path, Some(name), problem);
    match y.shape.as_slice() {
        [_] | [_, 1] => {}
        [count, classes] => {
            return Err(error(format!(
                "has shape ({count}, {classes}): labels must be class numbers, shape (N,); \
                 one-hot rows become them with np.argmax(y, axis=1)"
            )));
        }
        shape => return Err(error(format!("has shape {shape:?}: labels must be (N,)"))),
    }
    let values = match y.values {
        Values::Int(values) => values,
        Values::U8(bytes) => widen(bytes),
        floats => {
            return Err(error(format!(
                "is of type {}: labels must be integers",
                floats.kind()
            )));
        }
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u8::try_from(v).map_err(|_| error(format!("label {i} is {v}, outside 0..255")))
        })
        .collect()
}

/// Image bytes of `values`, and a note saying how floats were read.
fn image_bytes(values: Values) -> Result<(Vec<u8>, Option<String>), String> {
    let floats: Vec<f64> = match values {
        Values::U8(bytes) => return Ok((bytes, None)),
        Values::Int(_) => {
            return Err(
                "is an integer array wider than uint8: images must be uint8 (0..255) or float"
                    .into(),
            );
        }
        Values::F32(v) => v.into_iter().map(f64::from).collect(),
        Values::F64(v) => v,
    };
    if let Some(i) = floats.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(format!(
            "value {i} is {}: float images must lie in 0..1 or in 0..255",
            floats[i]
        ));
    }
    let largest = floats.iter().copied().fold(0.0, f64::max);
    let (scale, note) = if largest <= 1.0 {
        (255.0, "is float in 0..1: read as round(255 x)")
    } else if largest <= 255.0 {
        (1.0, "is float in 0..255: read as round(x)")
    } else {
        return Err(format!(
            "holds {largest}: float images must lie in 0..1 or in 0..255"
        ));
    };
    let bytes = floats.iter().map(|v| (v * scale).round() as u8).collect();
    Ok((bytes, Some(note.into())))
}

/// An array's shape and values.
struct Array {
    shape: Vec<usize>,
    values: Values,
}

/// An array's values, widened to one type of each kind the readers accept.
enum Values {
    U8(Vec<u8>),
    Int(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::U8(v) => v.len(),
            Values::Int(v) => v.len(),
            Values::F32(v) => v.len(),
            Values::F64(v) => v.len(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Values::U8(_) => "uint8",
            Values::Int(_) => "integer",
            Values::F32(_) => "float32",
            Values::F64(_) => "float64",
        }
    }
}

/// Reads one array from `reader`, whose whole length (header and data) is `size` bytes;
/// `(path, name)` name it in errors.
fn read_array(
    mut reader: impl Read,
    size: u64,
    (path, name): (&Path, &str),
) -> Result<Array, DataError> {
    let error = |problem: String| numpy_error(path, Some(name), problem);
    let mut prefix = [0u8; 12];
    let header_bytes = read_prefix(&mut reader, &mut prefix).map_err(error)?;
    let header = NpyHeader::from_reader((&prefix[..header_bytes.0]).chain(&mut reader))
        .map_err(|e| error(format!("its header is not a NumPy header: {e}")))?;
    let (shape, item) = check_header(&header).map_err(error)?;
    let elements = shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64));
    let data_bytes = elements.and_then(|n| n.checked_mul(item as u64));
    let available = size.saturating_sub(header_bytes.1);
    match data_bytes {
        Some(bytes) if bytes == available && bytes <= MAX_ARRAY_BYTES => {}
        Some(bytes) if bytes <= MAX_ARRAY_BYTES => {
            return Err(error(format!(
                "its header promises {bytes} bytes of data ({shape:?} of {}), but the file \
                 holds {available}",
                type_name(&header.dtype())
            )));
        }
        _ => {
            return Err(error(format!(
                "its header claims shape {shape:?} of {}, more than the {MAX_ARRAY_BYTES} \
                 bytes an array may hold",
                type_name(&header.dtype())
            )));
        }
    }
    let count = elements.unwrap_or(0) as usize;
    let file = NpyFile::with_header(header, reader.take(available));
    let values =
        read_values(file, count).map_err(|e| error(format!("cannot read its data: {e}")))?;
    if values.len() != count {
        return Err(error(format!(
            "its data ends after {} of the {count} values its header promises",
            values.len()
        )));
    }
    Ok(Array { shape, values })
}

/// Reads the magic string, the version and the header's length into `prefix`, refusing a
/// header longer than [`MAX_HEADER_BYTES`]. Returns the prefix's length and the whole
/// header's (prefix included).
fn read_prefix(reader: &mut impl Read, prefix: &mut [u8; 12]) -> Result<(usize, u64), String> {
    let short = |e: io::Error| format!("it is too short for a NumPy header ({e})");
    reader.read_exact(&mut prefix[..10]).map_err(short)?;
    if &prefix[..6] != b"\x93NUMPY" {
        return Err("it is not a .npy array: no \\x93NUMPY magic string".into());
    }
    let (length, prefix_bytes) = match prefix[6] {
        1 => (u64::from(u16::from_le_bytes([prefix[8], prefix[9]])), 10),
        2 | 3 => {
            reader.read_exact(&mut prefix[10..12]).map_err(short)?;
            let bytes = [prefix[8], prefix[9], prefix[10], prefix[11]];
            (u64::from(u32::from_le_bytes(bytes)), 12)
        }
        version => return Err(format!("NumPy format version {version} is unknown")),
    };
    if length > MAX_HEADER_BYTES as u64 {
        return Err(format!(
            "its header claims {length} bytes, more than NumPy's own limit of {MAX_HEADER_BYTES}"
        ));
    }
    Ok((prefix_bytes, prefix_bytes as u64 + length))
}

/// The header's shape, and its element's size in bytes, where this module reads its type and
/// order.
fn check_header(header: &NpyHeader) -> Result<(Vec<usize>, usize), String> {
    if header.order() == Order::Fortran {
        return Err("is in Fortran order; save np.ascontiguousarray(x) instead".into());
    }
    let readable = match header.dtype() {
        DType::Plain(t) => match (t.type_char(), t.num_bytes()) {
            (TypeChar::Uint | TypeChar::Int, Some(n @ (1 | 2 | 4 | 8))) => Some(n),
            (TypeChar::Float, Some(n @ (4 | 8))) => Some(n),
            _ => None,
        },
        _ => None,
    };
    let item = readable.ok_or_else(|| {
        format!(
            "is of type {}: arrays must be integers, float32 or float64",
            type_name(&header.dtype())
        )
    })?;
    let shape = header
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("has a dimension of {d}")))
        .collect::<Result<_, _>>()?;
    Ok((shape, item))
}

/// `count` values of `file`, read as they arrive (the vector grows with the data).
fn read_values<R: Read>(file: NpyFile<R>, count: usize) -> io::Result<Values> {
    let DType::Plain(t) = file.dtype() else {
        unreachable!("check_header admits plain types only")
    };
    let start = count.min(1 << 20);
    fn collect<T: npyz::Deserialize, R: Read>(
        file: NpyFile<R>,
        start: usize,
    ) -> io::Result<Vec<T>> {
        let mut values = Vec::with_capacity(start);
        for value in file.data::<T>().map_err(io::Error::other)? {
            values.push(value?);
        }
        Ok(values)
    }
    Ok(match (t.type_char(), t.num_bytes()) {
        (TypeChar::Uint, Some(1)) => {
            let mut bytes = Vec::with_capacity(start);
            file.into_inner().read_to_end(&mut bytes)?;
            Values::U8(bytes)
        }
        (TypeChar::Float, Some(4)) => Values::F32(collect(file, start)?),
        (TypeChar::Float, _) => Values::F64(collect(file, start)?),
        (TypeChar::Uint, Some(8)) => Values::Int(
            collect::<u64, R>(file, start)?
                .into_iter()
                .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
                .collect(),
        ),
        (TypeChar::Uint, Some(2)) => Values::Int(widen(collect::<u16, R>(file, start)?)),
        (TypeChar::Uint, _) => Values::Int(widen(collect::<u32, R>(file, start)?)),
        (_, Some(1)) => Values::Int(widen(collect::<i8, R>(file, start)?)),
        (_, Some(2)) => Values::Int(widen(collect::<i16, R>(file, start)?)),
        (_, Some(4)) => Values::Int(widen(collect::<i32, R>(file, start)?)),
        _ => Values::Int(collect::<i64, R>(file, start)?),
    })
}

/// A dtype as NumPy's `descr` writes it, without Python's quotes: `<f4`.
fn type_name(dtype: &DType) -> String {
    dtype.descr().trim_matches('\'').to_string()
}

fn widen<T: Into<i64>>(values: Vec<T>) -> Vec<i64> {
    values.into_iter().map(Into::into).collect()
}
