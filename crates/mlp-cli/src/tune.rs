//! Which GPU kernels a run uses, and why: the variant `--kernel` names, else the one measured
//! fastest on this adapter for this network and batch (`mlp-cli tune`, or the first run on
//! the adapter), kept in a cache file; with no cache, the adapter's default. The timing and the
//! cache are `mlp_wgpu::tune`'s; this module adds the options and what is said.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use mlp_wgpu::tune::{
    KernelCache, Timing, Tuned, Workload, cache_key, time_variants, tuned_variant,
};
use mlp_wgpu::{GpuContext, KernelVariant};

use crate::args::{BackendKind, GpuArgs, NetworkArgs, TuneArgs, UsageError};
use crate::console::{note, say};
use crate::session::{Prepared, prepare};

/// Where tuned choices are kept (`mlp_wgpu::tune::KernelCache::locate`).
pub fn cache_path(flag: Option<&Path>) -> Result<PathBuf, &'static str> {
    KernelCache::locate(flag).map(|cache| cache.path)
}

/// The kernel cache a run with `net`'s options may write: a GPU run whose kernels --kernel
/// does not settle, and that has a cache.
pub fn cache_written(net: &NetworkArgs) -> Option<PathBuf> {
    let gpu = &net.gpu;
    if net.backend() != BackendKind::Gpu || gpu.kernel.is_some() {
        return None;
    }
    cache_path(gpu.kernel_cache.as_deref()).ok()
}

/// Checks before any work that the cache at `path` can be read and written.
pub fn check_cache(path: &Path) -> Result<()> {
    let cache = KernelCache {
        path: path.to_path_buf(),
    };
    Ok(cache.check()?)
}

/// The variant a GPU run uses and why: `--kernel` (a schedule with the adapter's default
/// reads, or a whole variant), the cache's entry, or, where the cache has none, every variant
/// timed now and the fastest kept.
pub fn choose(
    gpu: &GpuArgs,
    context: &GpuContext,
    work: &Workload,
) -> Result<(KernelVariant, String)> {
    let default = KernelVariant::default_for(&context.adapter.device_type);
    if let Some(choice) = gpu.kernel {
        return Ok((choice.variant(default), "chosen by --kernel".into()));
    }
    let cache = match KernelCache::locate(gpu.kernel_cache.as_deref()) {
        Ok(cache) => cache,
        Err(why) => return Ok((default, format!("default: not tuned, {why}"))),
    };
    if let Some(variant) = cache.cached(&cache_key(context, work))? {
        let why = format!("tuned on this adapter, in {}", cache.path.display());
        return Ok((variant, why));
    }
    note!(
        "no tuned kernels for this adapter and network yet: timing each variant (mlp-cli tune) ..."
    );
    let (variant, tuned) = tuned_variant(context, work, &cache, TIMED_STEPS)?;
    let why = match tuned {
        // Another run may have tuned it since the read above.
        Tuned::Cached(path) => format!("tuned on this adapter, in {}", path.display()),
        Tuned::TimedNow(path, timings) => {
            for line in timing_lines(&timings) {
                note!("{line}");
            }
            format!(
                "tuned now, on this adapter's first run, kept in {}",
                path.display()
            )
        }
    };
    Ok((variant, why))
}

/// Steps a first run times each variant for.
const TIMED_STEPS: usize = 30;

/// A line per variant: its time and dispatches per step.
fn timing_lines(timings: &[Timing]) -> impl Iterator<Item = String> + '_ {
    timings.iter().map(|t| {
        format!(
            "  {:<18} {:>9.3} ms per step  {}",
            t.variant.name(),
            t.seconds_per_step * 1e3,
            t.dispatches
        )
    })
}

/// `mlp-cli tune`: times every variant for the run's network and batch on the GPU, prints
/// them, and keeps the fastest in the cache.
pub fn run(args: &TuneArgs) -> Result<()> {
    let net = &args.network;
    if net.backend() != BackendKind::Gpu {
        bail!("tune times the GPU's kernels: give --backend gpu");
    }
    if net.gpu.kernel.is_some() {
        return Err(UsageError(
            "tune times every kernel variant: --kernel chooses one; drop it".into(),
        )
        .into());
    }
    if let Ok(path) = cache_path(net.gpu.kernel_cache.as_deref()) {
        check_cache(&path)?;
    }
    let Prepared {
        settings,
        data,
        initial: (parameters, _),
    } = prepare(net, None)?;
    let work = Workload {
        parameters: &parameters,
        hyper: &settings.hyper,
        max_batch: settings.batch_size,
        train: &data.train,
        validation: &data.validation,
    };
    let context = GpuContext::new(net.gpu.adapter.as_deref())?;
    let a = &context.adapter;
    say!(
        "tuning on {} ({} {}, {}): {}, batch {}, {} timed steps a variant",
        a.name,
        a.backend,
        a.device_type,
        a.driver,
        settings.layers,
        settings.batch_size,
        args.steps
    );
    let timings = time_variants(net.gpu.adapter.as_deref(), &work, args.steps)?;
    for line in timing_lines(&timings) {
        say!("{line}");
    }
    let key = cache_key(&context, &work);
    match KernelCache::locate(net.gpu.kernel_cache.as_deref()) {
        Ok(cache) => {
            let variant = cache.save(&key, &timings)?;
            say!(
                "fastest: {variant}, kept in {} for later runs",
                cache.path.display()
            );
        }
        Err(why) => say!("not kept: {why}"),
    }
    Ok(())
}
