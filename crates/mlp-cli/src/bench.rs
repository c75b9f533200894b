//! `mlp-cli bench`: seconds per training epoch, timed around the batches only, with the
//! validation pass and data loading outside the clock.

use std::time::{Duration, Instant};

use anyhow::Result;
use mlp_core::Schedule;
use mlp_core::simd::fma_peak;
use mlp_core::train::{TrainConfig, batches, start_epoch};

use crate::args::{BackendKind, BenchArgs, NetworkArgs};
use crate::console::say;
use crate::session::{Prepared, Session, cpu_instruction_set, evaluate_on, prepare};
use crate::settings::Settings;

pub fn run(args: &BenchArgs) -> Result<()> {
    let net = &args.network;
    let epochs = args.to_accuracy.and(args.train_epochs);
    let Prepared {
        settings,
        data,
        initial,
    } = prepare(net, epochs)?;
    let mut session = Session::new(net, &settings, data, initial)?;
    if let Some(target) = args.to_accuracy {
        return to_accuracy(net, &settings, &mut session, target);
    }
    let rows = session.train_rows;
    let flop_per_sample = 2.0 * multiply_adds_per_sample(settings.layers.as_slice()) as f64;
    let order = if settings.shuffle {
        "shuffled each epoch"
    } else {
        "in the file's order"
    };
    say!(
        "backend: {}\n{}\ntraining images {rows} (timed {order}, as training takes them, at the first epoch's rate)",
        session.backend.name(),
        settings.describe(),
    );
    // Each epoch in the order training would give it (a GPU backend works differently in the
    // file order, whose batches' pixel lists it builds once), at the first epoch's rate.
    let config = TrainConfig {
        schedule: Schedule::Constant,
        ..settings.train_config()
    };
    let mut seconds = Vec::with_capacity(args.epochs);
    for epoch in 0..=args.epochs {
        start_epoch(session.backend.as_mut(), rows, &config, epoch + 1)?;
        let started = Instant::now();
        for batch in batches(rows, settings.batch_size) {
            session.backend.train_batch(batch)?;
        }
        // Reading the loss waits for every queued step: on a GPU this is what ends the epoch.
        let loss = session.backend.take_train_loss()?;
        let elapsed = started.elapsed().as_secs_f64();
        if epoch == 0 {
            say!(
                "warm-up epoch: {elapsed:.3} s (train loss {:.5})",
                loss.mean()
            );
        } else {
            say!("epoch {epoch}: {elapsed:.4} s");
            seconds.push(elapsed);
        }
    }
    seconds.sort_by(f64::total_cmp);
    let median = seconds[seconds.len() / 2];
    let dense_flop = flop_per_sample * rows as f64;
    say!(
        "median {:.4} s per epoch, {:.0} samples/s, {:.1} GFLOP/s dense-equivalent ({:.1} GFLOP \
         per epoch as dense products)",
        median,
        rows as f64 / median,
        dense_flop / median / 1e9,
        dense_flop / 1e9
    );
    // A zero pixel adds nothing to the first layer's two products; a backend that skips them
    // does this much of the arithmetic.
    let sizes = settings.layers.as_slice();
    let first_layer_flop = 2.0 * 2.0 * (sizes[0] * sizes[1]) as f64 * rows as f64;
    let lit_flop = dense_flop - first_layer_flop * (1.0 - session.train_density);
    say!(
        "{:.1} % of training pixels are lit: {:.1} GFLOP per epoch with zero pixels skipped \
         ({:.1} GFLOP/s)",
        100.0 * session.train_density,
        lit_flop / 1e9,
        lit_flop / median / 1e9
    );
    if net.backend() == BackendKind::Cpu {
        say_share_of_peak(lit_flop / median / 1e9)?;
    }
    if args.profile {
        profile(&mut session, settings.batch_size)?;
    }
    Ok(())
}

