//! The IDX format (LeCun's MNIST page): a big-endian u32 magic number, one u32 per dimension,
//! then the bytes. Checked to the byte, so that nothing downstream can read past the end.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{DataError, Dataset};
use crate::memory::available_memory;

/// Unsigned bytes, three dimensions (count, rows, cols).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Unsigned bytes, one dimension (count).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The two kinds of IDX file a data set has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    Images,
    Labels,
}

impl IdxKind {
    /// Bytes before the data: the magic number and one u32 per dimension.
    pub fn header_len(self) -> usize {
        match self {
            IdxKind::Images => 16,
            IdxKind::Labels => 8,
        }
    }

    fn magic(self) -> u32 {
        match self {
            IdxKind::Images => IMAGES_MAGIC,
            IdxKind::Labels => LABELS_MAGIC,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        }
    }

    /// The whole file's length as `header` (at least [`IdxKind::header_len`] bytes) promises
    /// it, saturating at u64::MAX.
    fn promised_len(self, header: &[u8]) -> u64 {
        let dimension = |i: usize| {
            u64::from(u32::from_be_bytes(
                header[4 * i..4 * i + 4].try_into().expect("4 bytes"),
            ))
        };
        // Three u32 dimensions can multiply past u64: such a promise is as good as infinite.
        let data = match self {
            IdxKind::Images => dimension(1)
                .saturating_mul(dimension(2))
                .saturating_mul(dimension(3)),
            IdxKind::Labels => dimension(1),
        };
        data.saturating_add(self.header_len() as u64)
    }
}

/// A file's decompressed bytes, and whether they were gzipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxBytes {
    pub bytes: Vec<u8>,
    pub gzipped: bool,
}

/// Reads the IDX file of `kind` at `path`, raw or gzipped (told by its first bytes, whatever
/// its name), never reading more than its header promises: the length of a raw file is
/// checked before its data is read, and a gzip stream is inflated only up to the promised
/// length (plus one byte, to tell trailing bytes), so that a decompression bomb or a huge
/// sparse file costs no memory. A promise larger than the memory available is refused.
pub fn read_idx(path: &Path, kind: IdxKind) -> Result<IdxBytes, DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let file_len = file.metadata().map_err(io_error)?.len();
    decode_idx(path, BufReader::new(file), file_len, kind)
}

/// [`read_idx`] on the `len` bytes of `reader`; `path` names them in errors.
pub fn decode_idx(
    path: &Path,
    mut reader: impl BufRead,
    len: u64,
    kind: IdxKind,
) -> Result<IdxBytes, DataError> {
    let io_error = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let gzipped = reader
        .fill_buf()
        .map_err(io_error)?
        .starts_with(&[0x1f, 0x8b]);
    let mut source: Box<dyn Read + '_> = if gzipped {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let read_error = |source| match gzipped {
        true => DataError::Gzip {
            path: path.to_path_buf(),
            source,
        },
        false => io_error(source),
    };
    let mut bytes = Vec::new();
    (&mut source)
        .take(kind.header_len() as u64)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() < kind.header_len() {
        return Err(DataError::WrongLength {
            path: path.to_path_buf(),
            expected: kind.header_len() as u64,
            found: bytes.len() as u64,
        });
    }
    let magic = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
    check_magic(path, kind.name(), magic, kind.magic())?;
    let promised = kind.promised_len(&bytes);
    if !gzipped && len != promised {
        return Err(DataError::WrongLength {
            path: path.to_path_buf(),
            expected: promised,
            found: len,
        });
    }
    if let Some(available) = available_memory()
        && promised > available
    {
        return Err(DataError::TooLarge {
            path: path.to_path_buf(),
            promised,
            available,
        });
    }
    source
        .take(promised.saturating_add(1) - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > promised {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            expected: promised,
        });
    }
    Ok(IdxBytes { bytes, gzipped })
}

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
    check_magic(path, IdxKind::Images.name(), magic, IMAGES_MAGIC)?;
    if rows == 0 || cols == 0 {
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

/// Parses a decompressed IDX labels file: one class per image, from 0.
pub fn parse_labels<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8], DataError> {
    let [magic, count] = header::<2>(path, bytes)?;
    check_magic(path, IdxKind::Labels.name(), magic, LABELS_MAGIC)?;
    check_length(path, bytes, 8 + u64::from(count))?;
    Ok(&bytes[8..])
}
