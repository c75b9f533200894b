//! Fetches missing MNIST files from public mirrors, verifies them, and writes them atomically.

use std::fs;
use std::path::Path;
use std::time::Duration;

use crate::atomic::write_atomically;

use super::{Checksum, DataError, DataFormat, IdxFile, decode_idx, missing_files, sha256_hex};

/// The mirrors that torchvision and TensorFlow Datasets download MNIST from, tried in order.
/// Each serves `<mirror><name>.gz`.
pub const MIRRORS: [&str; 3] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
];

/// Zalando's own mirror of Fashion-MNIST, which torchvision downloads from.
pub const FASHION_MNIST_MIRRORS: [&str; 1] =
    ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"];

/// Where torchvision and TensorFlow Datasets download Kuzushiji-MNIST: its publisher, CODH.
pub const KMNIST_MIRRORS: [&str; 1] = ["http://codh.rois.ac.jp/kmnist/dataset/kmnist/"];

/// The largest body accepted: the training images are 9.9 MB gzipped.
const MAX_DOWNLOAD_BYTES: u64 = 64 << 20;

/// Downloads every canonical file that `dir` lacks from the first mirror that serves a copy
/// whose decompressed SHA-256 matches, and returns the names it wrote. Each file is written to
/// a temporary name and renamed into place, so an interrupted download never leaves a file
/// that a later run would load; a download that fails leaves no directory it made behind.
pub fn download_missing(
    dir: &Path,
    format: DataFormat,
    mirrors: &[&str],
) -> Result<Vec<String>, DataError> {
    undo_directories_on_error(dir, || download_each(dir, format, mirrors))
}

fn download_each(
    dir: &Path,
    format: DataFormat,
    mirrors: &[&str],
) -> Result<Vec<String>, DataError> {
    let agent = agent_for(dir, Duration::from_secs(300))?;
    let mut written = Vec::new();
    for file in missing_files(dir, format) {
        let mut attempts = Vec::new();
        let fetched = mirrors.iter().find_map(|mirror| {
            let url = format!("{mirror}{}.gz", format.file_name(file));
            match fetch_verified(&agent, &url, file, format) {
                Ok(body) => Some(body),
                Err(problem) => {
                    attempts.push(format!("{url}: {problem}"));
                    None
                }
            }
        });
        let body = fetched.ok_or_else(|| DataError::Download {
            file: file.name.to_string(),
            dir: dir.to_path_buf(),
            attempts,
        })?;
        write_atomically(&dir.join(format!("{}.gz", file.name)), &body)?;
        written.push(file.name.to_string());
    }
    Ok(written)
}

/// The body at `url`, if it decompresses to the content `file` names.
fn fetch_verified(
    agent: &ureq::Agent,
    url: &str,
    file: IdxFile,
    format: DataFormat,
) -> Result<Vec<u8>, String> {
    let body = fetch_body(agent, url, MAX_DOWNLOAD_BYTES)?;
    let content = decode_idx(Path::new(url), &body[..], body.len() as u64, file.kind)
        .map_err(|e| e.to_string())?;
    match format.checksum(file) {
        Some(Checksum::Content(expected)) => {
            let found = sha256_hex(&content.bytes);
            if found != expected {
                return Err(format!("content SHA-256 {found}, expected {expected}"));
            }
        }
        Some(Checksum::Gzip { sha256, bytes }) => {
            let found = sha256_hex(&body);
            if body.len() as u64 != bytes || found != sha256 {
                return Err(format!(
                    "{} bytes with SHA-256 {found}, expected {bytes} with {sha256}",
                    body.len()
                ));
            }
        }
        None => {}
    }
    Ok(body)
}

/// Runs `download` into `dir`; where it fails, removes the directories that did not exist
/// before it and are still empty, so that a failed first download leaves no empty data
/// directory that later looks like one with data in it.
pub(super) fn undo_directories_on_error<T>(
    dir: &Path,
    download: impl FnOnce() -> Result<T, DataError>,
) -> Result<T, DataError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .collect();
    let result = download();
    if result.is_err() {
        // Deepest first; remove_dir refuses a directory that holds anything.
        for made in missing {
            let _ = fs::remove_dir(made);
        }
    }
    result
}

/// Makes `dir` where it is missing, and an HTTP agent that gives up on a download after
/// `timeout`: what every download starts with.
pub(super) fn agent_for(dir: &Path, timeout: Duration) -> Result<ureq::Agent, DataError> {
    fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(timeout))
        .build()
        .into())
}

/// The body at `url`, refused past `limit` bytes.
pub(super) fn fetch_body(agent: &ureq::Agent, url: &str, limit: u64) -> Result<Vec<u8>, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| format!("reading the body: {e}"))
}
