//! EMNIST from NIST's one zip of every split: downloaded, checked against the MD5 that
//! torchvision lists for it (the only checksum published), and the split's four files taken
//! out of it, each checked to be IDX of its kind before any is written.

use std::io::{Cursor, Read};
use std::path::Path;
use std::time::Duration;

use md5::{Digest, Md5};

use super::download::{agent_for, fetch_body};
use super::{DataError, DataFormat, IdxFile, decode_idx, hex, missing_files};
use crate::atomic::write_atomically;

/// The largest zip accepted: NIST's is 535 MB.
const MAX_ZIP_BYTES: u64 = 700 << 20;

/// The largest file taken out of it: the biggest split's training images are under 100 MB.
const MAX_MEMBER_BYTES: u64 = 256 << 20;

/// Downloads the zip from the first of `urls` that serves one whose MD5 is `md5`, and writes
/// the files of `format`'s split that `dir` lacks, as `.gz` files named as `dir` expects them.
/// Returns their names. Nothing is written unless every file was found and decodes.
pub fn download_emnist(
    dir: &Path,
    format: DataFormat,
    urls: &[&str],
    md5: &str,
) -> Result<Vec<String>, DataError> {
    super::download::undo_directories_on_error(dir, || download_zip(dir, format, urls, md5))
}

fn download_zip(
    dir: &Path,
    format: DataFormat,
    urls: &[&str],
    md5: &str,
) -> Result<Vec<String>, DataError> {
    let agent = agent_for(dir, Duration::from_secs(1800))?;
    let mut attempts = Vec::new();
    for url in urls {
        match fetch_zip(&agent, url, md5).and_then(|zip| members(&zip, dir, format)) {
            Ok(files) => {
                let mut written = Vec::new();
                for (name, bytes) in files {
                    write_atomically(&dir.join(&name), &bytes)?;
                    written.push(name);
                }
                return Ok(written);
            }
            Err(problem) => attempts.push(format!("{url}: {problem}")),
        }
    }
    Err(DataError::Download {
        file: "EMNIST's gzip.zip".into(),
        dir: dir.to_path_buf(),
        attempts,
    })
}

/// The zip at `url`, if its MD5 is `md5`.
fn fetch_zip(agent: &ureq::Agent, url: &str, md5: &str) -> Result<Vec<u8>, String> {
    let body = fetch_body(agent, url, MAX_ZIP_BYTES)?;
    let found = hex(&Md5::digest(&body));
    if found != md5 {
        return Err(format!("MD5 {found}, expected {md5}"));
    }
    Ok(body)
}

/// The `.gz` files of `format`'s split that `dir` lacks, taken out of `zip` (where NIST keeps
/// them, under `gzip/`), each checked to decode as IDX of its kind.
fn members(zip: &[u8], dir: &Path, format: DataFormat) -> Result<Vec<(String, Vec<u8>)>, String> {
    let mut archive =
        zip::ZipArchive::new(Cursor::new(zip)).map_err(|e| format!("not a zip: {e}"))?;
    missing_files(dir, format)
        .into_iter()
        .map(|file: IdxFile| {
            let name = format!("{}.gz", format.file_name(file));
            let member = format!("gzip/{name}");
            let mut entry = archive
                .by_name(&member)
                .map_err(|e| format!("{member}: {e}"))?;
            let mut bytes = Vec::new();
            entry
                .by_ref()
                .take(MAX_MEMBER_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| format!("{member}: {e}"))?;
            decode_idx(
                Path::new(&member),
                &bytes[..],
                bytes.len() as u64,
                file.kind,
            )
            .map_err(|e| e.to_string())?;
            Ok((name, bytes))
        })
        .collect()
}