/// The epoch's real arithmetic (`gflops`, zero pixels skipped) as a share of this machine's
/// measured FMA peak on the instruction set the backend runs, one core and every core the
/// run may use, so that figures compare across machines.
fn say_share_of_peak(gflops: f64) -> Result<()> {
    let set = cpu_instruction_set()?;
    let time = Duration::from_millis(300);
    let one = fma_peak(set, time);
    let threads = rayon::current_num_threads();
    let all: f64 = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..threads)
            .map(|_| scope.spawn(move || fma_peak(set, time)))
            .collect();
        runs.into_iter().map(|run| run.join().unwrap_or(0.0)).sum()
    });
    say!(
        "{set} FMA peak measured now: {one:.1} GFLOP/s on one core, {all:.1} on the {threads} \
         the run may use; the epoch's arithmetic is {:.1} % of one core's peak, {:.1} % of all",
        100.0 * gflops / one,
        100.0 * gflops / all
    );
    Ok(())
}

/// `--profile`: each kernel's mean time over the batches of one more epoch (in the last timed
/// epoch's order), timed on the device one step at a time (so without the overlap of queued
/// steps), where the backend can.
fn profile(session: &mut Session, batch_size: usize) -> Result<()> {
    let mut totals: Vec<(String, f64)> = Vec::new();
    let mut steps = 0;
    for batch in batches(session.train_rows, batch_size) {
        let times = session.backend.kernel_times(batch)?;
        if times.is_empty() {
            say!("profile: this backend cannot time its kernels");
            return Ok(());
        }
        if totals.is_empty() {
            totals = times.iter().map(|t| (t.kernel.clone(), 0.0)).collect();
        }
        for (total, time) in totals.iter_mut().zip(&times) {
            total.1 += time.seconds;
        }
        steps += 1;
    }
    let step: f64 = totals.iter().map(|t| t.1).sum::<f64>() / f64::from(steps.max(1));
    say!(
        "profile: mean per step over {steps} steps, {:.1} µs in kernels",
        step * 1e6
    );
    for (kernel, total) in totals {
        let mean = total / f64::from(steps.max(1));
        say!(
            "  {kernel:<28} {:>9.1} µs  {:>5.1} %",
            mean * 1e6,
            100.0 * mean / step
        );
    }
    Ok(())
}

/// Multiply-adds per training sample: the forward products, the weight gradients, and the
/// deltas propagated below the output layer (docs/SEED.md, "Arithmetic").
fn multiply_adds_per_sample(sizes: &[usize]) -> usize {
    let products: usize = sizes.windows(2).map(|w| w[0] * w[1]).sum();
    let propagated: usize = sizes[1..].windows(2).map(|w| w[0] * w[1]).sum();
    2 * products + propagated
}

/// `bench --to-accuracy`: the run's schedule, epoch by epoch, until the validation accuracy
/// reaches `target`; the clock runs around the training batches only.
fn to_accuracy(
    net: &NetworkArgs,
    settings: &Settings,
    session: &mut Session,
    target: f64,
) -> Result<()> {
    let config = settings.train_config();
    let rows = session.train_rows;
    say!(
        "backend: {}\n{}\ntraining images {rows}; validation on {}; target {:.2}%",
        session.backend.name(),
        settings.describe(),
        session.validation_name(),
        100.0 * target
    );
    let mut training = 0.0;
    for epoch in 1..=config.epochs {
        start_epoch(session.backend.as_mut(), rows, &config, epoch)?;
        let started = Instant::now();
        for batch in batches(rows, config.batch_size) {
            session.backend.train_batch(batch)?;
        }
        // Reading the loss waits for every queued step: on a GPU this is what ends the epoch.
        session.backend.take_train_loss()?;
        training += started.elapsed().as_secs_f64();
        let evaluation = session.backend.evaluate()?;
        say!(
            "epoch {epoch}: {training:.2} s of training, validation accuracy {:.2}%",
            100.0 * evaluation.accuracy()
        );
        if evaluation.accuracy() >= target {
            let test = match &session.test {
                Some(test) => {
                    let parameters = session.backend.parameters()?;
                    evaluate_on(net, settings, parameters, test)?.accuracy()
                }
                None => evaluation.accuracy(),
            };
            say!(
                "reached {:.2}% after {epoch} epochs and {training:.2} s of training; test \
                 accuracy {:.2}% (the model of epoch {epoch})",
                100.0 * target,
                100.0 * test
            );
            return Ok(());
        }
    }
    say!(
        "did not reach {:.2}% in the {} epochs of the schedule ({training:.2} s of training)",
        100.0 * target,
        config.epochs
    );
    Ok(())
}
