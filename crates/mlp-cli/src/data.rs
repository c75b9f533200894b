//! Finding the data: load what the data directory has, downloading what it lacks.

use anyhow::{Context, Result};
use mlp_core::data::{self, DataFormat, MIRRORS, Mnist};

use crate::args::{DataArgs, NetworkArgs};
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
        fetch(args)?;
    }
    Ok(data::load(&args.data_dir, format)?)
}

/// The data of a run: the training set cut to `--limit` images when one is given.
pub fn load_limited(args: &NetworkArgs) -> Result<Mnist> {
    let mut mnist = load(&args.data)?;
    if let Some(limit) = args.limit {
        mnist.train = mnist.train.first(limit);
    }
    Ok(mnist)
}

fn fetch(args: &DataArgs) -> Result<()> {
    note!("downloading MNIST into {} ...", args.data_dir.display());
    let written = data::download_missing(&args.data_dir, &MIRRORS)
        .with_context(|| format!("MNIST is not in {}", args.data_dir.display()))?;
    note!("downloaded and verified: {}", written.join(", "));
    Ok(())
}

/// `mlp-cli download`: fetch what is missing, then check all four files.
pub fn download(args: &DataArgs) -> Result<()> {
    if data::missing_files(&args.data_dir).is_empty() {
        note!("{} already has all four files", args.data_dir.display());
    } else {
        fetch(args)?;
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
