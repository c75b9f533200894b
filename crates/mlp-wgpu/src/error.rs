/// What can go wrong on the GPU side; each message says what was tried and what to do.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found (tried Vulkan, Metal and DX12{filter}). Install a GPU driver, or \
         Mesa's software Vulkan driver lavapipe (Debian/Ubuntu: apt-get install mesa-vulkan-drivers \
         libvulkan1); `mlp-cli devices` lists what wgpu sees"
    )]
    NoAdapter { filter: String },
    #[error(
        "no GPU adapter has a name containing {filter:?}; these were found: {}. Pass part of \
         one of their names to --adapter", found.join(", ")
    )]
    NoAdapterNamed { filter: String, found: Vec<String> },
    #[error("could not open a device on {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },
    #[error(
        "{what} needs {needed} bytes, over this device's {limit} of {allowed} bytes ({adapter}); \
         {remedy}"
    )]
    LimitExceeded {
        what: String,
        /// What the user can change: "use a smaller --batch-size", say.
        remedy: &'static str,
        needed: u64,
        limit: &'static str,
        allowed: u64,
        adapter: String,
    },
    #[error("the {set} are too large for the GPU backend: {problem}")]
    ImagesTooLarge { set: String, problem: String },
    #[error("the GPU reported an error ({adapter}): {message}")]
    Device { adapter: String, message: String },
}

impl From<GpuError> for mlp_core::BackendError {
    fn from(error: GpuError) -> Self {
        mlp_core::BackendError::Device {
            backend: "gpu".to_string(),
            message: error.to_string(),
        }
    }
}
