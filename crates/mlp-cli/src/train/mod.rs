//! `mlp-cli train`: a run with progress, a line per epoch, optional JSON-lines metrics, plots
//! and a saved model.
//!
//! Nothing a run writes can be lost or half-written: every output path is checked before the
//! data is loaded, each file is written atomically, and a run that diverges stops with an
//! error, saving (with --save) the parameters of its last epoch whose numbers were finite.

use anyhow::{Context, Result, anyhow};
use mlp_core::atomic::write_atomically;
use mlp_core::checkpoint::Checkpoint;
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::train::{BestEpoch, EpochMetrics, TrainConfig, TrainError, batches, run_epoch};
use mlp_core::{Backend, Evaluation, Model, Parameters};
use std::sync::Arc;

use crate::args::TrainArgs;
use crate::console::{self, say};
use crate::plots::ClassNames;
use crate::progress::Progress;
use crate::resume;
use crate::session::{Prepared, Session, evaluate_on, prepare};
use crate::settings::Settings;
use crate::watch::{self, Watch};
pub(crate) use outputs::check_distinct;
pub use outputs::run_info;
use outputs::{check_outputs, draw_plots, save_model};

mod outputs;

pub fn run(args: &TrainArgs) -> Result<()> {
    if let Some(addr) = args.watch {
        watch::check_address(addr)?;
    }
    check_outputs(args)?;
    let net = &args.network;
    if args.early_stopping.is_some() && net.held_out().is_none() {
        return Err(anyhow!(
            "--early-stopping needs --validation N: stopping on the test set would choose the \
             model on the images it is then judged on"
        ));
    }
    // Held until the run ends: no other run writes into the same directory meanwhile.
    let _checkpoint_dir = resume::open_dir(args)?;
    let Prepared {
        settings,
        data,
        initial,
    } = prepare(net, args.epochs)?;
    let mut session = Session::new(net, &settings, data, initial)?;
    let mut run = Run::new(args.early_stopping);
    run.watch = start_watch(args, &settings, &session)?;
    if let Some(dir) = &args.resume {
        let checkpoint = resume::resume(dir, args, &settings, &mut session)?;
        run.resume_from(checkpoint, session.test.is_some(), &session.backend.name());
    }
    let mut progress = Progress::new(args.quiet, settings.epochs);
    progress.say(&format!(
        "backend: {}; validation on {}\n{}\ntraining images {}{}",
        session.backend.name(),
        session.validation_name(),
        settings.describe(),
        session.train_rows,
        match &net.init {
            Some(path) => format!(", starting from {}", path.display()),
            None => String::new(),
        },
    ));
    if let Some(dir) = &args.resume {
        say!(
            "resuming after epoch {} of {} from {}",
            run.history.len(),
            settings.epochs,
            dir.display()
        );
    }
    let trained = train_epochs(args, &settings, &mut session, &mut progress, &mut run);
    if let Err(error) = trained {
        let error = diverged(args, &settings, &session, &run, error);
        if let Some(watch) = &run.watch {
            watch.publish_end(&format!("failed: {error:#}"));
        }
        return Err(error);
    }
    let finished = finish(args, &settings, &session, &mut run, &mut progress);
    if let Some(watch) = &run.watch {
        watch.publish_end("finished");
    }
    finished
}

/// With --watch: the page's server, started and told what the run is.
fn start_watch(
    args: &TrainArgs,
    settings: &Settings,
    session: &Session,
) -> Result<Option<Arc<Watch>>> {
    let Some(addr) = args.watch else {
        return Ok(None);
    };
    let mut info = run_info(args, settings, session);
    info.epochs = session.epochs_before;
    let save = args.save.clone().map(|path| (path, info));
    let (watch, bound) = Watch::start(addr, save)?;
    say!("watch the run at http://{bound}/");
    let config = settings.train_config();
    watch.publish_run(serde_json::json!({
        "backend": session.backend.name(),
        "settings": settings.describe(),
        "layers": settings.layers.as_slice(),
        "epochs": settings.epochs,
        "batches": batches(session.train_rows, config.batch_size).count(),
        "training_images": session.train_rows,
        "validation": session.validation_name(),
        "class_names": session.class_names,
        "can_save": args.save.is_some(),
    }));
    Ok(Some(watch))
}

