//! One rule for every file the program reads whole (models, checkpoints, kernel caches,
//! pictures): it must be a regular file, or a symbolic link to one, and no larger than a limit
//! that fits its kind, checked before a byte is read and enforced again while reading. A FIFO
//! would block the reader forever, a device such as `/dev/zero` never ends, and a directory
//! has no bytes: each is refused with its path named. Data sets are not read whole: their
//! readers stop where the header's promise ends (`crate::data`).
//!
//! The same module tells whether two paths are one file ([`FileId`]): outputs are checked
//! against inputs and against each other with it.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {}: it is a directory; give the path of a file", path.display())]
    IsDirectory { path: PathBuf },
    #[error(
        "cannot read {}: it is {kind}, not a regular file (reading it could block or never \
         end); give the path of a regular file", path.display()
    )]
    NotRegularFile { path: PathBuf, kind: &'static str },
    #[error(
        "cannot read {}: it is {size} bytes, more than the {limit} bytes {what} can take",
        path.display()
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("cannot read {}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// The size of the regular file at `path` (links followed), or why it must not be read.
pub fn regular_file_size(path: &Path) -> Result<u64, InputError> {
    let meta = fs::metadata(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    check_kind(path, &meta)?;
    Ok(meta.len())
}

fn check_kind(path: &Path, meta: &fs::Metadata) -> Result<(), InputError> {
    if meta.is_file() {
        Ok(())
    } else if meta.is_dir() {
        Err(InputError::IsDirectory {
            path: path.to_path_buf(),
        })
    } else {
        Err(InputError::NotRegularFile {
            path: path.to_path_buf(),
            kind: crate::atomic::special_kind(meta),
        })
    }
}

/// Opens the regular file at `path` for reading, refusing what [`regular_file_size`] refuses;
/// the kind is checked again on the open file, so a file swapped for a FIFO after the first
/// check is still refused (it is opened, never read).
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    regular_file_size(path)?;
    let io_error = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let meta = file.metadata().map_err(io_error)?;
    check_kind(path, &meta)?;
    Ok((file, meta.len()))
}

/// The whole regular file at `path`, refused where it is larger than `limit` bytes; `what`
/// names its kind in that error ("a kernel cache"). At most `limit` bytes are read even where
/// the file grows while it is read.
pub fn read_limited(path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, InputError> {
    let (file, size) = open_regular(path)?;
    let too_large = |size| InputError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
        what,
    };
    if size > limit {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// What makes a file itself whatever path names it: its device and inode where the system
/// has them, else its canonical path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileId {
    Inode { device: u64, inode: u64 },
    Path(PathBuf),
}

impl FileId {
    /// The file `path` names (links followed), or `None` where nothing is there yet.
    pub fn of(path: &Path) -> Option<Self> {
        let meta = fs::metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(Self::Inode {
                device: meta.dev(),
                inode: meta.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            fs::canonicalize(path).ok().map(Self::Path)
        }
    }
}

/// Whether `a` and `b` name one file: the same existing file, or, where neither exists yet,
/// the same place once links and `..` are resolved in their directories.
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (FileId::of(a), FileId::of(b)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => match (planned_path(a), planned_path(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        _ => false,
    }
}

/// The canonical path a file not yet made at `path` will have: its directory's canonical path
/// and its name.
fn planned_path(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?;
    let dir = crate::atomic::directory_of(path);
    Some(fs::canonicalize(dir).ok()?.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mlp-input-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_without_reading() {
        let dir = scratch("kinds");
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        // Each of these would block or never end if it were read.
        let err = read_limited(&fifo, 10, "a test file").unwrap_err();
        assert!(err.to_string().contains("it is a FIFO"), "{err}");
        let err = read_limited(Path::new("/dev/zero"), 10, "a test file").unwrap_err();
        assert!(err.to_string().contains("it is a device"), "{err}");
        let err = read_limited(&dir, 10, "a test file").unwrap_err();
        assert!(err.to_string().contains("it is a directory"), "{err}");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_file_over_its_limit_is_refused_and_one_within_read_whole() {
        let dir = scratch("limit");
        let file = dir.join("f");
        fs::write(&file, [7u8; 11]).unwrap();
        let err = read_limited(&file, 10, "a test file").unwrap_err();
        assert!(
            err.to_string()
                .contains("11 bytes, more than the 10 bytes a test file can take"),
            "{err}"
        );
        assert_eq!(read_limited(&file, 11, "a test file").unwrap(), [7u8; 11]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn links_and_dot_dots_name_the_same_file() {
        let dir = scratch("same");
        let file = dir.join("m");
        fs::write(&file, b"x").unwrap();
        std::os::unix::fs::symlink(&file, dir.join("link")).unwrap();
        fs::create_dir(dir.join("sub")).unwrap();
        assert!(same_file(&file, &dir.join("link")));
        assert!(same_file(&file, &dir.join("sub/../m")));
        assert!(same_file(&dir.join("new"), &dir.join("sub/../new")));
        assert!(!same_file(&file, &dir.join("new")));
        assert!(!same_file(&dir.join("new"), &dir.join("other")));
        fs::remove_dir_all(dir).unwrap();
    }
}
