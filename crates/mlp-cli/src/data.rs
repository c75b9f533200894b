//! Finding the data: load what the data directory has, downloading what it lacks.

use std::path::Path;

use anyhow::{Context, Result};
use mlp_core::data::{self, DataFormat, Mnist};

use crate::args::{DataArgs, DownloadArgs};
use crate::console::{note, say};
use crate::values::UsageError;

/// The training and test sets, downloaded first if the directory lacks them and downloads
/// are allowed.
pub fn load(args: &DataArgs) -> Result<Mnist> {
    args.check().map_err(UsageError)?;
    let (format, dir) = (args.format(), args.dir());
    if !args.no_download && format.downloadable() && !data::missing_files(&dir, format).is_empty() {
        fetch(&dir, format)?;
    }
    let loaded = data::load(&dir, format)?;
    if let (DataFormat::Folders(_), Some(names)) = (format, &loaded.class_names) {
        note!(
            "{} classes, named by their folders: {}",
            names.len(),
            names.join(", ")
        );
    }
    for line in &loaded.notes {
        note!("note: {line}");
    }
    for (raw, gz) in data::shadowed_files(&dir, format) {
        note!(
            "note: read {}, not {} beside it",
            raw.display(),
            gz.display()
        );
    }
    Ok(loaded)
}

fn fetch(dir: &Path, format: DataFormat) -> Result<()> {
    let name = format.name();
    note!("downloading {name} into {} ...", dir.display());
    let written = match format.emnist_split() {
        Some(_) => {
            note!("(one 535 MB zip of every EMNIST split, checked by its MD5)");
            let zips = [data::EMNIST_ZIP];
            data::download_emnist(dir, format, &zips, data::EMNIST_ZIP_MD5)
        }
        None => data::download_missing(dir, format, format.mirrors()),
    }
    .with_context(|| format!("{name} is not in {}", dir.display()))?;
    note!("downloaded and verified: {}", written.join(", "));
    Ok(())
}

/// `mlp-cli download`: fetch what is missing, then check all four files.
pub fn download(args: &DownloadArgs) -> Result<()> {
    let data = args.data();
    let (format, dir) = (data.format(), data.dir());
    if data::missing_files(&dir, format).is_empty() {
        note!("{} already has all four files", dir.display());
    } else if format.downloadable() {
        fetch(&dir, format)?;
    }
    let mnist = data::load(&dir, format)?;
    let checked = match (format.checksum(data::TRAIN_IMAGES), format.emnist_split()) {
        (Some(_), _) => "checksums verified",
        (None, Some(_)) => "not checked: NIST publishes only its zip's MD5, checked on download",
        (None, None) => "no published checksums of the files to verify them against",
    };
    say!(
        "{}: {} {} training and {} test images, {checked}",
        dir.display(),
        format.name(),
        mnist.train.len(),
        mnist.test.len()
    );
    Ok(())
}
