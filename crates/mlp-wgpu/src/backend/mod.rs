//! mlp-core's backend interface on the GPU. Parameters, both data sets, activations, deltas
//! and the batch losses all live in GPU buffers. Training steps are queued and recorded many
//! to a command buffer, one compute pass each (`record`); nothing is read back until the caller
//! asks for the epoch's loss, the parameters, an evaluation or a trace.

use mlp_core::Dataset;
use mlp_core::backend::{BackendError, TrainLoss};
use mlp_core::cpu::check_output_width;
use mlp_core::network::Parameters;
use mlp_core::options::Hyperparameters;

mod bind_groups;
mod capture;
mod evaluate;
mod interface;
mod layout;
mod loop_budget;
mod record;
mod recorder;
mod schedules;
mod shared_kernels;
mod state;
mod timing;
mod uniforms;
mod upload;

use bind_groups::{Sources, uniform_reads};
pub use capture::{CapturedBinding, CapturedDispatch, StepCapture};
use evaluate::evaluation_chunk;
use layout::{
    BufferMaker, FUSED_UNITS, GROUP, LayerTables, ROW_GROUP, STEP_GROUP, STEP_SLOTS, StepSlots,
    Tensors, div_ceil,
};
use record::{PixelLists, Queued};
use schedules::StepSchedule;
use shared_kernels::{SharedGroups, SharedKernels};
use uniforms::optimiser_code;
use upload::DataBuffers;

use crate::context::GpuContext;
use crate::error::GpuError;
use crate::kernels::{Kernel, KernelOptions, UniformReads};
use crate::variant::{DenseSchedule, KernelVariant, Reads};

pub struct GpuBackend {
    context: GpuContext,
    /// The kernels every schedule runs, and their bind groups.
    kernels: SharedKernels,
    bind: SharedGroups,
    kernel_options: KernelOptions,
    tables: LayerTables,
    hyper: Hyperparameters,
    /// Training steps queued so far, for Adam's bias corrections.
    steps: u64,
    /// Both data sets as the kernels read them, the training order among them.
    data: DataBuffers,
    /// Whether the training order is the file order, where `pixel_lists` hold.
    file_order: bool,
    /// None where the lists would not fit in one binding.
    pixel_lists: Option<PixelLists>,
    /// Units per layer, input first.
    sizes: Vec<usize>,
    /// Pixels per image row, for the shifts.
    image_cols: u32,
    max_batch: usize,
    train_count: usize,
    validation_count: usize,
    /// Validation rows per evaluation dispatch (see evaluation_chunk).
    eval_chunk: usize,
    validation_labels: Vec<u8>,
    step_slots: StepSlots,
    tensors: Tensors,
    queued: Vec<Queued>,
    /// The schedule of layers 2..L that was chosen, and the one that runs: resolved once, when
    /// the backend is built or the schedule changed (`schedules::resolve`).
    schedule: DenseSchedule,
    running: DenseSchedule,
    /// The schedule it runs, built with its first step, and which schedule that is.
    step: Option<(DenseSchedule, Box<dyn StepSchedule>)>,
    /// Where the kernels read their read-only arrays (UniformReads where `Reads::Uniform`).
    reads: Reads,
    /// Why the variant was chosen, where the caller said.
    variant_reason: Option<String>,
    /// Loss slots written since the last read.
    losses_used: usize,
    /// Batch losses already read back early (only when more than LOSS_SLOTS batches are
    /// trained between two reads).
    loss_carry: TrainLoss,
}

/// The network's sizes and the validation rows per evaluation dispatch, where the data sets and
/// the output fit the network and a batch of `max_batch` rows fits the device.
fn check_fits(
    context: &GpuContext,
    parameters: &Parameters,
    hyper: &Hyperparameters,
    (train, validation): (&Dataset, &Dataset),
    max_batch: usize,
) -> Result<(Vec<usize>, usize), BackendError> {
    mlp_core::cpu::check_input_width(parameters, train)?;
    mlp_core::cpu::check_input_width(parameters, validation)?;
    check_output_width(parameters, hyper.output)?;
    let sizes = parameters.sizes();
    let eval_chunk = evaluation_chunk(context, &sizes);
    check_batch_fits(context, &sizes, max_batch, max_batch.max(eval_chunk))?;
    Ok((sizes, eval_chunk))
}

