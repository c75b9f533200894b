//! Which vector instructions the fast CPU kernels ([`crate::sparse`], [`crate::vectorised`])
//! run on: AVX-512 (16 f32 lanes) or AVX2 with FMA (8) where the CPU has them, found at run
//! time, or plain f32. Each gives the same sums within the fast kernels' tolerance, and the
//! tests hold each one the machine has to the reference.

use std::time::{Duration, Instant};

use pulp::{Arch, Simd, WithSimd};

/// An instruction set of the fast kernels, widest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InstructionSet {
    Scalar,
    Avx2,
    Avx512,
}

impl InstructionSet {
    pub const ALL: [Self; 3] = [Self::Scalar, Self::Avx2, Self::Avx512];

    /// "scalar", "avx2" or "avx512", as `MLP_SIMD` takes them.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// The sets this CPU can run.
    pub fn available() -> Vec<Self> {
        Self::ALL
            .into_iter()
            .filter(|s| s.arch().is_some())
            .collect()
    }

    /// The widest set this CPU can run.
    pub fn best() -> Self {
        *Self::available().last().expect("scalar always runs")
    }

    /// The set named `name`, where this CPU can run it.
    pub fn parse_available(name: &str) -> Result<Self, String> {
        let names: Vec<&str> = Self::available().iter().map(|s| s.name()).collect();
        match Self::ALL.into_iter().find(|s| s.name() == name) {
            Some(set) if set.arch().is_some() => Ok(set),
            Some(set) => Err(format!(
                "this CPU cannot run {}: choose {}",
                set.name(),
                names.join(", ")
            )),
            None => Err(format!(
                "unknown instruction set {name:?}: choose {}",
                names.join(", ")
            )),
        }
    }

    /// pulp's dispatcher for this set, where the CPU has it.
    fn arch(self) -> Option<Arch> {
        match self {
            Self::Scalar => Some(Arch::Scalar),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Self::Avx2 => pulp::x86::V3::try_new().map(Arch::V3),
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            Self::Avx512 => pulp::x86::V4::try_new().map(Arch::V4),
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
            Self::Avx2 | Self::Avx512 => None,
        }
    }

    /// Runs `op` on this set's vectors; a set the CPU lacks runs as scalar, so that no
    /// instruction the CPU cannot run is ever issued.
    pub(crate) fn dispatch<Op: WithSimd>(self, op: Op) -> Op::Output {
        self.arch().unwrap_or(Arch::Scalar).dispatch(op)
    }
}

/// Starts loading memory that a kernel will read soon into the cache, without waiting for it
/// (see [`crate::sparse::SparseImages`]'s use). A prefetch is only a hint: it cannot fault,
/// whatever the address, and does nothing where the CPU has no such instruction.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Prefetch {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    sse: Option<pulp::x86::V1>,
}

impl Prefetch {
    pub(crate) fn new() -> Self {
        Self {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            sse: pulp::x86::V1::try_new(),
        }
    }

    /// Asks for each cache line of `data` (64 bytes each) into the second-level cache and
    /// below (hint T1), not the first: a batch's lit pixels (about 120 KB for 100 MNIST
    /// images) would not stay in the 32-48 KB of L1 beside the weights the kernel streams.
    #[inline(always)]
    pub(crate) fn lines<T>(self, data: &[T]) {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        if let Some(v1) = self.sse {
            #[cfg(target_arch = "x86")]
            use std::arch::x86::_MM_HINT_T1;
            #[cfg(target_arch = "x86_64")]
            use std::arch::x86_64::_MM_HINT_T1;
            let start = data.as_ptr().cast::<i8>();
            for offset in line_offsets(start as usize, std::mem::size_of_val(data)) {
                v1.sse
                    ._mm_prefetch::<_MM_HINT_T1>(start.wrapping_offset(offset));
            }
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        let _ = data;
    }
}

/// The offset from `address` of the start of each 64-byte cache line that bytes
/// `address..address + bytes` touch: the first is at or before `address`.
fn line_offsets(address: usize, bytes: usize) -> impl Iterator<Item = isize> {
    let before = address % 64;
    let lines = if bytes == 0 { 0..0 } else { 0..before + bytes };
    lines
        .step_by(64)
        .map(move |offset| offset as isize - before as isize)
}

/// Independent FMA chains the peak measurement keeps in flight: enough to hide an FMA's
/// latency (4 cycles) on two FMA units, within the 16 or 32 vector registers.
const FMA_CHAINS: usize = 12;

/// The FMA peak of one core on `set`'s vectors, in GFLOP/s (an FMA counts as two): as many
/// rounds of [`FMA_CHAINS`] independent chains of fused multiply-adds as fit in `time`, the
/// best of several, with no memory traffic. The figure the CPU backend's speed is a share of.
pub fn fma_peak(set: InstructionSet, time: Duration) -> f64 {
    const ROUNDS: usize = 1 << 16;
    let lanes = set.dispatch(Lanes);
    let started = Instant::now();
    let mut best = 0.0f64;
    while started.elapsed() < time {
        let round = Instant::now();
        let sum = set.dispatch(FmaChains { rounds: ROUNDS });
        let seconds = round.elapsed().as_secs_f64();
        // The sum is used, so that the chains are computed.
        std::hint::black_box(sum);
        let flop = (2 * FMA_CHAINS * lanes * ROUNDS) as f64;
        best = best.max(flop / seconds / 1e9);
    }
    best
}

/// f32 lanes of a vector.
struct Lanes;

impl WithSimd for Lanes {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> usize {
        std::mem::size_of::<S::f32s>() / std::mem::size_of::<f32>()
    }
}

/// `rounds` rounds of [`FMA_CHAINS`] chains of a · x + b.
struct FmaChains {
    rounds: usize,
}

impl WithSimd for FmaChains {
    type Output = f32;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> f32 {
        let mut chains = [simd.splat_f32s(1.0); FMA_CHAINS];
        let (a, b) = (simd.splat_f32s(0.999_99), simd.splat_f32s(1e-6));
        for _ in 0..self.rounds {
            for chain in &mut chains {
                *chain = simd.mul_add_f32s(*chain, a, b);
            }
        }
        chains.iter().map(|&c| simd.reduce_sum_f32s(c)).sum()
    }
}

impl std::fmt::Display for InstructionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_or_says_why_not() {
        for set in InstructionSet::available() {
            assert_eq!(InstructionSet::parse_available(set.name()), Ok(set));
        }
        let unknown = InstructionSet::parse_available("sse9").unwrap_err();
        assert!(
            unknown.contains("unknown") && unknown.contains("scalar"),
            "{unknown}"
        );
        assert_eq!(InstructionSet::available()[0], InstructionSet::Scalar);
    }

    #[test]
    fn every_instruction_set_has_a_measured_fma_peak() {
        // Speed itself is the benchmark's to compare (`bench`); here only that a figure comes.
        for set in InstructionSet::available() {
            let peak = fma_peak(set, Duration::from_millis(20));
            assert!(peak.is_finite() && peak > 0.0, "{set}: {peak}");
        }
    }

    #[test]
    fn a_prefetch_asks_for_every_line_its_bytes_touch() {
        let lines = |address, bytes| line_offsets(address, bytes).collect::<Vec<_>>();
        assert_eq!(lines(128, 64), [0]);
        assert_eq!(lines(128, 65), [0, 64]);
        // 70 bytes from byte 60 of a line touch three lines: 0..64, 64..128 and 128..192.
        assert_eq!(lines(60, 70), [-60, 4, 68]);
        assert_eq!(lines(63, 1), [-63]);
        assert_eq!(lines(100, 0), [0isize; 0]);
    }
}
