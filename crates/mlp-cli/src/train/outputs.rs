//! What a training run writes besides its console lines: the checks of every output path
//! before any work, the saved model and what it records of the run, and the plots.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use mlp_core::atomic::{OutputError, check_writable};
use mlp_core::checkpoint;
use mlp_core::data::DataFormat;
use mlp_core::input::same_file;
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::train::EpochMetrics;
use mlp_core::{Evaluation, Model, ModelInfo, Output, Parameters};

use crate::args::TrainArgs;
use crate::console::say;
use crate::plots::{ClassNames, Plots};
use crate::session::Session;
use crate::settings::Settings;
use crate::{resume, tune};

/// Refuses, before any work, a run whose results could not be written, or whose outputs
/// would overwrite one another or a file the run reads.
pub(super) fn check_outputs(args: &TrainArgs) -> Result<()> {
    if let Some(path) = &args.save {
        check_writable(path).context("--save")?;
    }
    if let Some(path) = &args.metrics {
        check_writable(path).context("--metrics")?;
    }
    if let Some(dir) = &args.plots {
        check_plots_dir(dir).context("--plots")?;
    }
    if let Some(cache) = tune::cache_written(&args.network) {
        tune::check_cache(&cache)?;
    }
    check_distinct(&outputs(args), &inputs(args))
}

/// A file a command names, and the option that names it.
pub(crate) type Named = (String, PathBuf);

/// Every file the run writes.
fn outputs(args: &TrainArgs) -> Vec<Named> {
    let mut files = Vec::new();
    let mut add = |option: &str, path: &Path| files.push((option.to_string(), path.to_path_buf()));
    if let Some(path) = &args.save {
        add("--save", path);
    }
    if let Some(path) = &args.metrics {
        add("--metrics", path);
    }
    if let Some(dir) = &args.plots {
        for file in Plots::in_dir(dir).files() {
            add("--plots", file);
        }
    }
    if let Some(dir) = resume::checkpoint_dir(args) {
        add(resume::checkpoint_option(args), &checkpoint::file_in(dir));
    }
    if let Some(cache) = tune::cache_written(&args.network) {
        add("the kernel cache", &cache);
    }
    files
}

/// Every file the run reads.
fn inputs(args: &TrainArgs) -> Vec<Named> {
    let net = &args.network;
    let mut files = Vec::new();
    if let Some(path) = &net.init {
        files.push(("--init".to_string(), path.clone()));
    }
    let (dir, format) = (net.data.dir(), net.data.format());
    for name in ["train.csv", "test.csv"] {
        files.push(("the data set".to_string(), dir.join(name)));
    }
    for file in mlp_core::data::MNIST_FILES {
        let name = format.file_name(file);
        for name in [name.clone(), format!("{name}.gz")] {
            files.push(("the data set".to_string(), dir.join(name)));
        }
    }
    files
}

/// Refuses two outputs that are one file, and an output that is one of the inputs, naming
/// both options. A checkpoint that a resumed run goes on writing is its own input by design.
pub(crate) fn check_distinct(outputs: &[Named], inputs: &[Named]) -> Result<()> {
    for (i, (option, path)) in outputs.iter().enumerate() {
        for (other, other_path) in &outputs[..i] {
            if same_file(path, other_path) {
                bail!(
                    "{other} {} and {option} {} are the same file: give each its own",
                    other_path.display(),
                    path.display()
                );
            }
        }
        for (input, input_path) in inputs {
            if same_file(path, input_path) {
                bail!(
                    "{option} {} would overwrite {input} {}, which this command reads: give {option} \
                     another file",
                    path.display(),
                    input_path.display()
                );
            }
        }
    }
    Ok(())
}

/// The plots can be drawn in `dir`: it is a directory whose four files can be written, or it
/// does not exist yet and can be made in the nearest directory above it that does.
pub(super) fn check_plots_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        for file in Plots::in_dir(dir).files() {
            check_writable(file)?;
        }
        return Ok(());
    }
    if dir.exists() {
        return Err(anyhow!("{} is not a directory", dir.display()));
    }
    let mut missing = dir;
    loop {
        match missing.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !parent.exists() => {
                missing = parent;
            }
            _ => break,
        }
    }
    // The first directory to be made must be creatable where it goes: a file of its name
    // would be, and that is what check_writable tries without making anything.
    match check_writable(missing) {
        Err(OutputError::Io { source, .. }) => Err(anyhow!(
            "cannot make the directory {}: {source}",
            dir.display()
        )),
        other => Ok(other?),
    }
}

/// Saves `parameters` as the model this run made after `epochs` of its epochs.
pub(super) fn save_model(
    args: &TrainArgs,
    settings: &Settings,
    session: &Session,
    parameters: Parameters,
    epochs: usize,
    accuracy: Option<f64>,
) -> Result<()> {
    let mut info = run_info(args, settings, session);
    info.epochs = session.epochs_before + epochs;
    info.accuracy = accuracy;
    let path = args.save.as_deref().expect("--save was given");
    Ok(Model { parameters, info }.save(path)?)
}

/// What a saved model and a checkpoint record of the run: the settings' options and those
/// that shape the data and the epochs.
pub fn run_info(args: &TrainArgs, settings: &Settings, session: &Session) -> ModelInfo {
    let net = &args.network;
    let mut info = settings.model_info();
    let mut record = |key: &str, value: String| info.options.insert(key.into(), value);
    if let Some(limit) = net.limit {
        record("limit", limit.to_string());
    }
    if session.test.is_some() {
        record("validation", session.validation.len().to_string());
    }
    if let Some(patience) = args.early_stopping {
        record("early_stopping", patience.to_string());
    }
    if let Some(path) = &net.init {
        record("init_from", path.display().to_string());
    }
    let format = net.data.format();
    if format != DataFormat::Mnist {
        record("dataset", format.name().to_string());
    }
    if let DataFormat::Folders(pictures) = format {
        record("pictures", pictures.style.name().to_string());
        record("picture_side", pictures.side.to_string());
    }
    if let Some(names) = &session.class_names {
        record("class_names", names.join("; "));
    }
    info
}

pub(super) fn draw_plots(
    dir: &Path,
    settings: &Settings,
    session: &Session,
    history: &[EpochMetrics],
    evaluation: &Evaluation,
    (confusion, names): (&ConfusionMatrix, ClassNames),
) -> Result<()> {
    let plots = Plots::in_dir(dir);
    let loss = match settings.hyper.output {
        Output::SigmoidMse => "mean squared error",
        Output::SoftmaxCrossEntropy => "cross-entropy",
    };
    let validation = match session.test {
        Some(_) => format!("the {} held-out training images", session.validation.len()),
        None => format!("the {} test images", session.validation.len()),
    };
    let test = session.test.as_ref().unwrap_or(&session.validation);
    plots.draw(
        history,
        loss,
        &validation,
        test,
        &evaluation.predictions,
        (confusion, names),
    )?;
    say!(
        "plots: {}, {}, {}, {}",
        plots.loss.display(),
        plots.accuracy.display(),
        plots.digits.display(),
        plots.confusion.display()
    );
    Ok(())
}