/// Fails where a batch of `max_batch` rows, or the `capacity` rows of a training batch or an
/// evaluation chunk, is more than the device can bind or dispatch.
fn check_batch_fits(
    context: &GpuContext,
    sizes: &[usize],
    max_batch: usize,
    capacity: usize,
) -> Result<(), GpuError> {
    // A0 is never stored: the first layer reads the images' lit pixels.
    let widest = sizes[1..].iter().copied().max().unwrap_or(1);
    let pixels = sizes[0];
    let remedy = "use a smaller --batch-size";
    context.check_storage_size(
        &format!("a batch of {capacity} rows of {widest} activations"),
        (capacity * widest * 4) as u64,
        remedy,
    )?;
    context.check_storage_size(
        &format!("the lit pixels of a batch of {max_batch} images, by pixel"),
        (max_batch * pixels * 8) as u64,
        remedy,
    )?;
    let groups_needed = div_ceil(capacity.max(pixels + 1), GROUP);
    let allowed = context.limits.max_compute_workgroups_per_dimension;
    if groups_needed > allowed {
        return Err(GpuError::LimitExceeded {
            what: format!("a batch of {capacity} images of {pixels} pixels"),
            remedy,
            needed: u64::from(groups_needed),
            limit: "max_compute_workgroups_per_dimension",
            allowed: u64::from(allowed),
            adapter: context.adapter.name.clone(),
        });
    }
    Ok(())
}

/// The sizes and choices the kernels of a backend are built for: its network, batch and
/// optimiser, and where its kernels read their read-only arrays.
fn kernel_options(
    context: &GpuContext,
    sizes: &[usize],
    hyper: &Hyperparameters,
    max_batch: usize,
    reads: Reads,
    (tables, step_slots): (&LayerTables, &StepSlots),
) -> KernelOptions {
    let uniform = match reads {
        Reads::Uniform => uniform_reads(context, sizes, max_batch, tables.dense_bytes),
        Reads::Storage => UniformReads::default(),
    };
    KernelOptions {
        optimiser: optimiser_code(hyper.optimiser).0,
        layers: (sizes.len() - 1) as u32,
        row_group: ROW_GROUP,
        units: sizes[1..].iter().sum::<usize>() as u32,
        max_units: FUSED_UNITS,
        max_batch: max_batch as u32,
        step_slots: (STEP_SLOTS as u32, step_slots.pad_vec4s()),
        step_group: STEP_GROUP,
        uniform,
    }
}

impl GpuBackend {
    /// Uploads `parameters` and both data sets once; `max_batch` is the largest batch that
    /// [`Backend::train_batch`] will be given. The steps: check what must fit the device,
    /// upload the data, make the tensors and the tables the kernels read, build the kernels
    /// this network and device call for, and bind them.
    /// The kernels are the adapter's default variant ([`KernelVariant::default_for`]).
    pub fn new(
        context: GpuContext,
        parameters: &Parameters,
        hyper: &Hyperparameters,
        max_batch: usize,
        train: &Dataset,
        validation: &Dataset,
    ) -> Result<Self, BackendError> {
        let variant = KernelVariant::default_for(&context.adapter.device_type);
        let data = (train, validation);
        Self::with_variant(context, parameters, hyper, max_batch, data, variant)
    }

    /// [`GpuBackend::new`], running the kernels of `variant`.
    pub fn with_variant(
        context: GpuContext,
        parameters: &Parameters,
        hyper: &Hyperparameters,
        max_batch: usize,
        (train, validation): (&Dataset, &Dataset),
        variant: KernelVariant,
    ) -> Result<Self, BackendError> {
        let (sizes, eval_chunk) =
            check_fits(&context, parameters, hyper, (train, validation), max_batch)?;
        let rows = (max_batch, max_batch.max(eval_chunk));
        let make = BufferMaker::new(&context);
        let reads_bytes = schedules::entry(variant.schedule).reads_image_bytes;
        let data = DataBuffers::upload(&make, train, validation, (max_batch, reads_bytes))?;
        let tensors = Tensors::new(&make, parameters, hyper, rows, validation.len())?;
        let tables = LayerTables::new(&make, &sizes, hyper, &tensors);
        let step_slots = StepSlots::new(&context);
        let built = (&tables, &step_slots);
        let options = kernel_options(&context, &sizes, hyper, max_batch, variant.reads, built);
        // The schedule's own kernels are built with its first step (build_schedule_kernels).
        let kernels = SharedKernels::new(&context.device, &options);
        let sources = Sources::new(&context.device, &data, &tensors, built, &options);
        let (bind, pixel_lists) = SharedGroups::new(&sources, &kernels, max_batch);
        context.check()?;
        let mut backend = Self {
            context,
            kernels,
            kernel_options: options,
            tables,
            hyper: *hyper,
            steps: 0,
            data,
            file_order: true,
            pixel_lists,
            sizes,
            image_cols: train.cols as u32,
            max_batch,
            train_count: train.len(),
            validation_count: validation.len(),
            eval_chunk,
            validation_labels: validation.labels.clone(),
            step_slots,
            tensors,
            bind,
            queued: Vec::new(),
            schedule: variant.schedule,
            running: variant.schedule,
            step: None,
            reads: variant.reads,
            variant_reason: None,
            losses_used: 0,
            loss_carry: TrainLoss::default(),
        };
        backend.running = schedules::resolve(&backend, backend.schedule);
        Ok(backend)
    }

