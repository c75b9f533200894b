//! `--checkpoint DIR` and `--resume DIR`: the run's state written after every epoch
//! (`mlp_core::checkpoint`), and a run that goes on from the last one as if it had not stopped.

use std::path::Path;

use anyhow::{Context, Result, bail};
use mlp_core::atomic::check_writable;
use mlp_core::checkpoint::{self, Checkpoint};
use mlp_core::train::EpochMetrics;
use mlp_core::{Model, ModelInfo, Parameters};

use crate::args::TrainArgs;
use crate::session::Session;
use crate::settings::Settings;
use crate::train::run_info;

/// Where the run writes a checkpoint after each epoch: --checkpoint DIR, else the --resume DIR
/// it goes on from.
pub fn checkpoint_dir(args: &TrainArgs) -> Option<&Path> {
    args.checkpoint.as_deref().or(args.resume.as_deref())
}

/// Makes `dir` where it is missing, and checks that its checkpoint file can be written.
pub fn check_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("--checkpoint: cannot make the directory {}", dir.display()))?;
    check_writable(&checkpoint::file_in(dir)).context("--checkpoint")?;
    Ok(())
}

/// What a checkpoint records of the run: the saved model's description, and the epochs the
/// whole run has (the schedule depends on them).
fn checkpoint_info(args: &TrainArgs, settings: &Settings, session: &Session) -> ModelInfo {
    let mut info = run_info(args, settings, session);
    info.options.remove("init_from");
    let epochs = settings.epochs.to_string();
    info.options.insert("run_epochs".into(), epochs);
    info
}

/// The checkpoint in `dir`, checked against this run (the same network and options, and
/// epochs left to train); its parameters and optimiser state are put into the session's
/// backend.
pub fn resume(
    dir: &Path,
    args: &TrainArgs,
    settings: &Settings,
    session: &mut Session,
) -> Result<Checkpoint> {
    let path = checkpoint::file_in(dir);
    let checkpoint = Checkpoint::load(&path).context("--resume")?;
    let ours = checkpoint_info(args, settings, session);
    let theirs = &checkpoint.model.info;
    let mut differences = Vec::new();
    let sizes = checkpoint.model.parameters.layer_sizes();
    if sizes != settings.layers {
        differences.push(format!("layers {} (checkpoint {sizes})", settings.layers));
    }
    for (key, mine, its) in [
        (
            "activation",
            ours.activation.to_string(),
            theirs.activation.to_string(),
        ),
        ("output", ours.output.to_string(), theirs.output.to_string()),
        ("seed", ours.seed.to_string(), theirs.seed.to_string()),
    ] {
        if mine != its {
            differences.push(format!("{key} {mine} (checkpoint {its})"));
        }
    }
    let keys = ours.options.keys().chain(theirs.options.keys());
    for key in keys.collect::<std::collections::BTreeSet<_>>() {
        let (mine, its) = (ours.options.get(key), theirs.options.get(key));
        if mine != its {
            let show = |v: Option<&String>| v.map_or("not given".to_string(), Clone::clone);
            differences.push(format!("{key} {} (checkpoint {})", show(mine), show(its)));
        }
    }
    if !differences.is_empty() {
        bail!(
            "--resume {}: this run's options differ from those of the run that wrote the \
             checkpoint: {}; give the same options to go on from it",
            dir.display(),
            differences.join(", ")
        );
    }
    if checkpoint.epoch >= settings.epochs {
        bail!(
            "--resume {}: the checkpoint is after epoch {} of {}: nothing is left to train",
            dir.display(),
            checkpoint.epoch,
            settings.epochs
        );
    }
    session
        .backend
        .set_parameters(&checkpoint.model.parameters)?;
    session.backend.set_optimiser_state(&checkpoint.optimiser)?;
    Ok(checkpoint)
}

/// The run as it stands after `epoch`.
pub struct Progress<'a> {
    pub epoch: usize,
    pub parameters: &'a Parameters,
    pub history: &'a [EpochMetrics],
    pub best: Option<(usize, f64, Option<Parameters>)>,
}

/// Writes the checkpoint of the run after `progress.epoch` into `dir`, replacing the last one
/// atomically.
pub fn write(
    dir: &Path,
    args: &TrainArgs,
    settings: &Settings,
    session: &mut Session,
    progress: Progress<'_>,
) -> Result<()> {
    let mut info = checkpoint_info(args, settings, session);
    info.epochs = session.epochs_before + progress.epoch;
    let checkpoint = Checkpoint {
        model: Model {
            parameters: progress.parameters.clone(),
            info,
        },
        optimiser: session.backend.optimiser_state()?,
        epoch: progress.epoch,
        history: progress.history.to_vec(),
        best: progress.best,
    };
    checkpoint
        .save(&checkpoint::file_in(dir))
        .context("cannot write the checkpoint")?;
    Ok(())
}
