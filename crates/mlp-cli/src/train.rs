//! `mlp-cli train`: a run with progress, a line per epoch, optional JSON-lines metrics, plots
//! and a saved model.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::train::{EpochMetrics, batches, run_epoch};
use mlp_core::{Model, Output};

use crate::args::TrainArgs;
use crate::plots::Plots;
use crate::progress::Progress;
use crate::session::Session;
use crate::settings::Settings;

pub fn run(args: &TrainArgs) -> Result<()> {
    let net = &args.network;
    let mut metrics_file = match &args.metrics {
        Some(path) => Some(BufWriter::new(File::create(path).with_context(|| {
            format!("cannot create the metrics file {}", path.display())
        })?)),
        None => None,
    };
    let settings = Settings::resolve(net, args.epochs)?;
    let mut session = Session::new(net, &settings)?;
    let backend_name = session.backend.name();
    let mut progress = Progress::new(args.quiet, settings.epochs);
    progress.say(&format!(
        "backend: {backend_name}\n{}\ntraining images {}{}",
        settings.describe(),
        session.train_rows,
        match &net.init {
            Some(path) => format!(", starting from {}", path.display()),
            None => String::new(),
        }
    ));
    let config = settings.train_config();
    let batch_count = batches(session.train_rows, config.batch_size).count();
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut last_evaluation = None;
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
        if let (Some(file), Some(path)) = (metrics_file.as_mut(), &args.metrics) {
            let line = serde_json::json!({
                "epoch": m.epoch,
                "train_loss": m.train_loss,
                "val_loss": m.val_loss,
                "val_accuracy": m.val_accuracy,
                "seconds": m.seconds,
                "backend": backend_name,
            });
            writeln!(file, "{line}")
                .and_then(|()| file.flush())
                .with_context(|| format!("cannot write the metrics file {}", path.display()))?;
        }
        history.push(m);
        last_evaluation = Some(evaluation);
    }
    print_summary(&history);
    let Some(evaluation) = last_evaluation else {
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
    if let Some(path) = &args.save {
        let model = Model {
            parameters: session.backend.parameters()?,
            info: {
                let mut info = settings.model_info();
                info.epochs = session.epochs_before + config.epochs;
                info.accuracy = Some(evaluation.accuracy());
                if let Some(limit) = net.limit {
                    info.options.insert("limit".into(), limit.to_string());
                }
                if let Some(path) = &net.init {
                    info.options
                        .insert("init_from".into(), path.display().to_string());
                }
                info
            },
        };
        model.save(path)?;
        println!("saved the model to {}", path.display());
    }
    if let Some(dir) = &args.plots {
        let plots = Plots::in_dir(dir);
        let loss = match settings.hyper.output {
            Output::SigmoidMse => "mean squared error",
            Output::SoftmaxCrossEntropy => "cross-entropy",
        };
        plots.draw(
            &history,
            loss,
            &session.validation,
            &evaluation.predictions,
            &confusion,
        )?;
        println!(
            "plots: {}, {}, {}, {}",
            plots.loss.display(),
            plots.accuracy.display(),
            plots.digits.display(),
            plots.confusion.display()
        );
    }
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
    println!(
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
