//! The schedules of a training step's layers 2..L, one module each. A schedule owns its
//! kernels and bind groups (built the first time a step runs it), records a step, and says
//! before it is built whether the backend can run it, how many dispatches a step costs, and
//! which kernel makes each tensor. The backend holds the one it runs. Adding a schedule is its
//! module, a `DenseSchedule` variant and its line in [`SCHEDULES`].

mod fused;
mod multi_step;
mod per_layer;
mod whole;

use mlp_core::backend::StepKernels;

use super::GpuBackend;
use super::bind_groups::{Group, Sources};
use super::record::PixelSource;
use super::recorder::Recorder;
use crate::kernels::{Kernel, KernelOptions};
use crate::variant::{DenseSchedule, Dispatches};

/// Every schedule, as `DenseSchedule` names them.
static SCHEDULES: [Entry; 5] = [
    fused::FUSED,
    per_layer::REGISTERS,
    per_layer::TILED,
    whole::WHOLE,
    multi_step::MULTI_STEP,
];

/// A schedule's kernels and bind groups, built.
pub(super) trait StepSchedule: Send + Sync {
    /// Its kernels, in the order they were built.
    fn kernels(&self) -> Vec<&Kernel>;

    /// Records a training step of `rows` rows that finds its batch's pixels in `pixels`.
    fn record_training(
        &self,
        backend: &GpuBackend,
        recorder: &mut Recorder,
        rows: usize,
        pixels: PixelSource,
    );

    /// The kernel of the dense forward products, where it is not linear_forward (which the
    /// evaluation also runs).
    fn forward_product(&self) -> Option<&Kernel> {
        None
    }

    /// The dropout kernel and each hidden layer's bind group, where the schedule drops units
    /// in a dispatch of their own.
    fn dropout(&self) -> Option<(&Kernel, &[Group])> {
        None
    }
}

/// What the backend knows of a schedule before it is built, and how to build it.
pub(super) struct Entry {
    pub(super) schedule: DenseSchedule,
    /// Whether its kernels read the training images' bytes, which the backend then uploads.
    pub(super) reads_image_bytes: bool,
    /// Whether `backend` can run it; where not, it runs `fallback` (or that one's fallback).
    fits: fn(&GpuBackend) -> bool,
    fallback: Option<DenseSchedule>,
    build: fn(&KernelOptions, &Sources) -> Box<dyn StepSchedule>,
    /// Dispatches of a training step that finds its pixel lists where `PixelSource` says.
    dispatches: fn(&GpuBackend, PixelSource) -> Dispatches,
    /// Which kernel makes each layer's activations, deltas and parameters.
    step_kernels: fn(&GpuBackend) -> StepKernels,
}

/// The entry of `schedule`.
pub(super) fn entry(schedule: DenseSchedule) -> &'static Entry {
    SCHEDULES
        .iter()
        .find(|entry| entry.schedule == schedule)
        .unwrap_or_else(|| panic!("{schedule:?} has no line in SCHEDULES"))
}

/// The schedule `backend` runs when `chosen` is asked for: it, or the first of its fallbacks
/// that the backend can run.
pub(super) fn resolve(backend: &GpuBackend, chosen: DenseSchedule) -> DenseSchedule {
    let mut schedule = chosen;
    loop {
        let entry = entry(schedule);
        match entry.fallback {
            Some(fallback) if !(entry.fits)(backend) => schedule = fallback,
            _ => return schedule,
        }
    }
}

/// The kernels and bind groups of `schedule` (one that fits) from `sources`.
pub(super) fn build(
    schedule: DenseSchedule,
    options: &KernelOptions,
    sources: &Sources,
) -> Box<dyn StepSchedule> {
    (entry(schedule).build)(options, sources)
}

/// Dispatches of a training step of `schedule` that finds its pixel lists in `pixels`.
pub(super) fn dispatches(
    schedule: DenseSchedule,
    backend: &GpuBackend,
    pixels: PixelSource,
) -> Dispatches {
    (entry(schedule).dispatches)(backend, pixels)
}

/// Which kernel makes each tensor of a step of `schedule`.
pub(super) fn step_kernels(schedule: DenseSchedule, backend: &GpuBackend) -> StepKernels {
    (entry(schedule).step_kernels)(backend)
}

/// Whether the network fits the kernels that keep a batch row's values in private arrays.
fn row_arrays_fit(backend: &GpuBackend) -> bool {
    let options = &backend.kernel_options;
    options.units <= options.max_units
}

/// `first` for the first of `depth` layers and `rest` for the others.
fn per_layer(depth: usize, first: &str, rest: &str) -> Vec<String> {
    (0..depth)
        .map(|k| if k == 0 { first } else { rest }.to_string())
        .collect()
}

/// The same kernel for every tensor of every layer.
fn one_kernel(depth: usize, name: &str) -> StepKernels {
    StepKernels {
        activations: per_layer(depth, name, name),
        deltas: per_layer(depth, name, name),
        parameters: per_layer(depth, name, name),
    }
}

#[cfg(test)]
mod tests {
    use super::{SCHEDULES, entry};
    use crate::variant::DenseSchedule;

    #[test]
    fn every_schedule_has_one_entry_and_every_fallback_chain_ends() {
        for name in DenseSchedule::NAMES {
            let schedule: DenseSchedule = name.parse().unwrap();
            let count = SCHEDULES.iter().filter(|e| e.schedule == schedule).count();
            assert_eq!(count, 1, "{name}");
            let mut at = schedule;
            for _ in 0..SCHEDULES.len() {
                match entry(at).fallback {
                    Some(next) => at = next,
                    None => break,
                }
            }
            assert_eq!(entry(at).fallback, None, "{name}'s fallbacks go round");
        }
    }
}
