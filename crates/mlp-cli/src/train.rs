//! `mlp-cli train`: the seed run, with a line per epoch and optional JSON-lines metrics.

use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{Context, Result};
use mlp_core::metrics::ConfusionMatrix;
use mlp_core::train::{EpochMetrics, run_epoch};

use crate::args::TrainArgs;
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
    println!(
        "backend: {backend_name}\nnetwork: {}  batch {}  lr {}  seed {}  training images {}",
        net.layers, net.batch_size, net.lr, net.seed, session.train_rows
    );
    let mut history: Vec<EpochMetrics> = Vec::new();
    let mut last_evaluation = None;
    for epoch in 1..=args.epochs {
        let (m, evaluation) = run_epoch(
            session.backend.as_mut(),
            session.train_rows,
            net.batch_size,
            epoch,
        )?;
        println!(
            "epoch {:>3}/{}  train loss {:.5}  val loss {:.5}  val accuracy {:6.2}%  {:.2} s",
            m.epoch,
            args.epochs,
            m.train_loss,
            m.val_loss,
            100.0 * m.val_accuracy,
            m.seconds
        );
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
    if let Some(evaluation) = last_evaluation {
        let confusion = ConfusionMatrix::new(
            evaluation.classes,
            &session.test_labels,
            &evaluation.predictions,
        );
        println!("confusion matrix on the validation set:\n{confusion}");
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
