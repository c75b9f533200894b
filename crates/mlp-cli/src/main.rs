//! mlp-cli: picks a backend, trains the seed network on MNIST, and reports.

mod args;
mod bench;
mod check;
mod console;
mod data;
mod eval;
mod export;
mod plots;
mod predict;
mod progress;
mod resume;
mod serve;
mod session;
mod settings;
mod submission;
mod train;
mod tune;
mod values;
mod watch;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Cli, Command};
use crate::console::{note, say};

fn main() -> ExitCode {
    quiet_device_select_layer();
    let cli = Cli::parse();
    // The CPU backend splits each training step between the cores with rayon. With this
    // thread among rayon's workers, each split costs a few microseconds instead of a hand-off
    // to another thread and back; a step is ~100 µs. Failing only means rayon already runs.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
    // Ctrl-C or a SIGTERM while a file is being saved must not leave its temporary file
    // behind; the file being replaced stays as it was. Failing only means a handler is set.
    let _ = ctrlc::set_handler(|| {
        mlp_core::atomic::remove_partial_files();
        std::process::exit(130);
    });
    let result = match cli.command {
        None => train::run(&cli.train),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Download(args)) => data::download(&args),
        Some(Command::Devices) => devices(),
        Some(Command::Check(args)) => check::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Predict(args)) => predict::run(&args),
        Some(Command::Export(args)) => export::run(&args),
        Some(Command::Serve(args)) => serve::run(&args),
        Some(Command::Tune(args)) => tune::run(&args),
    };
    let result = result.and_then(|()| match console::stdout_error() {
        Some(error) => Err(anyhow::Error::new(error).context("cannot write to standard output")),
        None => Ok(()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            note!("error: {error:#}");
            if error.downcast_ref::<args::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Mesa's device-select Vulkan layer asks the Wayland compositor which GPU is the default. With
/// no valid XDG_RUNTIME_DIR there is no compositor to ask, and libwayland prints "error:
/// XDG_RUNTIME_DIR is invalid or not set" on every GPU command, which reads like an error of
/// ours. There the layer has nothing to select by, so its own switch turns it off.
#[allow(unsafe_code)]
fn quiet_device_select_layer() {
    let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(std::path::PathBuf::from);
    if runtime_dir.is_none_or(|dir| !dir.is_dir()) && std::env::var_os("NODEVICE_SELECT").is_none()
    {
        // SAFETY: the first thing main does, before any other thread exists to read the
        // environment.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
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
    for listed in adapters {
        let a = &listed.summary;
        let mark = match (listed.picked, listed.usable) {
            (true, _) => "  <- a run picks this one".to_string(),
            (false, true) => String::new(),
            (false, false) => format!(
                "  (a run looks at it with WGPU_BACKEND={})",
                a.backend.to_lowercase()
            ),
        };
        say!(
            "{}  [{} {}]  {}{mark}",
            a.name,
            a.backend,
            a.device_type,
            a.driver
        );
    }
    Ok(())
}
