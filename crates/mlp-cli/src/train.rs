//! `mlp-cli train`: a run with progress, a line per epoch, optional JSON-lines metrics, plots
//! and a saved model.
//!
//! Nothing a run writes can be lost or half-written: every output path is checked before the
//! data is loaded, each file is written atomically, and a run that diverges stops with an
//! error, saving (with --save) the parameters of its last epoch whose numbers were finite.

use std::path::Path;

use anyhow::{Context, Result, anyhow};
use mlp_core::atomic::{OutputError, check_writable, resolve_target, write_atomically};
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::train::{EpochMetrics, TrainError, batches, run_epoch};
use mlp_core::{Evaluation, Model, Output, Parameters};

use crate::args::TrainArgs;
use crate::console::{self, say};
use crate::plots::Plots;
use crate::progress::Progress;
use crate::session::Session;
use crate::settings::Settings;

pub fn run(args: &TrainArgs) -> Result<()> {
    check_outputs(args)?;
    let net = &args.network;
    let settings = Settings::resolve(net, args.epochs)?;
    let mut session = Session::new(net, &settings)?;
    let mut progress = Progress::new(args.quiet, settings.epochs);
    progress.say(&format!(
        "backend: {}\n{}\ntraining images {}{}",
        session.backend.name(),
        settings.describe(),
        session.train_rows,
        match &net.init {
            Some(path) => format!(", starting from {}", path.display()),
            None => String::new(),
        }
    ));
    let mut run = Run::default();
    let trained = train_epochs(args, &settings, &mut session, &mut progress, &mut run);
    if let Err(error) = trained {
        let diverged = matches!(
            error.downcast_ref::<TrainError>(),
            Some(TrainError::Diverged { .. } | TrainError::NonFiniteWeights { .. })
        );
        if !diverged {
            return Err(error);
        }
        let kept = match (&args.save, &run.last_finite) {
            (Some(path), Some((epoch, parameters))) => {
                save_model(args, &settings, &session, parameters.clone(), *epoch, None)
                    .with_context(|| error.to_string())?;
                format!(
                    "saved the parameters after epoch {epoch}, the last whose losses and \
                     weights were finite, to {}",
                    path.display()
                )
            }
            (Some(_), None) => "no epoch ended with finite losses, so no model was saved".into(),
            (None, _) => return Err(error),
        };
        return Err(anyhow!("{error}\n{kept}"));
    }
    print_summary(&run.history);
    let Some(evaluation) = run.last_evaluation else {
        return Ok(());
    };
    let confusion = ConfusionMatrix::new(
        evaluation.classes,
        &session.validation.labels,
        &evaluation.predictions,
    );
    progress.say(&format!(
        "confusion matrix on the validation set:\n{confusion}"
    ));
    if let (Some(path), Some((_, parameters))) = (&args.save, run.last_finite.take()) {
        let accuracy = Some(evaluation.accuracy());
        save_model(
            args,
            &settings,
            &session,
            parameters,
            settings.epochs,
            accuracy,
        )?;
        say!("saved the model to {}", path.display());
    }
    if let Some(dir) = &args.plots {
        draw_plots(
            dir,
            &settings,
            &session,
            &run.history,
            &evaluation,
            &confusion,
        )?;
    }
    Ok(())
}

/// What the epochs so far have produced.
#[derive(Default)]
struct Run {
    history: Vec<EpochMetrics>,
    last_evaluation: Option<Evaluation>,
    /// With --save: the parameters after the last epoch whose parameters were all finite,
    /// and its number.
    last_finite: Option<(usize, Parameters)>,
    /// The metrics file's lines so far.
    metrics: String,
}