/// Stop, pressed on the watch page: the run ends as at Ctrl-C, between two batches, so that
/// no file is being written; the viewers are told first.
fn stop_from_page(watch: &Watch) -> ! {
    watch.publish_end("stopped from the page");
    mlp_core::atomic::remove_partial_files();
    std::process::exit(130);
}

/// After the last epoch: the summary, the model chosen and its test figures, the confusion
/// matrix, and what --save and --plots keep.
fn finish(
    args: &TrainArgs,
    settings: &Settings,
    session: &Session,
    run: &mut Run,
    progress: &mut Progress,
) -> Result<()> {
    print_summary(&run.history);
    let Some(last_evaluation) = run.last_evaluation.take() else {
        return Ok(());
    };
    let chosen = choose_model(args, settings, session, run, last_evaluation)?;
    let test = session.test.as_ref().unwrap_or(&session.validation);
    let confusion = ConfusionMatrix::new(
        chosen.evaluation.classes,
        &test.labels,
        &chosen.evaluation.predictions,
    );
    progress.say(&format!(
        "confusion matrix on {}:\n{confusion}",
        chosen.described
    ));
    if let (Some(path), Some(parameters)) = (&args.save, chosen.parameters) {
        let accuracy = Some(chosen.evaluation.accuracy());
        save_model(args, settings, session, parameters, chosen.epoch, accuracy)?;
        say!(
            "saved the model of epoch {} to {}",
            chosen.epoch,
            path.display()
        );
    }
    if let Some(dir) = &args.plots {
        let names = ClassNames(session.class_names.as_deref());
        draw_plots(
            dir,
            settings,
            session,
            &run.history,
            &chosen.evaluation,
            (&confusion, names),
        )?;
    }
    Ok(())
}

/// The error of a run that diverged, after saving (with --save) the parameters of its last
/// epoch whose numbers were finite; any other error as it is.
fn diverged(
    args: &TrainArgs,
    settings: &Settings,
    session: &Session,
    run: &Run,
    error: anyhow::Error,
) -> anyhow::Error {
    let diverged = matches!(
        error.downcast_ref::<TrainError>(),
        Some(TrainError::Diverged { .. } | TrainError::NonFiniteWeights { .. })
    );
    if !diverged {
        return error;
    }
    let kept = match (&args.save, &run.last_finite) {
        (Some(path), Some((epoch, parameters))) => {
            let saved = save_model(args, settings, session, parameters.clone(), *epoch, None);
            if let Err(failure) = saved {
                return failure.context(error.to_string());
            }
            format!(
                "saved the parameters after epoch {epoch}, the last whose losses and weights \
                 were finite, to {}",
                path.display()
            )
        }
        (Some(_), None) => "no epoch ended with finite losses, so no model was saved".into(),
        (None, _) => return error,
    };
    anyhow!("{error}\n{kept}")
}

/// The model a run ends with, and its figures on the test set.
struct Chosen {
    /// Its epoch of the run, from 1.
    epoch: usize,
    /// Its parameters, where --save or the test evaluation needed them.
    parameters: Option<Parameters>,
    /// On the test set.
    evaluation: Evaluation,
    /// Which set and model the evaluation is of, for the reader.
    described: String,
}

