//! The IDX format (LeCun's MNIST page): a big-endian u32 magic number, one u32 per dimension,
//! then the bytes. Checked to the byte, so that nothing downstream can read past the end.

use std::path::Path;

use super::{DataError, Dataset, IMAGE_SIDE};

/// Unsigned bytes, three dimensions (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Unsigned bytes, one dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The `n` big-endian u32s of the header, or a length error if the file is shorter than that.
fn header<const N: usize>(path: &Path, bytes: &[u8]) -> Result<[u32; N], DataError> {
    if bytes.len() < 4 * N {
        return Err(DataError::WrongLength {
            path: path.to_path_buf(),
            expected: 4 * N as u64,
            found: bytes.len() as u64,
        });
    }
    Ok(std::array::from_fn(|i| {
        u32::from_be_bytes(bytes[4 * i..4 * i + 4].try_into().expect("4 bytes"))
    }))
}

fn check_magic(
    path: &Path,
    kind: &'static str,
    found: u32,
    expected: u32,
) -> Result<(), DataError> {
    if found == expected {
        Ok(())
    } else {
        Err(DataError::BadMagic {
            path: path.to_path_buf(),
            kind,
            found,
            expected,
        })
    }
}

fn check_length(path: &Path, bytes: &[u8], expected: u64) -> Result<(), DataError> {
    if bytes.len() as u64 == expected {
        Ok(())
    } else {
        Err(DataError::WrongLength {
            path: path.to_path_buf(),
            expected,
            found: bytes.len() as u64,
        })
    }
}

/// Parses a decompressed IDX images file; the returned set's labels are empty.
pub fn parse_images(path: &Path, bytes: &[u8]) -> Result<Dataset, DataError> {
    let [magic, count, rows, cols] = header::<4>(path, bytes)?;
    check_magic(path, "images", magic, IMAGES_MAGIC)?;
    if rows as usize != IMAGE_SIDE || cols as usize != IMAGE_SIDE {
        return Err(DataError::BadImageSize {
            path: path.to_path_buf(),
            rows,
            cols,
        });
    }
    check_length(
        path,
        bytes,
        16 + u64::from(count) * u64::from(rows) * u64::from(cols),
    )?;
    Ok(Dataset {
        images: bytes[16..].to_vec(),
        labels: Vec::new(),
        rows: rows as usize,
        cols: cols as usize,
    })
}

/// Parses a decompressed IDX labels file: the labels, each checked to be a digit.
pub fn parse_labels<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8], DataError> {
    let [magic, count] = header::<2>(path, bytes)?;
    check_magic(path, "labels", magic, LABELS_MAGIC)?;
    check_length(path, bytes, 8 + u64::from(count))?;
    let labels = &bytes[8..];
    if let Some((index, &value)) = labels.iter().enumerate().find(|(_, v)| **v > 9) {
        return Err(DataError::BadLabel {
            path: path.to_path_buf(),
            index,
            value,
        });
    }
    Ok(labels)
}
