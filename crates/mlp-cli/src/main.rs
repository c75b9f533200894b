//! mlp-cli: picks a backend, trains the seed network on MNIST, and reports.

mod args;
mod bench;
mod check;
mod data;
mod eval;
mod plots;
mod predict;
mod progress;
mod session;
mod settings;
mod train;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The CPU backend splits each training step between the cores with rayon. With this
    // thread among rayon's workers, each split costs a few microseconds instead of a hand-off
    // to another thread and back; a step is ~100 µs. Failing only means rayon already runs.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
    let result = match cli.command {
        None => train::run(&cli.train),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Download(args)) => data::download(&args),
        Some(Command::Devices) => devices(),
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Predict(args)) => predict::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `mlp-cli devices`: every adapter wgpu sees.
fn devices() -> anyhow::Result<()> {
    let adapters = mlp_wgpu::list_adapters();
    if adapters.is_empty() {
        anyhow::bail!(mlp_wgpu::GpuError::NoAdapter {
            filter: String::new()
        });
    }
    for a in adapters {
        println!(
            "{}  [{} {}]  {}",
            a.name, a.backend, a.device_type, a.driver
        );
    }
    Ok(())
}
