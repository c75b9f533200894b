//! Finding the data: load what the data directory has, downloading what it lacks.

use std::path::Path;

use anyhow::{Context, Result};
use mlp_core::data::{self, DataFormat, MIRRORS, Mnist};

use crate::args::{DataArgs, DownloadArgs};
use crate::console::{note, say};

/// The training and test sets, downloaded first if the directory lacks them and downloads
/// are allowed.
pub fn load(args: &DataArgs) -> Result<Mnist> {
    let format = if args.any_idx {
        DataFormat::AnyIdx
    } else {
        DataFormat::Mnist
    };
    if !args.no_download && !args.any_idx && !data::missing_files(&args.data_dir).is_empty() {
        fetch(&args.data_dir)?;
    }
    let loaded = data::load(&args.data_dir, format)?;
    for (raw, gz) in data::shadowed_files(&args.data_dir) {
        note!(
            "note: read {}, not {} beside it",
            raw.display(),
            gz.display()
        );
    }
    Ok(loaded)
}

fn fetch(dir: &Path) -> Result<()> {
    note!("downloading MNIST into {} ...", dir.display());
    let written = data::download_missing(dir, &MIRRORS)
        .with_context(|| format!("MNIST is not in {}", dir.display()))?;
    note!("downloaded and verified: {}", written.join(", "));
    Ok(())
}

/// `mlp-cli download`: fetch what is missing, then check all four files.
pub fn download(args: &DownloadArgs) -> Result<()> {
    if data::missing_files(&args.data_dir).is_empty() {
        note!("{} already has all four files", args.data_dir.display());
    } else {
        fetch(&args.data_dir)?;
    }
    let mnist = data::load(&args.data_dir, DataFormat::Mnist)?;
    say!(
        "{}: {} training and {} test images, checksums verified",
        args.data_dir.display(),
        mnist.train.len(),
        mnist.test.len()
    );
    Ok(())
}
