//! Which GPU kernels a run uses, and why: the variant `--kernel` names, else the one measured
//! fastest on this adapter for this network and batch (`mlp-cli tune`, or the first run on
//! the adapter), kept in a cache file; with no cache, the adapter's default.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mlp_core::backend::Backend;
use mlp_core::input::{InputError, read_limited};
use mlp_core::train::batches;
use mlp_core::{Dataset, Hyperparameters, Parameters};
use mlp_wgpu::{Dispatches, GpuBackend, GpuContext, KernelVariant};
use serde_json::{Map, Value};

use crate::args::{BackendKind, GpuArgs, NetworkArgs, TuneArgs, UsageError};
use crate::console::{note, say};
use crate::session::{Prepared, prepare};

/// Steps each variant runs untimed first: the pipelines are built on the first.
const WARM_UP_STEPS: usize = 3;

/// One variant's measured pace.
#[derive(Debug, Clone)]
pub struct Timing {
    pub variant: KernelVariant,
    pub seconds_per_step: f64,
    pub dispatches: Dispatches,
}

/// What a GPU backend is built from, for timing its variants.
pub struct Workload<'a> {
    pub parameters: &'a Parameters,
    pub hyper: &'a Hyperparameters,
    pub max_batch: usize,
    pub train: &'a Dataset,
    pub validation: &'a Dataset,
}

/// Where tuned choices are kept: `--kernel-cache`, else MLP_KERNEL_CACHE ("off", in any case:
/// nowhere; empty: as if unset), else `$XDG_CACHE_HOME/mlp/kernels.json` or
/// `~/.cache/mlp/kernels.json`. An XDG_CACHE_HOME that is empty or relative is ignored, as the
/// XDG specification says. `Err` says why there is no cache.
pub fn cache_path(flag: Option<&Path>) -> Result<PathBuf, &'static str> {
    if let Some(path) = flag {
        return Ok(path.to_path_buf());
    }
    match std::env::var_os("MLP_KERNEL_CACHE") {
        Some(value) if value.eq_ignore_ascii_case("off") => return Err("MLP_KERNEL_CACHE=off"),
        Some(value) if !value.is_empty() => return Ok(PathBuf::from(value)),
        _ => {}
    }
    let absolute = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|dir| dir.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|dir| dir.join("mlp").join("kernels.json"))
        .ok_or("no cache directory (HOME and XDG_CACHE_HOME are unset or relative)")
}

/// The kernel cache a run with `net`'s options may write: a GPU run whose kernels --kernel
/// does not settle, and that has a cache.
pub fn cache_written(net: &NetworkArgs) -> Option<PathBuf> {
    let gpu = &net.gpu;
    let settled = gpu.kernel.is_some();
    if net.backend() != BackendKind::Gpu || settled {
        return None;
    }
    cache_path(gpu.kernel_cache.as_deref()).ok()
}

/// Checks before any work that the cache at `path` can be read and written: its directory is
/// made where missing, and what is there now must be a kernel cache.
pub fn check_cache(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "the kernel cache: cannot make the directory {}",
                dir.display()
            )
        })?;
    }
    mlp_core::atomic::check_writable(path).context("the kernel cache")?;
    read_cache(path)?;
    Ok(())
}

/// The most a kernel cache file may hold: its entries are a few hundred bytes each.
const MAX_CACHE_BYTES: u64 = 4 << 20;

/// The cache's key of a run: the adapter and its driver, the network and the batch.
fn key(context: &GpuContext, work: &Workload) -> String {
    let a = &context.adapter;
    let sizes: Vec<String> = work
        .parameters
        .sizes()
        .iter()
        .map(|s| s.to_string())
        .collect();
    format!(
        "{} | {} | {} | {} | batch {}",
        a.name,
        a.backend,
        a.driver,
        sizes.join("-"),
        work.max_batch
    )
}

/// The cache file's entries (none where it does not exist yet, or is empty).
fn read_cache(path: &Path) -> Result<Map<String, Value>> {
    let not_a_cache = || {
        anyhow::anyhow!(
            "{} is not a kernel cache (a JSON object of tuned choices): remove it, or give \
             --kernel-cache another file",
            path.display()
        )
    };
    let bytes = match read_limited(path, MAX_CACHE_BYTES, "a kernel cache") {
        Ok(bytes) => bytes,
        Err(InputError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Map::new());
        }
        Err(e) => return Err(anyhow::Error::new(e).context(not_a_cache())),
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(entries)) => Ok(entries),
        _ => Err(not_a_cache()),
    }
}

/// The variant tuned for `key` in the cache, if any.
fn cached(path: &Path, key: &str) -> Result<Option<KernelVariant>> {
    let entries = read_cache(path)?;
    let Some(name) = entries.get(key).and_then(|e| e["variant"].as_str()) else {
        return Ok(None);
    };
    name.parse().map(Some).map_err(|e: String| {
        anyhow::anyhow!("{}: entry {key:?}: {e}; remove the entry", path.display())
    })
}

