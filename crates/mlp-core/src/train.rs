//! The training loop: epochs of consecutive batches, in the file's order (the seed's) or
//! shuffled each epoch, driven through the [`Backend`] interface only.

use std::ops::Range;
use std::time::Instant;

use crate::backend::{Backend, BackendError, Evaluation};
use crate::options::Schedule;
use crate::rng::Rng;

/// Why a run of epochs stopped early.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(
        "training diverged in epoch {epoch} at step {step} of {steps}: the {which} loss is no \
         longer a finite number. The learning rate ({learning_rate}) is likely too large for this \
         network; try a smaller --lr"
    )]
    Diverged {
        epoch: usize,
        /// The first step whose loss was not finite, counted from 1.
        step: usize,
        steps: usize,
        /// "training" (a batch's loss) or "validation" (after the epoch's last step).
        which: &'static str,
        learning_rate: f32,
    },
    #[error(
        "training diverged in epoch {epoch}: a weight is no longer a finite number, though the \
         losses stayed finite (a ReLU turns a NaN sum into 0). The learning rate \
         ({learning_rate}) is likely too large for this network; try a smaller --lr"
    )]
    NonFiniteWeights { epoch: usize, learning_rate: f32 },
}

/// How the epochs of a run go. [`TrainConfig::seed`] is docs/SEED.md's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    /// The rate of the first epoch; the schedule takes it from there.
    pub learning_rate: f32,
    pub schedule: Schedule,
    /// Read the training set in a new order each epoch, drawn from `seed`.
    pub shuffle: bool,
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many epochs.
    pub early_stopping: Option<usize>,
}

impl TrainConfig {
    /// docs/SEED.md's epochs: 30 of 600 batches of 100 in the file's order, at the seed's
    /// constant rate.
    pub fn seed() -> Self {
        Self {
            epochs: 30,
            batch_size: 100,
            learning_rate: crate::Hyperparameters::seed().learning_rate,
            schedule: Schedule::Constant,
            shuffle: false,
            seed: 0,
            early_stopping: None,
        }
    }

    /// The learning rate of `epoch` (from 1), as the schedule takes it from the first's.
    pub fn learning_rate_of(&self, epoch: usize) -> f32 {
        self.schedule
            .learning_rate(self.learning_rate, epoch, self.epochs)
    }
}

