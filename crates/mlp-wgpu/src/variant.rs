//! The variants of the GPU training step: how layers 2..L are scheduled, and where the
//! kernels read their read-only arrays. Each computes the same step; which is fastest depends
//! on the device, so `mlp-cli tune` measures them there.

/// How the dense layers 2..L of a training step are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DenseSchedule {
    /// Two dispatches for all of them: one invocation per batch row runs the row through
    /// every layer's forward pass and back through every delta (row_forward_backward.wgsl),
    /// then one dispatch updates every layer (layers_weights_update.wgsl). For a network this
    /// small the dispatches, not the arithmetic, set the pace.
    #[default]
    Fused,
    /// Dispatches per layer, each product a 4 x 4 block per invocation in registers, no
    /// workgroup memory (linear_forward.wgsl).
    Registers,
    /// Dispatches per layer, the forward products in 16 x 16 tiles staged in workgroup memory
    /// (linear_forward_tiled.wgsl): what real GPUs are expected to favour for large layers.
    Tiled,
    /// The whole step, layer 1 included, in two dispatches: one invocation per batch row
    /// forward through every layer (layer 1 over its lit pixels) and back through every delta
    /// (step_forward_backward.wgsl), then one dispatch updating every layer, W1 over its lit
    /// pixels (step_weights_update.wgsl). What a GPU whose dispatches cost tens of µs needs.
    Whole,
    /// The whole step's work, for up to STEP_SLOTS consecutive steps in one dispatch of one
    /// workgroup, with barriers between each step's rows and its updates (multi_step.wgsl).
    /// It uses one compute unit of a GPU, but pays for one dispatch instead of hundreds.
    MultiStep,
}

impl DenseSchedule {
    pub const NAMES: [&'static str; 5] = ["fused", "registers", "tiled", "whole", "multistep"];

    /// The name `--matmul` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fused => Self::NAMES[0],
            Self::Registers => Self::NAMES[1],
            Self::Tiled => Self::NAMES[2],
            Self::Whole => Self::NAMES[3],
            Self::MultiStep => Self::NAMES[4],
        }
    }
}

impl std::str::FromStr for DenseSchedule {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "fused" => Ok(Self::Fused),
            "registers" => Ok(Self::Registers),
            "tiled" => Ok(Self::Tiled),
            "whole" => Ok(Self::Whole),
            "multistep" => Ok(Self::MultiStep),
            _ => Err(format!(
                "unknown matmul kernel {name:?}: choose {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// Where the kernels read their read-only arrays from (kernels::UniformReads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Through uniform bindings where the device can bind them so: what lavapipe reads
    /// fastest, and what NVIDIA's constant cache may serialise where addresses differ across a
    /// warp (sparse_forward reads W1 at each row's own pixels).
    Uniform,
    /// From storage buffers, as GPUs are built to read them.
    Storage,
}

/// One variant of the step: the schedule of layers 2..L and the reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelVariant {
    pub schedule: DenseSchedule,
    pub reads: Reads,
}

impl KernelVariant {
    /// Every variant: each schedule of layers 2..L with either reads, then the whole step and
    /// the multi-step kernel, which read from storage only (they bind W1 with the other
    /// layers' parameters).
    pub fn all() -> Vec<Self> {
        let schedules = [
            DenseSchedule::Fused,
            DenseSchedule::Registers,
            DenseSchedule::Tiled,
        ];
        let mut all: Vec<Self> = schedules
            .into_iter()
            .flat_map(|schedule| {
                [Reads::Uniform, Reads::Storage].map(|reads| Self { schedule, reads })
            })
            .collect();
        all.extend(
            [DenseSchedule::Whole, DenseSchedule::MultiStep].map(|schedule| Self {
                schedule,
                reads: Reads::Storage,
            }),
        );
        all
    }

    /// The variant to run where none was measured on the adapter: on a CPU (lavapipe) the
    /// one that is fastest there, the fused schedule with uniform reads; on a GPU the
    /// conventional design, the whole step in two dispatches from storage.
    pub fn default_for(device_type: &str) -> Self {
        if device_type == "Cpu" {
            Self {
                schedule: DenseSchedule::Fused,
                reads: Reads::Uniform,
            }
        } else {
            Self {
                schedule: DenseSchedule::Whole,
                reads: Reads::Storage,
            }
        }
    }

    /// "fused-uniform", "tiled-storage", ...
    pub fn name(&self) -> String {
        let reads = match self.reads {
            Reads::Uniform => "uniform",
            Reads::Storage => "storage",
        };
        format!("{}-{reads}", self.schedule.name())
    }
}

impl std::fmt::Display for KernelVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for KernelVariant {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        Self::all()
            .into_iter()
            .find(|v| v.name() == name)
            .ok_or_else(|| {
                let names: Vec<String> = Self::all().iter().map(Self::name).collect();
                format!("unknown kernel {name:?}: choose {}", names.join(", "))
            })
    }
}

/// How many dispatches a variant records for how many training steps: 4 for 1 on the fused
/// schedule, 1 for up to STEP_SLOTS on the multi-step kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatches {
    pub dispatches: usize,
    pub steps: usize,
}

impl Dispatches {
    pub fn per_step(self) -> f64 {
        self.dispatches as f64 / self.steps as f64
    }
}

impl std::fmt::Display for Dispatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.dispatches, self.steps) {
            (d, 1) => write!(f, "{d} dispatches per step"),
            (1, s) => write!(f, "1 dispatch per {s} steps"),
            (d, s) => write!(f, "{d} dispatches per {s} steps"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_a_name_that_parses_back() {
        let all = KernelVariant::all();
        assert_eq!(all.len(), 8);
        for variant in all {
            assert_eq!(variant.name().parse::<KernelVariant>().unwrap(), variant);
        }
        let err = "fused-texture".parse::<KernelVariant>().unwrap_err();
        assert!(err.contains("tiled-storage"), "{err}");
        assert_eq!(KernelVariant::default_for("Cpu").name(), "fused-uniform");
        assert_eq!(
            KernelVariant::default_for("DiscreteGpu").name(),
            "whole-storage"
        );
    }

    #[test]
    fn dispatches_read_as_a_rate() {
        let fused = Dispatches {
            dispatches: 4,
            steps: 1,
        };
        let multi = Dispatches {
            dispatches: 1,
            steps: 256,
        };
        assert_eq!(fused.to_string(), "4 dispatches per step");
        assert_eq!(multi.to_string(), "1 dispatch per 256 steps");
        assert_eq!(multi.per_step(), 1.0 / 256.0);
    }
}
