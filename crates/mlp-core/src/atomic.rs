//! Files written whole or not at all. Every file this workspace writes for a user (models,
//! metrics, plots, downloads) goes through [`write_atomically`]: the bytes go to a temporary
//! file in the target's own directory, are flushed to the disk, and the temporary file is
//! renamed over the target. A reader sees the old file or the new one, never half of one; a
//! full disk or an interrupted run leaves the old file as it was.
//!
//! A rename replaces whatever the target path is, so targets that are not regular files
//! (devices such as `/dev/null`, FIFOs, sockets, directories) are refused before anything is
//! written, and a symbolic link is followed to the regular file it names, which is replaced
//! while the link stays.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("cannot write {}: it is a directory; give a file name", path.display())]
    IsDirectory { path: PathBuf },
    #[error(
        "cannot write {}: it is {kind}, not a regular file, and writing would replace it; \
         give the path of a regular file", path.display()
    )]
    NotRegularFile { path: PathBuf, kind: &'static str },
    #[error("cannot write {}: it is a symbolic link to {}, which does not exist", path.display(), target.display())]
    DanglingLink { path: PathBuf, target: PathBuf },
    #[error("cannot write {}: the directory {} does not exist", path.display(), dir.display())]
    NoDirectory { path: PathBuf, dir: PathBuf },
    #[error("cannot write {}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Temporary files being written right now, for [`remove_partial_files`].
static PARTIAL_FILES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The path a write to `path` replaces: `path` itself, or the file its symbolic links end at.
/// Refuses what a rename must not replace (see the module's documentation).
pub fn resolve_target(path: &Path) -> Result<PathBuf, OutputError> {
    let target = match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => match fs::canonicalize(path) {
            Ok(target) => target,
            Err(_) => {
                return Err(OutputError::DanglingLink {
                    path: path.to_path_buf(),
                    target: fs::read_link(path).unwrap_or_default(),
                });
            }
        },
        _ => path.to_path_buf(),
    };
    match fs::metadata(&target) {
        Ok(meta) if meta.is_file() => Ok(target),
        Ok(meta) if meta.is_dir() => Err(OutputError::IsDirectory {
            path: path.to_path_buf(),
        }),
        Ok(meta) => Err(OutputError::NotRegularFile {
            path: path.to_path_buf(),
            kind: special_kind(&meta),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = directory_of(&target);
            if dir.is_dir() {
                Ok(target)
            } else {
                Err(OutputError::NoDirectory {
                    path: path.to_path_buf(),
                    dir: dir.to_path_buf(),
                })
            }
        }
        Err(source) => Err(OutputError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(unix)]
pub(crate) fn special_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
pub(crate) fn special_kind(_meta: &fs::Metadata) -> &'static str {
    "a special file"
}

pub(crate) fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Checks, before any work whose result goes to `path`, that [`write_atomically`] can write
/// it: the target is acceptable and a temporary file can be created beside it (which is
/// then removed). Nothing at `path` is touched; temporary files that killed runs left
/// beside it are removed.
pub fn check_writable(path: &Path) -> Result<(), OutputError> {
    let target = resolve_target(path)?;
    remove_stale_partial_files(&target);
    let partial = PartialFile::create(&target)?;
    drop(partial);
    Ok(())
}

/// Writes `bytes` to `path` atomically (see the module's documentation).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    let target = resolve_target(path)?;
    let mut partial = PartialFile::create(&target)?;
    partial.write_all(bytes)?;
    partial.persist()
}

/// Removes every temporary file that a write in progress has made. For a signal handler:
/// after it, the process must exit without finishing those writes.
pub fn remove_partial_files() {
    let files = PARTIAL_FILES.lock().unwrap_or_else(|e| e.into_inner());
    for file in files.iter() {
        let _ = fs::remove_file(file);
    }
}

/// A temporary file beside its target, removed on drop unless it was renamed into place.
struct PartialFile {
    file: Option<File>,
    path: PathBuf,
    target: PathBuf,
    /// Renamed over its target: nothing is left to remove.
    persisted: bool,
}

impl PartialFile {
    fn create(target: &Path) -> Result<Self, OutputError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = target.file_name().unwrap_or_default().to_string_lossy();
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            directory_of(target).join(format!(".{name}.{}-{unique}.partial", std::process::id()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| OutputError::Io {
                path: target.to_path_buf(),
                source,
            })?;
        PARTIAL_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.clone());
        Ok(Self {
            file: Some(file),
            path,
            target: target.to_path_buf(),
            persisted: false,
        })
    }

    fn io_error(&self, source: io::Error) -> OutputError {
        OutputError::Io {
            path: self.target.clone(),
            source,
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> Result<(), OutputError> {
        let file = self.file.as_mut().expect("open until persisted");
        file.write_all(bytes).map_err(|e| self.io_error(e))
    }

    /// Flushes the bytes to the disk and renames the file over its target. On failure the
    /// temporary file is removed when `self` drops.
    fn persist(mut self) -> Result<(), OutputError> {
        let file = self.file.take().expect("open until persisted");
        file.sync_all().map_err(|e| self.io_error(e))?;
        drop(file);
        fs::rename(&self.path, &self.target).map_err(|e| self.io_error(e))?;
        self.persisted = true;
        self.forget();
        // The rename itself reaches the disk with the directory; a failure here loses
        // nothing that a crash before the rename would not have.
        if let Ok(dir) = File::open(directory_of(&self.target)) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn forget(&self) {
        PARTIAL_FILES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|p| p != &self.path);
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.persisted {
            self.file.take();
            let _ = fs::remove_file(&self.path);
            self.forget();
        }
    }
}

/// Removes the temporary files that killed processes left beside `target`: those named
/// `.{name}.{pid}-{n}.partial` whose process no longer runs. A live process's file is its
/// write in progress and stays.
pub fn remove_stale_partial_files(target: &Path) {
    let Some(name) = target.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(directory_of(target)) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".partial"))
        else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !process_runs(pid) && entry.file_type().is_ok_and(|kind| kind.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Whether process `pid` runs on this machine. Where that cannot be told (no /proc), every
/// process is taken to run, so that no file is removed.
fn process_runs(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc_root = Path::new("/proc");
    !proc_root.join("self").exists() || proc_root.join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mlp-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_no_temporary_file() {
        let dir = scratch("replace");
        let path = dir.join("out.txt");
        fs::write(&path, b"old").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(entries(&dir), ["out.txt"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_link_is_followed_and_kept() {
        let dir = scratch("link");
        let (file, link) = (dir.join("real.txt"), dir.join("link.txt"));
        fs::write(&file, b"old").unwrap();
        std::os::unix::fs::symlink(&file, &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&file).unwrap(), b"new");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn special_files_directories_and_missing_directories_are_refused() {
        let dir = scratch("refused");
        let refused = |path: &Path| {
            let err = check_writable(path).unwrap_err().to_string();
            assert!(err.contains(&*path.to_string_lossy()), "{err}");
            err
        };
        assert!(refused(Path::new("/dev/null")).contains("a device"));
        assert!(refused(&dir).contains("a directory"));
        assert!(refused(&dir.join("no/such/dir/m")).contains("does not exist"));
        std::os::unix::fs::symlink(dir.join("gone"), dir.join("dangling")).unwrap();
        assert!(refused(&dir.join("dangling")).contains("does not exist"));
        assert_eq!(entries(&dir), ["dangling"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_failed_rename_removes_its_temporary_file() {
        let dir = scratch("failed-rename");
        let path = dir.join("m.safetensors");
        let mut partial = PartialFile::create(&path).unwrap();
        partial.write_all(b"new").unwrap();
        // A directory made at the target while the file was written: the rename fails.
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"kept").unwrap();
        assert!(partial.persist().is_err());
        assert_eq!(entries(&dir), ["m.safetensors"]);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stale_temporary_files_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = scratch("stale");
        let path = dir.join("m.safetensors");
        // No process has a pid this large (the kernel's limit is 2^22).
        let dead = format!(".m.safetensors.{}-0.partial", u32::MAX - 1);
        let live = format!(".m.safetensors.{}-7.partial", std::process::id());
        for name in [&dead, &live, &".other.4000000000-0.partial".to_string()] {
            fs::write(dir.join(name), b"half").unwrap();
        }
        check_writable(&path).unwrap();
        let mut expected = vec![".other.4000000000-0.partial".to_string(), live];
        expected.sort();
        assert_eq!(entries(&dir), expected);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unfinished_write_removes_its_temporary_file() {
        let dir = scratch("unfinished");
        let path = dir.join("m.safetensors");
        fs::write(&path, b"old").unwrap();
        let mut partial = PartialFile::create(&path).unwrap();
        partial.write_all(b"half").unwrap();
        assert_eq!(entries(&dir).len(), 2);
        drop(partial);
        assert_eq!(entries(&dir), ["m.safetensors"]);
        assert_eq!(fs::read(&path).unwrap(), b"old");
        fs::remove_dir_all(dir).unwrap();
    }
}
