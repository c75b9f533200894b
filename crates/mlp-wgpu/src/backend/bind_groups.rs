//! Bind groups, made once by the names of a kernel's bindings: `Sources` holds every buffer a
//! kernel may bind, and `Sources::group` lays the ones a kernel's table names out in its
//! binding order. Which array is read through a uniform binding on this device, and how W1 is
//! cut into pieces for that, are decided here too.

use super::layout::{LayerTables, StepSlots, Tensors};
use super::upload::DataBuffers;
use crate::context::GpuContext;
use crate::kernels::{BindingKind, Kernel, KernelOptions, UniformReads, WeightPieces};

/// Which arrays the kernels read through uniform bindings on this device (see
/// kernels::UniformReads): D1 of a batch where its rows start on vec4s and it fits, the
/// parameters of layers 2..L (`dense_bytes` of them) where they fit, and W1 in four pieces.
pub(super) fn uniform_reads(
    context: &GpuContext,
    sizes: &[usize],
    max_batch: usize,
    dense_bytes: u64,
) -> UniformReads {
    let max_bytes = context.limits.max_uniform_buffer_binding_size;
    let first_deltas_bytes = (max_batch * sizes[1] * 4) as u64;
    UniformReads {
        first_deltas: (sizes[1].is_multiple_of(8) && first_deltas_bytes <= max_bytes)
            .then_some((first_deltas_bytes / 16) as u32),
        dense_parameters: (dense_bytes <= max_bytes).then_some((dense_bytes / 16) as u32),
        first_weights: first_weight_pieces(
            sizes[0] + 1,
            sizes[1],
            max_bytes,
            u64::from(context.limits.min_uniform_buffer_offset_alignment),
        ),
    }
}

/// What every bind group is made from.
pub(super) struct Sources<'a> {
    pub(super) device: &'a wgpu::Device,
    pub(super) data: &'a DataBuffers,
    pub(super) tensors: &'a Tensors,
    pub(super) tables: &'a LayerTables,
    pub(super) steps: &'a StepSlots,
    pub(super) uniform: UniformReads,
}

/// A bind group, and the buffer ranges it binds in binding order, so that a step can be
/// written out as data (`GpuBackend::capture_step`).
#[derive(Clone)]
pub(super) struct Group {
    pub(super) bind_group: wgpu::BindGroup,
    pub(super) buffers: Vec<BoundBuffer>,
}

/// One binding of a [`Group`]: a buffer from `offset`, `size` bytes or to its end.
#[derive(Clone)]
pub(super) struct BoundBuffer {
    pub(super) buffer: wgpu::Buffer,
    pub(super) offset: u64,
    pub(super) size: Option<u64>,
}

/// A buffer for the binding of that name.
pub(super) type Named<'a> = (&'static str, wgpu::BufferBinding<'a>);

impl<'a> Sources<'a> {
    /// The buffers of a backend, its kernels' uniform reads as `options` chose them.
    pub(super) fn new(
        device: &'a wgpu::Device,
        data: &'a DataBuffers,
        tensors: &'a Tensors,
        (tables, steps): (&'a LayerTables, &'a StepSlots),
        options: &KernelOptions,
    ) -> Self {
        Self {
            device,
            data,
            tensors,
            tables,
            steps,
            uniform: options.uniform,
        }
    }

