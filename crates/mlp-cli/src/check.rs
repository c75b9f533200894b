//! `mlp-cli check`: the CPU reference and the GPU from identical parameters, on the same
//! batches, in lockstep; every checked step compares every activation, delta and parameter.

use anyhow::{Result, bail};
use mlp_core::compare::compare_step;
use mlp_core::train::{batches, start_epoch};
use mlp_wgpu::PARITY;

use crate::args::{BackendKind, CheckArgs};
use crate::console::say;
use crate::data;
use crate::session::{build_backend, initial_parameters};
use crate::settings::Settings;

pub fn run(args: &CheckArgs) -> Result<()> {
    let net = &args.network;
    let settings = Settings::resolve(net, None)?;
    let mnist = data::load_limited(net)?;
    let train = &mnist.train;
    let (parameters, _) = initial_parameters(net, &settings)?;
    let build = |kind, parameters| {
        build_backend(
            kind,
            &net.gpu,
            parameters,
            &settings.hyper,
            settings.batch_size,
            train,
            &mnist.test,
        )
    };
    let mut cpu = build(BackendKind::Cpu, parameters.clone())?;
    let mut gpu = build(BackendKind::Gpu, parameters)?;
    say!("reference: {}\nchecked:   {}", cpu.name(), gpu.name());
    say!(
        "{}\n{} steps, compared every {}  tolerance: abs {:e} + rel {:e}",
        settings.describe(),
        args.steps,
        args.every,
        PARITY.absolute,
        PARITY.relative
    );
    let schedule: Vec<_> = batches(train.len(), settings.batch_size).collect();
    let config = settings.train_config();
    let mut failures = 0;
    let mut worst = 0.0f64;
    for step in 1..=args.steps {
        let batch = (step - 1) % schedule.len();
        if batch == 0 {
            // A new epoch: its order and its learning rate, on both backends alike.
            let epoch = (step - 1) / schedule.len() + 1;
            start_epoch(cpu.as_mut(), train.len(), &config, epoch)?;
            start_epoch(gpu.as_mut(), train.len(), &config, epoch)?;
        }
        let rows = schedule[batch].clone();
        if step % args.every != 0 && step != args.steps {
            cpu.train_batch(rows.clone())?;
            gpu.train_batch(rows)?;
            continue;
        }
        let cpu_trace = cpu.trace_batch(rows.clone())?;
        let gpu_trace = gpu.trace_batch(rows)?;
        let (cpu_params, gpu_params) = (cpu.parameters()?, gpu.parameters()?);
        say!("step {step}:");
        for row in compare_step((&cpu_trace, &cpu_params), (&gpu_trace, &gpu_params), PARITY) {
            let verdict = if row.difference.passes() {
                "ok"
            } else {
                "FAIL"
            };
            say!("  {:<24} {}  {verdict}", row.name, row.difference);
            failures += usize::from(!row.difference.passes());
            worst = worst.max(row.difference.worst_ratio);
        }
    }
    let (cpu_eval, gpu_eval) = (cpu.evaluate()?, gpu.evaluate()?);
    let disagreements = cpu_eval.differing_predictions(&gpu_eval);
    say!(
        "validation accuracy: cpu {:.2}%  gpu {:.2}%  ({} of {} predictions differ); validation loss cpu {:.6} gpu {:.6}",
        100.0 * cpu_eval.accuracy(),
        100.0 * gpu_eval.accuracy(),
        disagreements,
        cpu_eval.predictions.len(),
        cpu_eval.loss(),
        gpu_eval.loss()
    );
    if failures > 0 {
        bail!("{failures} comparisons exceeded the tolerance (worst at {worst:.2}x of it)");
    }
    say!(
        "verdict: the GPU matches the CPU reference (worst element at {worst:.3} of the tolerance)"
    );
    Ok(())
}