/// Every epoch of the run, each reported as it ends.
fn train_epochs(
    args: &TrainArgs,
    settings: &Settings,
    session: &mut Session,
    progress: &mut Progress,
    run: &mut Run,
) -> Result<()> {
    let config = settings.train_config();
    let batch_count = batches(session.train_rows, config.batch_size).count();
    let backend_name = session.backend.name();
    for epoch in 1..=config.epochs {
        progress.start_epoch(epoch, batch_count);
        let (m, evaluation) = run_epoch(
            session.backend.as_mut(),
            session.train_rows,
            &config,
            epoch,
            &mut || progress.batch_done(),
        )?;
        progress.end_epoch(&format!(
            "epoch {:>3}/{}  train loss {:.5}  val loss {:.5}  val accuracy {:6.2}%  {:.2} s",
            m.epoch,
            config.epochs,
            m.train_loss,
            m.val_loss,
            100.0 * m.val_accuracy,
            m.seconds
        ));
        if let Some(path) = &args.metrics {
            let line = serde_json::json!({
                "epoch": m.epoch,
                "train_loss": m.train_loss,
                "val_loss": m.val_loss,
                "val_accuracy": m.val_accuracy,
                "seconds": m.seconds,
                "backend": backend_name,
            });
            run.metrics.push_str(&format!("{line}\n"));
            write_atomically(path, run.metrics.as_bytes())
                .context("cannot write the metrics file")?;
        }
        if args.save.is_some() {
            // What --save keeps must be finite, and the losses do not always show a NaN
            // weight: max(s, 0) of a ReLU turns a NaN sum into 0. So the parameters
            // themselves are checked.
            let parameters = session.backend.parameters()?;
            if !parameters.is_finite() {
                let learning_rate = config.learning_rate_of(epoch);
                return Err(TrainError::NonFiniteWeights {
                    epoch,
                    learning_rate,
                }
                .into());
            }
            run.last_finite = Some((epoch, parameters));
        }
        run.history.push(m);
        run.last_evaluation = Some(evaluation);
        let saves_something = args.save.is_some() || args.metrics.is_some() || args.plots.is_some();
        if console::stdout_closed() && !saves_something {
            // Nobody reads the rest, and nothing is kept: the run is over.
            break;
        }
    }
    Ok(())
}

/// Refuses, before any work, a run whose results could not be written.
fn check_outputs(args: &TrainArgs) -> Result<()> {
    if let Some(path) = &args.save {
        check_writable(path).context("--save")?;
    }
    if let Some(path) = &args.metrics {
        check_writable(path).context("--metrics")?;
    }
    if let Some(dir) = &args.plots {
        check_plots_dir(dir).context("--plots")?;
    }
    if let (Some(save), Some(metrics)) = (&args.save, &args.metrics) {
        // Both were just checked, so both resolve; one file for both would lose one of them.
        if resolve_target(save)? == resolve_target(metrics)? {
            return Err(anyhow!(
                "--save {} and --metrics {} are the same file: give each its own",
                save.display(),
                metrics.display()
            ));
        }
    }
    Ok(())
}

/// The plots can be drawn in `dir`: it is a directory whose four files can be written, or it
/// does not exist yet and can be made in the nearest directory above it that does.
fn check_plots_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        let plots = Plots::in_dir(dir);
        for file in [
            &plots.loss,
            &plots.accuracy,
            &plots.digits,
            &plots.confusion,
        ] {
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
fn save_model(
    args: &TrainArgs,
    settings: &Settings,
    session: &Session,
    parameters: Parameters,
    epochs: usize,
    accuracy: Option<f64>,
) -> Result<()> {
    let net = &args.network;
    let mut info = settings.model_info();
    info.epochs = session.epochs_before + epochs;
    info.accuracy = accuracy;
    if let Some(limit) = net.limit {
        info.options.insert("limit".into(), limit.to_string());
    }
    if let Some(path) = &net.init {
        info.options
            .insert("init_from".into(), path.display().to_string());
    }
    let path = args.save.as_deref().expect("--save was given");
    Ok(Model { parameters, info }.save(path)?)
}

fn draw_plots(
    dir: &Path,
    settings: &Settings,
    session: &Session,
    history: &[EpochMetrics],
    evaluation: &Evaluation,
    confusion: &ConfusionMatrix,
) -> Result<()> {
    let plots = Plots::in_dir(dir);
    let loss = match settings.hyper.output {
        Output::SigmoidMse => "mean squared error",
        Output::SoftmaxCrossEntropy => "cross-entropy",
    };
    plots.draw(
        history,
        loss,
        &session.validation,
        &evaluation.predictions,
        confusion,
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

fn print_summary(history: &[EpochMetrics]) {
    let (Some(last), Some(best)) = (
        history.last(),
        history
            .iter()
            .max_by(|a, b| a.val_accuracy.total_cmp(&b.val_accuracy)),
    ) else {
        return;
    };
    let total: f64 = history.iter().map(|m| m.seconds).sum();
    say!(
        "summary: {} epochs in {:.1} s ({:.2} s/epoch); final val accuracy {:.2}% (loss {:.5}); best {:.2}% at epoch {}",
        history.len(),
        total,
        total / history.len() as f64,
        100.0 * last.val_accuracy,
        last.val_loss,
        100.0 * best.val_accuracy,
        best.epoch
    );
}