/// The order of the `rows` training images in `epoch` (from 1) of a run seeded with `seed`:
/// a Fisher–Yates shuffle from a generator of its own, so that the order depends on the seed
/// and the epoch only, not on the weights drawn before it.
pub fn epoch_order(seed: u64, epoch: usize, rows: usize) -> Vec<u32> {
    const SHUFFLE_STREAM: u64 = 0x5348_5546_464c_4521;
    let mut rng = Rng::new(seed ^ SHUFFLE_STREAM.wrapping_mul(epoch as u64 + 1));
    let mut order: Vec<u32> = (0..rows as u32).collect();
    for i in (1..rows).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// One epoch's numbers, as docs/SEED.md defines them.
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

/// Gives `backend` the learning rate and training order of `epoch` (from 1) of `config`.
pub fn start_epoch(
    backend: &mut dyn Backend,
    train_rows: usize,
    config: &TrainConfig,
    epoch: usize,
) -> Result<(), BackendError> {
    if config.schedule != Schedule::Constant {
        backend.set_learning_rate(config.learning_rate_of(epoch))?;
    }
    if config.shuffle {
        backend.set_order(&epoch_order(config.seed, epoch, train_rows))?;
    }
    Ok(())
}

/// Trains `epoch` (from 1) of `config`: sets the epoch's learning rate and order, calls
/// `on_batch` after each batch is handed to the backend (a GPU backend may still be running
/// it), then evaluates the validation set. A loss that is not finite, on a training batch or on
/// the validation set, stops the run with [`TrainError::Diverged`].
pub fn run_epoch(
    backend: &mut dyn Backend,
    train_rows: usize,
    config: &TrainConfig,
    epoch: usize,
    on_batch: &mut dyn FnMut(&mut dyn Backend),
) -> Result<(EpochMetrics, Evaluation), TrainError> {
    let started = Instant::now();
    start_epoch(backend, train_rows, config, epoch)?;
    let steps = batches(train_rows, config.batch_size).count();
    for rows in batches(train_rows, config.batch_size) {
        backend.train_batch(rows)?;
        on_batch(backend);
    }
    let train_loss = backend.take_train_loss()?;
    let evaluation = backend.evaluate()?;
    let diverged = |step, which| TrainError::Diverged {
        epoch,
        step,
        steps,
        which,
        learning_rate: config.learning_rate_of(epoch),
    };
    if let Some(batch) = train_loss.first_non_finite {
        return Err(diverged(batch + 1, "training"));
    }
    if !evaluation.loss().is_finite() {
        return Err(diverged(steps, "validation"));
    }
    let metrics = EpochMetrics {
        epoch,
        train_loss: train_loss.mean(),
        val_loss: evaluation.loss(),
        val_accuracy: evaluation.accuracy(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((metrics, evaluation))
}

/// The epoch of lowest validation loss so far, and whether `patience` epochs have passed
/// since it (early stopping).
#[derive(Debug, Clone, Default)]
pub struct BestEpoch {
    patience: Option<usize>,
    best: Option<(usize, f64)>,
}

impl BestEpoch {
    pub fn new(patience: Option<usize>) -> Self {
        Self {
            patience,
            best: None,
        }
    }

    /// Records `epoch`'s validation loss; true when it is the lowest so far (the first of
    /// equals).
    pub fn record(&mut self, epoch: usize, val_loss: f64) -> bool {
        let improved = self.best.is_none_or(|(_, best)| val_loss < best);
        if improved {
            self.best = Some((epoch, val_loss));
        }
        improved
    }

    /// Goes on from a run whose lowest validation loss so far was `val_loss`, at `epoch`.
    pub fn resume(&mut self, epoch: usize, val_loss: f64) {
        self.best = Some((epoch, val_loss));
    }

    /// The epoch of lowest validation loss, and that loss.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }

    /// Whether training should stop after `epoch`: the loss has not improved for `patience`
    /// epochs.
    pub fn should_stop(&self, epoch: usize) -> bool {
        match (self.patience, self.best) {
            (Some(patience), Some((best, _))) => epoch.saturating_sub(best) >= patience,
            _ => false,
        }
    }
}

/// Trains `config.epochs` epochs, or fewer where early stopping ends the run, calling
/// `on_epoch` after each.
pub fn train(
    backend: &mut dyn Backend,
    train_rows: usize,
    config: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochMetrics, &Evaluation),
) -> Result<Vec<EpochMetrics>, TrainError> {
    let mut best = BestEpoch::new(config.early_stopping);
    let mut history = Vec::new();
    for epoch in 1..=config.epochs {
        let (metrics, evaluation) = run_epoch(backend, train_rows, config, epoch, &mut |_| {})?;
        on_epoch(&metrics, &evaluation);
        best.record(epoch, metrics.val_loss);
        history.push(metrics);
        if best.should_stop(epoch) {
            break;
        }
    }
    Ok(history)
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

    #[test]
    fn best_epoch_stops_after_patience_epochs_without_improvement() {
        let mut best = BestEpoch::new(Some(2));
        for (epoch, loss, improved, stop) in [
            (1, 0.5, true, false),
            (2, 0.4, true, false),
            (3, 0.4, false, false),
            (4, 0.45, false, true),
        ] {
            assert_eq!(best.record(epoch, loss), improved, "epoch {epoch}");
            assert_eq!(best.should_stop(epoch), stop, "epoch {epoch}");
        }
        assert_eq!(best.best(), Some((2, 0.4)));
        let mut never = BestEpoch::new(None);
        never.record(1, 0.1);
        assert!(!never.should_stop(100));
    }

    #[test]
    fn epoch_orders_are_permutations_that_change_with_epoch_and_seed() {
        let order = epoch_order(7, 1, 1000);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
        assert_eq!(order, epoch_order(7, 1, 1000));
        assert_ne!(order, epoch_order(7, 2, 1000));
        assert_ne!(order, epoch_order(8, 1, 1000));
    }
}
