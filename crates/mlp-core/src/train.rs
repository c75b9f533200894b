//! The training loop: epochs of consecutive batches in the file's order, driven through the
//! [`Backend`] interface only.

use std::ops::Range;
use std::time::Instant;

use crate::backend::{Backend, BackendError, Evaluation};

/// The run's hyper-parameters. [`TrainConfig::seed`] is SEED.md's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f32,
}

impl TrainConfig {
    pub fn seed() -> Self {
        Self {
            epochs: 30,
            batch_size: 100,
            learning_rate: 0.01,
        }
    }
}

/// One epoch's numbers, as SEED.md defines them.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    /// Counted from 1.
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    /// A fraction, 0..1.
    pub val_accuracy: f64,
    /// Wall time of the epoch: training and validation.
    pub seconds: f64,
}

/// Consecutive batches of `batch_size` rows over `rows` images; the last one may be shorter.
pub fn batches(rows: usize, batch_size: usize) -> impl Iterator<Item = Range<usize>> {
    (0..rows)
        .step_by(batch_size.max(1))
        .map(move |start| start..(start + batch_size).min(rows))
}

/// Trains one epoch, calling `on_batch` after each batch is handed to the backend (a GPU
/// backend may still be running it), then evaluates the validation set.
pub fn run_epoch(
    backend: &mut dyn Backend,
    train_rows: usize,
    batch_size: usize,
    epoch: usize,
    on_batch: &mut dyn FnMut(),
) -> Result<(EpochMetrics, Evaluation), BackendError> {
    let started = Instant::now();
    for rows in batches(train_rows, batch_size) {
        backend.train_batch(rows)?;
        on_batch();
    }
    let train_loss = backend.take_train_loss()?.mean();
    let evaluation = backend.evaluate()?;
    let metrics = EpochMetrics {
        epoch,
        train_loss,
        val_loss: evaluation.loss(),
        val_accuracy: evaluation.accuracy(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((metrics, evaluation))
}

/// Trains `config.epochs` epochs, calling `on_epoch` after each.
pub fn train(
    backend: &mut dyn Backend,
    train_rows: usize,
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochMetrics, &Evaluation),
) -> Result<Vec<EpochMetrics>, BackendError> {
    (1..=config.epochs)
        .map(|epoch| {
            let (metrics, evaluation) =
                run_epoch(backend, train_rows, config.batch_size, epoch, &mut || {})?;
            on_epoch(&metrics, &evaluation);
            Ok(metrics)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_rows_in_order_with_a_short_last_one() {
        let all: Vec<_> = batches(250, 100).collect();
        assert_eq!(all, vec![0..100, 100..200, 200..250]);
        assert_eq!(batches(60_000, 100).count(), 600);
    }
}