/// Keeps the fastest of `timings` for `key`, with every variant's figures, replacing the file
/// atomically.
fn save(path: &Path, key: &str, timings: &[Timing]) -> Result<KernelVariant> {
    let fastest = timings
        .iter()
        .min_by(|a, b| a.seconds_per_step.total_cmp(&b.seconds_per_step))
        .context("no kernel variant could be timed")?;
    let mut entries = read_cache(path)?;
    let figures: Map<String, Value> = timings
        .iter()
        .map(|t| (t.variant.name(), Value::from(t.seconds_per_step * 1e3)))
        .collect();
    let mut entry = Map::new();
    entry.insert("variant".into(), Value::from(fastest.variant.name()));
    entry.insert("ms_per_step".into(), Value::Object(figures));
    entries.insert(key.to_string(), Value::Object(entry));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory of {}", path.display()))?;
    }
    let text = serde_json::to_string_pretty(&Value::Object(entries))?;
    mlp_core::atomic::write_atomically(path, text.as_bytes())?;
    Ok(fastest.variant)
}

/// Seconds per training step of `variant` on a fresh device of `adapter`, over `steps` steps
/// of the first batches after the warm-up.
fn time_variant(
    adapter: Option<&str>,
    work: &Workload,
    variant: KernelVariant,
    steps: usize,
) -> Result<Timing> {
    let context = GpuContext::new(adapter)?;
    let data = (work.train, work.validation);
    let mut backend = GpuBackend::with_variant(
        context,
        work.parameters,
        work.hyper,
        work.max_batch,
        data,
        variant,
    )?;
    let schedule: Vec<_> = batches(work.train.len(), work.max_batch).collect();
    let mut run = |count: usize, from: usize| -> Result<()> {
        for step in from..from + count {
            backend.train_batch(schedule[step % schedule.len()].clone())?;
        }
        // Reading the loss waits for every queued step.
        backend.take_train_loss()?;
        Ok(())
    };
    run(WARM_UP_STEPS, 0)?;
    let started = Instant::now();
    run(steps, WARM_UP_STEPS)?;
    Ok(Timing {
        variant: backend.variant(),
        seconds_per_step: started.elapsed().as_secs_f64() / steps as f64,
        dispatches: backend.dispatches_per_step(),
    })
}

/// Every variant timed on `work`, in KernelVariant::all's order; a network too wide for the
/// fused kernel runs its per-layer schedule instead, so its fused variants are left out.
pub fn time_variants(adapter: Option<&str>, work: &Workload, steps: usize) -> Result<Vec<Timing>> {
    let mut timings: Vec<Timing> = Vec::new();
    for variant in KernelVariant::all() {
        let timing = time_variant(adapter, work, variant, steps)?;
        if timing.variant == variant && timings.iter().all(|t| t.variant != variant) {
            timings.push(timing);
        }
    }
    Ok(timings)
}

/// The variant a GPU run uses and why: `--kernel` (a schedule with the adapter's default
/// reads, or a whole variant), the cache's entry, or, where the cache has none, every variant timed now and the
/// fastest kept.
pub fn choose(
    gpu: &GpuArgs,
    context: &GpuContext,
    work: &Workload,
) -> Result<(KernelVariant, String)> {
    let default = KernelVariant::default_for(&context.adapter.device_type);
    if let Some(choice) = gpu.kernel {
        return Ok((choice.variant(default), "chosen by --kernel".into()));
    }
    let path = match cache_path(gpu.kernel_cache.as_deref()) {
        Ok(path) => path,
        Err(why) => return Ok((default, format!("default: not tuned, {why}"))),
    };
    let key = key(context, work);
    if let Some(variant) = cached(&path, &key)? {
        return Ok((
            variant,
            format!("tuned on this adapter, in {}", path.display()),
        ));
    }
    note!(
        "no tuned kernels for this adapter and network yet: timing each variant (mlp-cli tune) ..."
    );
    let timings = time_variants(gpu.adapter.as_deref(), work, 30)?;
    for line in timing_lines(&timings) {
        note!("{line}");
    }
    let variant = save(&path, &key, &timings)?;
    Ok((
        variant,
        format!(
            "tuned now, on this adapter's first run, kept in {}",
            path.display()
        ),
    ))
}

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
    let key = key(&context, &work);
    match cache_path(net.gpu.kernel_cache.as_deref()) {
        Ok(path) => {
            let variant = save(&path, &key, &timings)?;
            say!(
                "fastest: {variant}, kept in {} for later runs",
                path.display()
            );
        }
        Err(why) => say!("not kept: {why}"),
    }
    Ok(())
}