    /// A bind group of `kernel`: the step slot at its dynamic uniform, and each other binding
    /// its table declares from the buffer `buffers` give it by name. A name missing from
    /// `buffers`, or one there that the kernel does not declare, is a mistake in this crate,
    /// which the tests (every kernel's bind groups are made in them) show by the names.
    pub(super) fn group(&self, kernel: &Kernel, buffers: &[Named]) -> Group {
        let declared = &kernel.spec.bindings;
        if let Some((name, _)) =
            (buffers.iter()).find(|(n, _)| !declared.iter().any(|b| b.name == *n))
        {
            panic!(
                "{}'s bind group gives {name}, which it does not declare",
                kernel.name
            );
        }
        let bindings: Vec<wgpu::BufferBinding> = (declared.iter())
            .map(|b| match b.kind {
                BindingKind::DynamicUniform => self.steps.binding(),
                _ => (buffers.iter())
                    .find(|(name, _)| *name == b.name)
                    .map(|(_, buffer)| buffer.clone())
                    .unwrap_or_else(|| panic!("{}'s bind group gives no {}", kernel.name, b.name)),
            })
            .collect();
        let entries: Vec<wgpu::BindGroupEntry> = (bindings.iter().enumerate())
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(b.clone()),
            })
            .collect();
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&kernel.name),
            layout: &kernel.layout,
            entries: &entries,
        });
        let buffers = (bindings.iter())
            .map(|b| BoundBuffer {
                buffer: b.buffer.clone(),
                offset: b.offset,
                size: b.size.map(u64::from),
            })
            .collect();
        Group {
            bind_group,
            buffers,
        }
    }

    /// The number of weight layers.
    pub(super) fn depth(&self) -> usize {
        self.tables.layers.len()
    }
}

/// W1, `rows` rows (the bias's included) of `outputs` f32, in four pieces of whole rows that
/// each fit in a uniform binding of `max_bytes` starting on a multiple of `align` bytes. None
/// where W1's rows do not start on vec4s (sparse_forward then reads them one at a time) or four
/// pieces are too few.
pub(super) fn first_weight_pieces(
    rows: usize,
    outputs: usize,
    max_bytes: u64,
    align: u64,
) -> Option<WeightPieces> {
    let row_bytes = outputs as u64 * 4;
    if !outputs.is_multiple_of(8) || row_bytes == 0 {
        return None;
    }
    let piece_rows = (1..=max_bytes / row_bytes)
        .rev()
        .find(|&n| (n * row_bytes).is_multiple_of(align))?;
    let rows = rows as u64;
    let needed = rows.div_ceil(piece_rows);
    if needed > 4 {
        return None;
    }
    // A piece past the rows W1 needs binds the last real one again.
    let real = |piece: usize| (piece as u64).min(needed - 1);
    Some(WeightPieces {
        rows: piece_rows as u32,
        starts: std::array::from_fn(|piece| (real(piece) * piece_rows * row_bytes / 16) as u32),
        lengths: std::array::from_fn(|piece| {
            let rows_here = piece_rows.min(rows - real(piece) * piece_rows);
            (rows_here * row_bytes / 16) as u32
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::{WeightPieces, first_weight_pieces};

    #[test]
    fn the_seed_w1_fits_in_four_uniform_pieces_of_whole_rows() {
        // 785 rows of 64 f32 (256 bytes): 256 rows per 64 KiB piece, the last 17 rows.
        assert_eq!(
            first_weight_pieces(785, 64, 65536, 256),
            Some(WeightPieces {
                rows: 256,
                starts: [0, 4096, 2 * 4096, 3 * 4096],
                lengths: [4096, 4096, 4096, 17 * 64 / 4]
            })
        );
    }

    #[test]
    fn a_short_w1_binds_its_one_piece_four_times() {
        // 600 f32 a row (2,400 bytes): a piece starts on 256 bytes only every 8 rows.
        assert_eq!(
            first_weight_pieces(21, 600, 65536, 256),
            Some(WeightPieces {
                rows: 24,
                starts: [0; 4],
                lengths: [21 * 150; 4]
            })
        );
    }

    #[test]
    fn w1_that_needs_more_pieces_or_unaligned_rows_stays_in_storage() {
        // The modern preset's 785 x 256 needs 13 pieces of 64 rows.
        assert_eq!(first_weight_pieces(785, 256, 65536, 256), None);
        assert_eq!(first_weight_pieces(38, 45, 65536, 256), None);
    }
}