/// Without --validation, the last epoch's model, already evaluated on the test set (the
/// validation set). With it, the epoch of lowest validation loss, evaluated on the test set
/// once, now; a metrics line records that figure.
fn choose_model(
    args: &TrainArgs,
    settings: &Settings,
    session: &Session,
    run: &mut Run,
    last_evaluation: Evaluation,
) -> Result<Chosen> {
    let (Some(test), Some((epoch, val_loss))) = (&session.test, run.best.best()) else {
        return Ok(Chosen {
            epoch: run.history.len(),
            parameters: run.last_finite.take().map(|(_, parameters)| parameters),
            evaluation: last_evaluation,
            described: "the validation set".into(),
        });
    };
    let parameters = run.best_parameters.take().ok_or_else(|| {
        anyhow!("the parameters of epoch {epoch}, the best, were not kept: no model to test")
    })?;
    let evaluation = evaluate_on(&args.network, settings, parameters.clone(), test)?;
    say!(
        "test set: loss {:.5}  accuracy {:.2}% ({} of {}), the model of epoch {epoch}, chosen \
         for its lowest validation loss ({val_loss:.5})",
        evaluation.loss(),
        100.0 * evaluation.accuracy(),
        evaluation.correct,
        test.len()
    );
    if let Some(path) = &args.metrics {
        let line = serde_json::json!({
            "set": "test",
            "epoch": epoch,
            "chosen_by": "lowest validation loss",
            "test_loss": evaluation.loss(),
            "test_accuracy": evaluation.accuracy(),
        });
        run.metrics.push_str(&format!("{line}\n"));
        write_atomically(path, run.metrics.as_bytes()).context("cannot write the metrics file")?;
    }
    Ok(Chosen {
        epoch,
        parameters: Some(parameters),
        evaluation,
        described: format!("the test set (the model of epoch {epoch})"),
    })
}

/// What the epochs so far have produced.
struct Run {
    history: Vec<EpochMetrics>,
    last_evaluation: Option<Evaluation>,
    /// With --save: the parameters after the last epoch whose parameters were all finite,
    /// and its number.
    last_finite: Option<(usize, Parameters)>,
    /// The epoch of lowest validation loss, and with --validation its parameters.
    best: BestEpoch,
    best_parameters: Option<Parameters>,
    /// The metrics file's lines so far.
    metrics: String,
    /// With --watch: the page's side of the run.
    watch: Option<Arc<Watch>>,
}

impl Run {
    fn new(patience: Option<usize>) -> Self {
        Self {
            history: Vec::new(),
            last_evaluation: None,
            last_finite: None,
            best: BestEpoch::new(patience),
            best_parameters: None,
            metrics: String::new(),
            watch: None,
        }
    }

    /// The run as `checkpoint` left it; `held_out` says whether it validates on held-out
    /// images (and so kept the best epoch's parameters).
    fn resume_from(&mut self, checkpoint: Checkpoint, held_out: bool, backend: &str) {
        for m in &checkpoint.history {
            self.metrics.push_str(&metrics_line(m, held_out, backend));
        }
        if let Some((epoch, loss, parameters)) = checkpoint.best {
            self.best.resume(epoch, loss);
            self.best_parameters = parameters;
        }
        self.last_finite = Some((checkpoint.epoch, checkpoint.model.parameters));
        self.history = checkpoint.history;
    }
}

