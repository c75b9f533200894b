//! `--checkpoint DIR` and `--resume DIR`: the run's state written after every epoch
//! (`mlp_core::checkpoint`), and a run that goes on from the last one as if it had not stopped.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use mlp_core::atomic::check_writable;
use mlp_core::checkpoint::{self, Checkpoint};
use mlp_core::input::same_file;
use mlp_core::train::{BestEpoch, EpochMetrics};
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

/// The option that names [`checkpoint_dir`], for messages.
pub fn checkpoint_option(args: &TrainArgs) -> &'static str {
    if args.checkpoint.is_some() {
        "--checkpoint"
    } else {
        "--resume"
    }
}

/// The checkpoint directory of a run, locked for it: another run given the same directory is
/// refused while this one holds it (an advisory lock, released when the process ends however
/// it ends).
pub struct LockedDir {
    _lock: File,
}

/// The name of the lock file in a checkpoint directory; it holds the locking run's pid. It is
/// never removed: a run that removed it could leave a later run locking a new file of the same
/// name while a third still holds the old one.
const LOCK_FILE: &str = ".lock";

/// Opens the run's checkpoint directory before any work: `--resume DIR` must be a directory
/// that holds a checkpoint; the directory written to is made where missing, locked for the
/// run, cleared of temporary files that killed runs left, and must not hold another run's
/// checkpoint; its checkpoint file must be writable.
pub fn open_dir(args: &TrainArgs) -> Result<Option<LockedDir>> {
    if let Some(dir) = &args.resume {
        check_resumable(dir)?;
    }
    let Some(dir) = checkpoint_dir(args) else {
        return Ok(None);
    };
    let option = checkpoint_option(args);
    if dir.exists() && !dir.is_dir() {
        bail!(
            "{option} {}: it is a file, not a directory; give a directory for the checkpoint",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{option}: cannot make the directory {}", dir.display()))?;
    let lock = lock(dir, option)?;
    let file = checkpoint::file_in(dir);
    let resumes_here = args.resume.as_deref().is_some_and(|r| same_file(r, dir));
    if file.exists() && !resumes_here {
        bail!(
            "{option} {}: it holds the checkpoint of another run; give `--resume {}` to go on \
             from it, or another directory",
            dir.display(),
            dir.display()
        );
    }
    // Also removes the temporary files that killed runs left (the directory is ours now).
    check_writable(&file).context(option)?;
    Ok(Some(LockedDir { _lock: lock }))
}

/// `--resume DIR` names a directory with a checkpoint in it; nothing is made.
fn check_resumable(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        let what = if dir.exists() {
            "it is not a directory"
        } else {
            "no such directory"
        };
        bail!(
            "--resume {}: {what}; give the directory that --checkpoint wrote",
            dir.display()
        );
    }
    let file = checkpoint::file_in(dir);
    if !file.exists() {
        bail!(
            "--resume {}: it holds no checkpoint ({} is missing)",
            dir.display(),
            file.display()
        );
    }
    Ok(())
}

/// Takes the lock of checkpoint directory `dir`, refusing where another run holds it. A
/// `--resume` run writes where it reads: where it cannot write there, the message says how
/// to go on writing elsewhere.
fn lock(dir: &Path, option: &str) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path);
    let mut file = match opened {
        Ok(file) => file,
        Err(e) if option == "--resume" => {
            return Err(e).with_context(|| {
                format!(
                    "--resume {}: cannot write checkpoints there; give --checkpoint ANOTHER_DIR \
                     to go on from it and write them there",
                    dir.display()
                )
            });
        }
        Err(e) => {
            return Err(e).with_context(|| format!("{option}: cannot write in {}", dir.display()));
        }
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = match holder.trim() {
                "" => "another run".to_string(),
                pid => format!("another run (pid {pid})"),
            };
            bail!(
                "{option} {}: {holder} is using this directory; wait for it to end, or give \
                 another directory",
                dir.display()
            );
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("{option}: cannot lock {}", path.display()));
        }
    }
    file.set_len(0)
        .and_then(|()| writeln!(file, "{}", std::process::id()))
        .with_context(|| format!("{option}: cannot write {}", path.display()))?;
    Ok(file)
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
    check_best_epoch(dir, args, &checkpoint, session.test.is_some())?;
    let named = || format!("--resume {}", path.display());
    session
        .backend
        .set_parameters(&checkpoint.model.parameters)
        .with_context(named)?;
    session
        .backend
        .set_optimiser_state(&checkpoint.optimiser)
        .with_context(named)?;
    Ok(checkpoint)
}

/// The checkpoint's best epoch against this run: a run that validates on held-out images
/// keeps the best epoch's parameters (they are the model it ends with), and a run that early
/// stopping ended has nothing left to train.
fn check_best_epoch(
    dir: &Path,
    args: &TrainArgs,
    checkpoint: &Checkpoint,
    held_out: bool,
) -> Result<()> {
    let Some((best, _, parameters)) = &checkpoint.best else {
        return Ok(());
    };
    if held_out && parameters.is_none() {
        bail!(
            "--resume {}: the checkpoint names epoch {best} as its best but holds no best.* \
             parameters, which a run that validates on held-out images keeps; it was not \
             written by such a run",
            dir.display()
        );
    }
    let mut stopping = BestEpoch::new(args.early_stopping);
    stopping.resume(*best, 0.0);
    if stopping.should_stop(checkpoint.epoch) {
        bail!(
            "--resume {}: early stopping ended that run after epoch {}, {} epochs after its best \
             (epoch {best}): nothing is left to train",
            dir.display(),
            checkpoint.epoch,
            checkpoint.epoch - best
        );
    }
    Ok(())
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