    /// Why this backend runs its variant ("tuned on this adapter"), for its name.
    pub fn set_variant_reason(&mut self, reason: &str) {
        self.variant_reason = Some(reason.to_string());
    }

    /// The variant this backend runs: its schedule as it runs (a network too wide for the
    /// fused kernel runs registers) and its reads.
    pub fn variant(&self) -> KernelVariant {
        KernelVariant {
            schedule: self.dense_schedule(),
            reads: self.reads,
        }
    }

    /// Chooses how the layers after the first are computed from the next step on. The whole
    /// step and the multi-step kernel need the images' bytes, which only a backend built for
    /// one of them (`with_variant`) uploads: elsewhere they run fused.
    pub fn set_dense_schedule(&mut self, schedule: DenseSchedule) {
        self.schedule = schedule;
        self.running = schedules::resolve(self, schedule);
        self.build_schedule_kernels();
    }

    /// How the layers after the first are computed: as chosen, or where the backend cannot run
    /// that, its fallback (`schedules::resolve`).
    pub fn dense_schedule(&self) -> DenseSchedule {
        self.running
    }

    /// Builds the kernels of the schedule it runs and their bind groups, where they are not
    /// built yet: a schedule's pipelines are made only once a run uses it.
    fn build_schedule_kernels(&mut self) {
        let running = self.dense_schedule();
        if self
            .step
            .as_ref()
            .is_some_and(|(built, _)| *built == running)
        {
            return;
        }
        let sources = Sources::new(
            &self.context.device,
            &self.data,
            &self.tensors,
            (&self.tables, &self.step_slots),
            &self.kernel_options,
        );
        let step = schedules::build(running, &self.kernel_options, &sources);
        self.step = Some((running, step));
    }

    /// The kernels built so far: those every schedule runs, and those of each schedule of
    /// layers 2..L that a step has used.
    pub fn built_kernels(&self) -> Vec<&str> {
        self.all_kernels()
            .into_iter()
            .map(|k| k.name.as_str())
            .collect()
    }

    fn all_kernels(&self) -> Vec<&Kernel> {
        let mut kernels = self.kernels.all();
        kernels.extend(self.step.iter().flat_map(|(_, step)| step.kernels()));
        kernels
    }

    /// The pipelines built so far, as any WebGPU implementation could build them again.
    pub fn pipeline_specs(&self) -> Vec<crate::PipelineSpec> {
        self.all_kernels()
            .into_iter()
            .map(|k| k.spec.clone())
            .collect()
    }

    /// The adapter's name.
    pub fn adapter_name(&self) -> &str {
        &self.context.adapter.name
    }

    /// Reads `count` f32 values from the start of `buffer`.
    fn read_f32(&self, buffer: &wgpu::Buffer, count: usize) -> Result<Vec<f32>, GpuError> {
        self.read_f32_at(buffer, 0, count)
    }

    /// Reads `count` f32 values of `buffer` from byte `offset`.
    fn read_f32_at(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        count: usize,
    ) -> Result<Vec<f32>, GpuError> {
        if count == 0 {
            return Ok(Vec::new());
        }
        let bytes = self
            .context
            .read_buffer(buffer, offset, (count * 4) as u64)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// Reads the batch losses since the last read into the carry, and frees their slots.
    fn collect_losses(&mut self) -> Result<(), GpuError> {
        self.flush()?;
        let losses = self.read_f32(&self.tensors.losses, self.losses_used)?;
        for loss in losses {
            self.loss_carry.add(f64::from(loss));
        }
        self.losses_used = 0;
        Ok(())
    }
}
