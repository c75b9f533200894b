//! Adapter, device and queue: found once, shared by everything that runs on the GPU.

use std::sync::{Arc, Mutex};

use crate::error::GpuError;

/// What `mlp-cli devices` prints of one adapter.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
}

/// The driver stacks looked at: WGPU_BACKEND's (`vulkan`, `gl`, `metal`, `dx12`, comma
/// separated), else wgpu's primary ones (Vulkan, Metal, DX12).
fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

fn instance() -> wgpu::Instance {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = backends();
    wgpu::Instance::new(descriptor)
}

fn summary(info: &wgpu::AdapterInfo) -> AdapterSummary {
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
    }
}

/// One adapter of [`list_adapters`].
#[derive(Debug, Clone)]
pub struct ListedAdapter {
    pub summary: AdapterSummary,
    /// On a driver stack a run looks at (WGPU_BACKEND's, else Vulkan, Metal and DX12).
    pub usable: bool,
    /// The adapter a run without `--adapter` picks.
    pub picked: bool,
}

/// Every adapter wgpu can open here, on every driver stack it knows (GL's included, which a
/// run looks at only under WGPU_BACKEND=gl), marking the one a run would pick.
pub fn list_adapters() -> Vec<ListedAdapter> {
    let mut descriptor = wgpu::InstanceDescriptor::new_without_display_handle();
    descriptor.backends = wgpu::Backends::all();
    let every = wgpu::Instance::new(descriptor);
    let picked = pollster::block_on(instance().request_adapter(&high_performance()))
        .ok()
        .map(|a| a.get_info());
    let usable = backends();
    pollster::block_on(every.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| a.get_info())
        .map(|info| ListedAdapter {
            summary: summary(&info),
            usable: usable.contains(info.backend.into()),
            picked: picked
                .as_ref()
                .is_some_and(|p| (&p.name, p.backend) == (&info.name, info.backend)),
        })
        .collect()
}

/// The adapter a run asks for where `--adapter` names none.
fn high_performance() -> wgpu::RequestAdapterOptions<'static, 'static> {
    wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }
}

/// The device and queue, with the adapter they came from and the first error the device
/// reported (wgpu reports validation and out-of-memory errors asynchronously).
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    /// Nanoseconds per timestamp tick, where timestamps can be written inside compute passes.
    pub timestamp_period: Option<f32>,
    error: Arc<Mutex<Option<String>>>,
}

/// The first adapter whose name contains `filter` (case-insensitive); the error lists those
/// there are.
fn adapter_named(instance: &wgpu::Instance, filter: &str) -> Result<wgpu::Adapter, GpuError> {
    let wanted = filter.to_lowercase();
    let adapters = pollster::block_on(instance.enumerate_adapters(backends()));
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let info = summary(&a.get_info());
            format!("{} [{} {}]", info.name, info.backend, info.device_type)
        })
        .collect();
    match adapters
        .into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(&wanted))
    {
        Some(adapter) => Ok(adapter),
        None if names.is_empty() => Err(GpuError::NoAdapter {
            filter: format!(", with a name containing {filter:?}"),
        }),
        None => Err(GpuError::NoAdapterNamed {
            filter: filter.to_string(),
            found: names,
        }),
    }
}

impl GpuContext {
    /// Opens the high-performance adapter, or the first whose name contains `name_filter`
    /// (case-insensitive), with every limit the adapter has, so that large batches fit where
    /// the hardware allows.
    pub fn new(name_filter: Option<&str>) -> Result<Self, GpuError> {
        Self::with_limits(name_filter, None)
    }

    /// [`GpuContext::new`] with the device's limits `limits` instead of the adapter's, such as
    /// WebGPU's defaults (`wgpu::Limits::default()`), which browsers enforce: everything built
    /// on the context then keeps to them.
    pub fn with_limits(
        name_filter: Option<&str>,
        limits: Option<wgpu::Limits>,
    ) -> Result<Self, GpuError> {
        let instance = instance();
        let adapter =
            match name_filter {
                Some(filter) => adapter_named(&instance, filter)?,
                None => pollster::block_on(instance.request_adapter(&high_performance())).map_err(
                    |_| GpuError::NoAdapter {
                        filter: String::new(),
                    },
                )?,
            };
        let info = summary(&adapter.get_info());
        let limits = limits.unwrap_or_else(|| adapter.limits());
        // Timestamps between dispatches, where the adapter has them, for `bench --profile`.
        let timestamps =
            wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES;
        let features = adapter.features() & timestamps;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("mlp"),
            required_limits: limits.clone(),
            required_features: features,
            ..Default::default()
        }))
        .map_err(|e| GpuError::RequestDevice {
            adapter: info.name.clone(),
            message: e.to_string(),
        })?;
        let error = Arc::new(Mutex::new(None));
        let sink = Arc::clone(&error);
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut first = sink.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }));
        Ok(Self {
            timestamp_period: (features == timestamps).then(|| queue.get_timestamp_period()),
            device,
            queue,
            adapter: info,
            limits,
            error,
        })
    }

    /// Fails with the first error the device reported, if any.
    pub fn check(&self) -> Result<(), GpuError> {
        let reported = self.error.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match reported {
            Some(message) => Err(GpuError::Device {
                adapter: self.adapter.name.clone(),
                message,
            }),
            None => Ok(()),
        }
    }

    /// The largest storage buffer this device can bind, in bytes.
    pub(crate) fn storage_limit(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// The most loop iterations one invocation may run in all, where the driver ends loops
    /// past it without an error: Mesa's llvmpipe (lavapipe on Vulkan, and on GL) stops every
    /// loop of an invocation once its loops have run LP_MAX_TGSI_LOOP_ITERATIONS (65,535)
    /// times together. None where no such budget is known.
    pub fn loop_iteration_limit(&self) -> Option<u64> {
        self.adapter.name.starts_with("llvmpipe").then_some(65_535)
    }

    /// Whether a storage buffer of `bytes` can be bound on this device.
    pub fn storage_allows(&self, bytes: u64) -> bool {
        bytes <= self.storage_limit()
    }

    /// Fails unless a storage buffer of `bytes` can be bound on this device.
    pub fn check_storage_size(
        &self,
        what: &str,
        bytes: u64,
        remedy: &'static str,
    ) -> Result<(), GpuError> {
        let allowed = self.storage_limit();
        if bytes > allowed {
            return Err(GpuError::LimitExceeded {
                what: what.to_string(),
                remedy,
                needed: bytes,
                limit: "max_storage_buffer_binding_size",
                allowed,
                adapter: self.adapter.name.clone(),
            });
        }
        Ok(())
    }

    /// Copies `size` bytes of `buffer` from byte `offset` to the host: waits for the GPU.
    pub fn read_buffer(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        size: u64,
    ) -> Result<Vec<u8>, GpuError> {
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read-back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = self.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, offset, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let slice = staging.slice(..);
        let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
        slice.map_async(wgpu::MapMode::Read, move |result| {
            sender.send(result).unwrap_or(())
        });
        let device_error = |message: String| GpuError::Device {
            adapter: self.adapter.name.clone(),
            message,
        };
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| device_error(e.to_string()))?;
        match pollster::block_on(receiver.receive()) {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(device_error(e.to_string())),
            None => return Err(device_error("the read-back was dropped".to_string())),
        }
        self.check()?;
        let bytes = slice
            .get_mapped_range()
            .map_err(|e| device_error(e.to_string()))?
            .to_vec();
        staging.unmap();
        Ok(bytes)
    }
}
