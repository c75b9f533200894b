//! `mlp-cli train`: a run with progress, a line per epoch, optional JSON-lines metrics, plots
//! and a saved model.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::train::{EpochMetrics, batches, run_epoch};
use mlp_core::{Model, ModelInfo};

use crate::args::TrainArgs;
use crate::plots::Plots;
use crate::progress::Progress;
use crate::session::Session;

pub fn run(args: &TrainArgs) -> Result<()> {
    let net = &args.network;
    let mut metrics_file = match &args.metrics {
        Some(path) => Some(BufWriter::new(File::create(path).with_context(|| {
            format!("cannot create the metrics file {}", path.display())
        })?)),
        None => None,
    };
    let mut session = Session::new(net)?;
    let backend_name = session.backend.name();
    let mut progress = Progress::new(args.quiet, args.epochs);
    progress.say(&format!(
        "backend: {backend_name}\nnetwork: {}  batch {}  lr {}  seed {}  training images {}{}",
        net.layers,
        net.batch_size,
        net.lr,
        net.seed,
        session.train_rows,
        match &net.init {
            Some(path) => format!("  starting from {}", path.display()),
            None => String::new(),
        }
    ));
    let batch_count = batches(session.train_rows, net.batch_size).count();
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut last_evaluation = None;
    for epoch in 1..=args.epochs {
        progress.start_epoch(epoch, batch_count);
        let (m, evaluation) = run_epoch(
            session.backend.as_mut(),
            session.train_rows,
            net.batch_size,
            epoch,
            &mut || progress.batch_done(),
        )?;
        progress.end_epoch(&format!(
            "epoch {:>3}/{}  train loss {:.5}  val loss {:.5}  val accuracy {:6.2}%  {:.2} s",
            m.epoch,
            args.epochs,
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
            info: model_info(args, session.epochs_before, evaluation.accuracy()),
        };
        model.save(path)?;
        println!("saved the model to {}", path.display());
    }
    if let Some(dir) = &args.plots {
        let plots = Plots::in_dir(dir);
        plots.draw(
            &history,
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

/// What the saved model records of this run.
fn model_info(args: &TrainArgs, epochs_before: usize, accuracy: f64) -> ModelInfo {
    let net = &args.network;
    let mut info = ModelInfo::seed(net.seed);
    info.epochs = epochs_before + args.epochs;
    info.accuracy = Some(accuracy);
    let mut record = |key: &str, value: String| info.options.insert(key.into(), value);
    record("lr", net.lr.to_string());
    record("batch_size", net.batch_size.to_string());
    record("reduction", "sum".into());
    record("optimiser", "gradient-descent".into());
    record("init", "normal(0,1)".into());
    if let Some(limit) = net.limit {
        record("limit", limit.to_string());
    }
    if let Some(path) = &net.init {
        record("init_from", path.display().to_string());
    }
    info
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
