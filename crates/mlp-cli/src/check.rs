//! `mlp-cli check`: the plain reference (docs/SEED.md written out with the functions of
//! `cpu/mod.rs`), the fast CPU backend and the GPU, from identical parameters, on the same
//! batches, in lockstep. Every checked step compares every activation, delta and parameter of
//! each fast backend with the reference's, each row named after the reference function and
//! the kernel that computed the tensor.

use anyhow::{Result, bail};
use mlp_core::compare::{Row, Tolerance, compare_step};
use mlp_core::train::{batches, start_epoch};
use mlp_core::{Backend, Evaluation, ReferenceBackend};
use mlp_wgpu::PARITY;

use crate::args::{BackendKind, CheckArgs};
use crate::console::say;
use crate::session::{Prepared, build_backend, prepare};
use crate::settings::Settings;

/// A backend checked against the reference, with the tolerance it is held to and why.
struct Checked {
    label: &'static str,
    backend: Box<dyn Backend>,
    tolerance: Tolerance,
    why: &'static str,
    failures: usize,
    worst: f64,
}

pub fn run(args: &CheckArgs) -> Result<()> {
    let net = &args.network;
    if net.backend.is_some() {
        bail!("check runs every backend against the reference: drop --backend");
    }
    let Prepared {
        settings,
        data,
        initial: (parameters, _),
    } = prepare(net, None)?;
    let (train, validation) = (&data.train, &data.validation);
    let mut reference =
        ReferenceBackend::new(parameters.clone(), &settings.hyper, train, validation)?;
    let build = |kind| {
        build_backend(
            kind,
            &net.gpu,
            parameters.clone(),
            &settings.hyper,
            settings.batch_size,
            train,
            validation,
        )
    };
    let mut checked = [
        Checked {
            label: "fast CPU",
            backend: build(BackendKind::Cpu)?,
            tolerance: mlp_core::cpu::FAST_PARITY,
            why: "the same f32 arithmetic with the sums in another order",
            failures: 0,
            worst: 0.0,
        },
        Checked {
            label: "GPU",
            backend: build(BackendKind::Gpu)?,
            tolerance: PARITY,
            why: "f32 sums in another order, and exp within an ulp or two",
            failures: 0,
            worst: 0.0,
        },
    ];
    say!("reference: {}", reference.name());
    for c in &checked {
        say!(
            "{:<9}  {}  tolerance abs {:e} + rel {:e}: {}",
            c.label,
            c.backend.name(),
            c.tolerance.absolute,
            c.tolerance.relative,
            c.why
        );
    }
    say!(
        "{}\n{} steps, compared every {}",
        settings.describe(),
        args.steps,
        args.every
    );
    lockstep(args, &settings, train.len(), &mut reference, &mut checked)?;
    report_evaluations(&mut reference, &mut checked)?;
    let failures: usize = checked.iter().map(|c| c.failures).sum();
    let worst = checked.iter().map(|c| c.worst).fold(0.0, f64::max);
    if failures > 0 {
        bail!("{failures} comparisons exceeded the tolerance (worst at {worst:.2}x of it)");
    }
    say!(
        "verdict: the fast CPU backend and the GPU match the reference (worst element at {worst:.3} of the tolerance)"
    );
    Ok(())
}

/// The steps of `args`, on the reference and every checked backend alike; every `args.every`
/// steps and at the last, each checked backend compared with the reference.
fn lockstep(
    args: &CheckArgs,
    settings: &Settings,
    train_rows: usize,
    reference: &mut ReferenceBackend,
    checked: &mut [Checked],
) -> Result<()> {
    let schedule: Vec<_> = batches(train_rows, settings.batch_size).collect();
    let config = settings.train_config();
    for step in 1..=args.steps {
        let batch = (step - 1) % schedule.len();
        if batch == 0 {
            // A new epoch: its order and its learning rate, on every backend alike.
            let epoch = (step - 1) / schedule.len() + 1;
            start_epoch(reference, train_rows, &config, epoch)?;
            for c in checked.iter_mut() {
                start_epoch(c.backend.as_mut(), train_rows, &config, epoch)?;
            }
        }
        let rows = schedule[batch].clone();
        if step % args.every != 0 && step != args.steps {
            reference.train_batch(rows.clone())?;
            for c in checked.iter_mut() {
                c.backend.train_batch(rows.clone())?;
            }
            continue;
        }
        let reference_trace = reference.trace_batch(rows.clone())?;
        let reference_parameters = reference.parameters()?;
        let reference_kernels = reference.step_kernels();
        say!("step {step}:");
        for c in checked.iter_mut() {
            let trace = c.backend.trace_batch(rows.clone())?;
            let parameters = c.backend.parameters()?;
            let rows = compare_step(
                (&reference_trace, &reference_parameters),
                (&trace, &parameters),
                (&reference_kernels, &c.backend.step_kernels()),
                c.tolerance,
            );
            say!("  {} vs reference:", c.label);
            print_rows(&rows, c);
        }
    }
    Ok(())
}

fn print_rows(rows: &[Row], checked: &mut Checked) {
    for row in rows {
        let verdict = if row.difference.passes() {
            "ok"
        } else {
            "FAIL"
        };
        say!(
            "    {:<28} by {:<50} {}  {verdict}",
            row.name,
            row.computed_by,
            row.difference
        );
        checked.failures += usize::from(!row.difference.passes());
        checked.worst = checked.worst.max(row.difference.worst_ratio);
    }
}

/// The validation set on every backend: accuracy, loss, and the predictions that differ from
/// the reference's.
fn report_evaluations(reference: &mut ReferenceBackend, checked: &mut [Checked]) -> Result<()> {
    let expected: Evaluation = reference.evaluate()?;
    say!(
        "validation: reference {:.2}% (loss {:.6})",
        100.0 * expected.accuracy(),
        expected.loss()
    );
    for c in checked.iter_mut() {
        let found = c.backend.evaluate()?;
        say!(
            "validation: {:<9} {:.2}% (loss {:.6}); {} of {} predictions differ from the reference's",
            c.label,
            100.0 * found.accuracy(),
            found.loss(),
            found.differing_predictions(&expected),
            found.predictions.len()
        );
    }
    Ok(())
}