/// An epoch's line of the metrics file.
fn metrics_line(m: &EpochMetrics, held_out: bool, backend: &str) -> String {
    let line = serde_json::json!({
        "epoch": m.epoch,
        "train_loss": m.train_loss,
        "val_loss": m.val_loss,
        "val_accuracy": m.val_accuracy,
        "val_set": if held_out { "held-out" } else { "test" },
        "seconds": m.seconds,
        "backend": backend,
    });
    format!("{line}\n")
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
    let held_out = session.test.is_some();
    for epoch in run.history.len() + 1..=config.epochs {
        progress.start_epoch(epoch, batch_count);
        let mut batch = 0;
        let watch = run.watch.clone();
        let (m, evaluation) = run_epoch(
            session.backend.as_mut(),
            session.train_rows,
            &config,
            epoch,
            &mut |backend| {
                progress.batch_done();
                batch += 1;
                if let Some(watch) = &watch {
                    watched_batch(watch, backend, (epoch, batch, batch_count));
                }
            },
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
            run.metrics
                .push_str(&metrics_line(&m, held_out, &backend_name));
            write_atomically(path, run.metrics.as_bytes())
                .context("cannot write the metrics file")?;
        }
        let improved = run.best.record(epoch, m.val_loss);
        let keep_best = improved && held_out;
        let checkpoint_dir = resume::checkpoint_dir(args);
        run.history.push(m);
        run.last_evaluation = Some(evaluation);
        // One read of the parameters serves the watch page and what the run keeps: on the
        // GPU it is a read-back.
        let keeps = args.save.is_some() || keep_best || checkpoint_dir.is_some();
        if keeps || run.watch.is_some() {
            let parameters = finite_parameters(session, &config, epoch)?;
            if let Some(watch) = &run.watch {
                publish_epoch(watch, settings, session, run, parameters.clone());
            }
            if keep_best {
                run.best_parameters = Some(parameters.clone());
            }
            if let Some(dir) = checkpoint_dir {
                let best = run
                    .best
                    .best()
                    .map(|(epoch, loss)| (epoch, loss, run.best_parameters.clone()));
                let progress = resume::Progress {
                    epoch,
                    parameters: &parameters,
                    history: &run.history,
                    best,
                };
                resume::write(dir, args, settings, session, progress)?;
            }
            run.last_finite = Some((epoch, parameters));
        }
        if run.best.should_stop(epoch) {
            let (best, _) = run.best.best().expect("an epoch was recorded");
            progress.say(&format!(
                "early stopping after epoch {epoch}: the validation loss has not improved \
                 since epoch {best}"
            ));
            break;
        }
        let saves_something = args.save.is_some()
            || args.metrics.is_some()
            || args.plots.is_some()
            || resume::checkpoint_dir(args).is_some();
        if console::stdout_closed() && !saves_something {
            // Nobody reads the rest, and nothing is kept: the run is over.
            break;
        }
    }
    Ok(())
}

/// The epoch just recorded in `run`, with its `parameters`, to the watch page's viewers.
fn publish_epoch(
    watch: &Watch,
    settings: &Settings,
    session: &Session,
    run: &Run,
    parameters: Parameters,
) {
    let (Some(metrics), Some(evaluation)) = (run.history.last(), &run.last_evaluation) else {
        return;
    };
    let confusion = ConfusionMatrix::new(
        evaluation.classes,
        &session.validation.labels,
        &evaluation.predictions,
    );
    let model = Model {
        parameters,
        info: settings.model_info(),
    };
    watch.publish_epoch(metrics, &confusion, model);
}

/// After a batch of a watched run: every [`watch::BATCH_EVERY`] batches the loss so far in the
/// epoch is published, and Stop, where a viewer pressed it, ends the run.
fn watched_batch(
    watch: &Watch,
    backend: &mut dyn Backend,
    (epoch, batch, batches): (usize, usize, usize),
) {
    if batch % watch::BATCH_EVERY == 0 {
        // A loss that cannot be read now is read at the epoch's end, where its error counts.
        if let Ok(loss) = backend.peek_train_loss() {
            watch.publish_batch(epoch, batch, batches, loss.mean());
        }
    }
    if watch.stop_requested() {
        stop_from_page(watch);
    }
}

/// The backend's parameters after `epoch`, refused where one is not finite: what is kept must
/// be, and the losses do not always show a NaN weight (max(s, 0) of a ReLU turns a NaN sum
/// into 0).
fn finite_parameters(
    session: &mut Session,
    config: &TrainConfig,
    epoch: usize,
) -> Result<Parameters> {
    let parameters = session.backend.parameters()?;
    if !parameters.is_finite() {
        let learning_rate = config.learning_rate_of(epoch);
        return Err(TrainError::NonFiniteWeights {
            epoch,
            learning_rate,
        }
        .into());
    }
    Ok(parameters)
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
