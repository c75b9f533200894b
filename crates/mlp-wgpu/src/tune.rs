//! Which kernel variant runs fastest on an adapter, for a network and batch: every variant
//! timed on a fresh device ([`time_variants`]), and the fastest kept in a JSON cache file
//! ([`KernelCache`]) under a key naming the adapter, its driver, the network and the batch,
//! so that later runs find it ([`tuned_variant`]). `mlp-cli tune` and every GPU run of
//! `mlp-cli` use it; `examples/tuned.rs` shows a library user doing the same.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mlp_core::atomic::OutputError;
use mlp_core::backend::{Backend, BackendError};
use mlp_core::input::{InputError, read_limited};
use mlp_core::train::batches;
use mlp_core::{Dataset, Hyperparameters, Parameters};
use serde_json::{Map, Value};

use crate::{Dispatches, GpuBackend, GpuContext, KernelVariant};

/// Steps each variant runs untimed first: the pipelines are built on the first.
const WARM_UP_STEPS: usize = 3;

/// The most a kernel cache file may hold: its entries are a few hundred bytes each.
const MAX_CACHE_BYTES: u64 = 4 << 20;

/// Everything that can go wrong tuning or with the cache; each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    #[error(
        "{} is not a kernel cache (a JSON object of tuned choices): remove it, or give \
         --kernel-cache another file", path.display()
    )]
    NotACache {
        path: PathBuf,
        #[source]
        source: Option<InputError>,
    },
    #[error("{}: entry {key:?}: {problem}; remove the entry", path.display())]
    BadEntry {
        path: PathBuf,
        key: String,
        problem: String,
    },
    #[error("the kernel cache: cannot make the directory {}", dir.display())]
    Directory {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("the kernel cache")]
    Write(#[from] OutputError),
    #[error("no kernel variant could be timed")]
    NothingTimed,
    #[error(transparent)]
    Backend(#[from] BackendError),
}

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

/// The cache's key of a run: the adapter and its driver, the network and the batch.
pub fn cache_key(context: &GpuContext, work: &Workload) -> String {
    let a = &context.adapter;
    let sizes: Vec<String> = (work.parameters.sizes().iter())
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

/// Seconds per training step of `variant` on a fresh device of `adapter`, over `steps` steps
/// of the first batches after the warm-up.
fn time_variant(
    adapter: Option<&str>,
    work: &Workload,
    variant: KernelVariant,
    steps: usize,
) -> Result<Timing, BackendError> {
    let context = GpuContext::new(adapter)?;
    let data = (work.train, work.validation);
    let (parameters, hyper, max_batch) = (work.parameters, work.hyper, work.max_batch);
    let mut backend =
        GpuBackend::with_variant(context, parameters, hyper, max_batch, data, variant)?;
    let schedule: Vec<_> = batches(work.train.len(), work.max_batch).collect();
    let mut run = |count: usize, from: usize| -> Result<(), BackendError> {
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
pub fn time_variants(
    adapter: Option<&str>,
    work: &Workload,
    steps: usize,
) -> Result<Vec<Timing>, BackendError> {
    let mut timings: Vec<Timing> = Vec::new();
    for variant in KernelVariant::all() {
        let timing = time_variant(adapter, work, variant, steps)?;
        if timing.variant == variant && timings.iter().all(|t| t.variant != variant) {
            timings.push(timing);
        }
    }
    Ok(timings)
}

/// How [`tuned_variant`] came by its variant.
#[derive(Debug, Clone)]
pub enum Tuned {
    /// Found in the cache at this path.
    Cached(PathBuf),
    /// Timed now (these figures) and kept in the cache at this path.
    TimedNow(PathBuf, Vec<Timing>),
}

/// The variant tuned for `work` on `context`'s adapter: the cache's entry, or, where it has
/// none, every variant timed now (`steps` steps each) and the fastest kept there.
pub fn tuned_variant(
    context: &GpuContext,
    work: &Workload,
    cache: &KernelCache,
    steps: usize,
) -> Result<(KernelVariant, Tuned), TuneError> {
    let key = cache_key(context, work);
    if let Some(variant) = cache.cached(&key)? {
        return Ok((variant, Tuned::Cached(cache.path.clone())));
    }
    let adapter = Some(context.adapter.name.as_str());
    let timings = time_variants(adapter, work, steps)?;
    let variant = cache.save(&key, &timings)?;
    Ok((variant, Tuned::TimedNow(cache.path.clone(), timings)))
}

/// The file that keeps the variants tuned per adapter, driver, network and batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelCache {
    pub path: PathBuf,
}

impl KernelCache {
    /// The cache at `flag` (`--kernel-cache`), else MLP_KERNEL_CACHE ("off", in any case:
    /// none; empty: as if unset), else `$XDG_CACHE_HOME/mlp/kernels.json` or
    /// `~/.cache/mlp/kernels.json`. An XDG_CACHE_HOME that is empty or relative is ignored,
    /// as the XDG specification says. `Err` says why there is no cache.
    pub fn locate(flag: Option<&Path>) -> Result<Self, &'static str> {
        if let Some(path) = flag {
            return Ok(Self {
                path: path.to_path_buf(),
            });
        }
        match std::env::var_os("MLP_KERNEL_CACHE") {
            Some(value) if value.eq_ignore_ascii_case("off") => {
                return Err("MLP_KERNEL_CACHE=off");
            }
            Some(value) if !value.is_empty() => {
                return Ok(Self {
                    path: PathBuf::from(value),
                });
            }
            _ => {}
        }
        let absolute = |name: &str| {
            std::env::var_os(name)
                .map(PathBuf::from)
                .filter(|dir| dir.is_absolute())
        };
        absolute("XDG_CACHE_HOME")
            .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
            .map(|dir| Self {
                path: dir.join("mlp").join("kernels.json"),
            })
            .ok_or("no cache directory (HOME and XDG_CACHE_HOME are unset or relative)")
    }

    /// Checks before any work that the cache can be read and written: its directory is made
    /// where missing, and what is there now must be a kernel cache.
    pub fn check(&self) -> Result<(), TuneError> {
        self.make_directory()?;
        mlp_core::atomic::check_writable(&self.path)?;
        self.entries()?;
        Ok(())
    }

    fn make_directory(&self) -> Result<(), TuneError> {
        match self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|source| TuneError::Directory {
                dir: dir.to_path_buf(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// The file's entries (none where it does not exist yet, or is empty).
    fn entries(&self) -> Result<Map<String, Value>, TuneError> {
        let not_a_cache = |source| TuneError::NotACache {
            path: self.path.clone(),
            source,
        };
        let bytes = match read_limited(&self.path, MAX_CACHE_BYTES, "a kernel cache") {
            Ok(bytes) => bytes,
            Err(InputError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Map::new());
            }
            Err(e) => return Err(not_a_cache(Some(e))),
        };
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Map::new());
        }
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(entries)) => Ok(entries),
            _ => Err(not_a_cache(None)),
        }
    }

    /// The variant tuned for `key`, if any.
    pub fn cached(&self, key: &str) -> Result<Option<KernelVariant>, TuneError> {
        let entries = self.entries()?;
        let Some(name) = entries.get(key).and_then(|e| e["variant"].as_str()) else {
            return Ok(None);
        };
        name.parse()
            .map(Some)
            .map_err(|problem| TuneError::BadEntry {
                path: self.path.clone(),
                key: key.to_string(),
                problem,
            })
    }

    /// Keeps the fastest of `timings` for `key`, with every variant's figures, replacing the
    /// file atomically.
    pub fn save(&self, key: &str, timings: &[Timing]) -> Result<KernelVariant, TuneError> {
        let fastest = (timings.iter())
            .min_by(|a, b| a.seconds_per_step.total_cmp(&b.seconds_per_step))
            .ok_or(TuneError::NothingTimed)?;
        let mut entries = self.entries()?;
        let figures: Map<String, Value> = (timings.iter())
            .map(|t| (t.variant.name(), Value::from(t.seconds_per_step * 1e3)))
            .collect();
        let mut entry = Map::new();
        entry.insert("variant".into(), Value::from(fastest.variant.name()));
        entry.insert("ms_per_step".into(), Value::Object(figures));
        entries.insert(key.to_string(), Value::Object(entry));
        self.make_directory()?;
        let text = serde_json::to_string_pretty(&Value::Object(entries))
            .expect("a map of strings and numbers always serialises");
        mlp_core::atomic::write_atomically(&self.path, text.as_bytes())?;
        Ok(fastest.variant)
    }
}
