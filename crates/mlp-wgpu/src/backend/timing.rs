//! Where a step's time goes on the device: each dispatch of the last queued step between two
//! GPU timestamps, for `bench --profile`.

use mlp_core::backend::KernelTime;

use super::GpuBackend;
use super::record::PixelSource;
use crate::error::GpuError;

impl GpuBackend {
    /// Runs what is queued, timing each dispatch of the last unit (a training step), and
    /// returns each dispatch's name and seconds; nothing where the adapter has no timestamps.
    pub(super) fn time_last_step(&mut self) -> Result<Vec<KernelTime>, GpuError> {
        let Some(period) = self.context.timestamp_period else {
            return Ok(Vec::new());
        };
        let device = &self.context.device;
        let capacity = self.dispatches(PixelSource::PerStep).dispatches as u32 + 1;
        let timer = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel times"),
            ty: wgpu::QueryType::Timestamp,
            count: capacity,
        });
        let names = self.flush_timed(Some(&timer))?;
        let count = names.len() as u32 + 1;
        let device = &self.context.device;
        let resolved = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel times"),
            size: u64::from(count) * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.resolve_query_set(&timer, 0..count, &resolved, 0);
        self.context.queue.submit([encoder.finish()]);
        let bytes = self
            .context
            .read_buffer(&resolved, 0, u64::from(count) * 8)?;
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(names
            .into_iter()
            .zip(ticks.windows(2))
            .map(|(kernel, pair)| KernelTime {
                kernel,
                seconds: pair[1].saturating_sub(pair[0]) as f64 * f64::from(period) * 1e-9,
            })
            .collect())
    }
}
