//! mlp-core's backend interface on the GPU. Parameters, both data sets, activations, deltas
//! and the batch losses all live in GPU buffers. Training steps are queued and recorded many
//! to a command buffer, one compute pass each (`record`); nothing is read back until the caller
//! asks for the epoch's loss, the parameters, an evaluation or a trace.

use std::ops::Range;

use mlp_core::Dataset;
use mlp_core::backend::{
    Backend, BackendError, Evaluation, KernelTime, OptimiserState, StepKernels, StepTrace,
    TrainLoss,
};
use mlp_core::cpu::{check_order, check_output_width};
use mlp_core::network::Parameters;
use mlp_core::options::Hyperparameters;
use ndarray::Array2;

mod bind_groups;
mod capture;
mod evaluate;
mod layout;
mod loop_budget;
mod record;
mod schedule;
mod state;
mod timing;
mod upload;

use bind_groups::{BindGroups, Sources, uniform_reads};
pub use capture::{CapturedBinding, CapturedDispatch, StepCapture};
use evaluate::evaluation_chunk;
use layout::{
    BufferMaker, FUSED_UNITS, GROUP, LOSS_SLOTS, LayerTables, PerLayer, ROW_GROUP, STEP_GROUP,
    STEP_SLOTS, StepSlots, Tensors, div_ceil, optimiser_code,
};
use record::{PixelLists, PixelSource, Queued};
use schedule::ScheduleStep;
use upload::DataBuffers;

use crate::context::GpuContext;
use crate::error::GpuError;
use crate::kernels::{KernelOptions, Kernels, UniformReads};
use crate::variant::{DenseSchedule, KernelVariant, Reads};

pub struct GpuBackend {
    context: GpuContext,
    kernels: Kernels,
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
    bind: BindGroups,
    queued: Vec<Queued>,
    /// The schedule of layers 2..L that was chosen, and the one that runs: resolved once, when
    /// the backend is built or the schedule changed (see `resolve_schedule`).
    schedule: DenseSchedule,
    running: DenseSchedule,
    /// The kernels and bind groups of the schedule it runs, from its first step on.
    step: Option<ScheduleStep>,
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
        mlp_core::cpu::check_input_width(parameters, train)?;
        mlp_core::cpu::check_input_width(parameters, validation)?;
        check_output_width(parameters, hyper.output)?;
        let sizes = parameters.sizes();
        let eval_chunk = evaluation_chunk(&context, &sizes);
        let capacity = max_batch.max(eval_chunk);
        check_batch_fits(&context, &sizes, max_batch, capacity)?;
        let make = BufferMaker::new(&context);
        let reads_bytes = matches!(
            variant.schedule,
            DenseSchedule::Whole | DenseSchedule::MultiStep
        );
        let data = DataBuffers::upload(&make, train, validation, (max_batch, reads_bytes))?;
        let tensors = Tensors::new(
            &make,
            parameters,
            hyper,
            (max_batch, capacity),
            validation.len(),
        )?;
        let tables = LayerTables::new(&make, &sizes, hyper, &tensors);
        let step_slots = StepSlots::new(&context);
        let uniform = match variant.reads {
            Reads::Uniform => uniform_reads(&context, &sizes, max_batch, tables.dense_bytes),
            Reads::Storage => UniformReads::default(),
        };
        let kernel_options = KernelOptions {
            optimiser: optimiser_code(hyper.optimiser).0,
            layers: (sizes.len() - 1) as u32,
            row_group: ROW_GROUP,
            units: sizes[1..].iter().sum::<usize>() as u32,
            max_units: FUSED_UNITS,
            max_batch: max_batch as u32,
            step_slots: (STEP_SLOTS as u32, step_slots.pad_vec4s()),
            step_group: STEP_GROUP,
            uniform,
        };
        // The schedule's own kernels are built with its first step (build_schedule_kernels).
        let kernels = Kernels::new(&context.device, &kernel_options);
        let sources = Sources {
            device: &context.device,
            kernels: &kernels,
            data: &data,
            tensors: &tensors,
            tables: &tables,
            steps: &step_slots,
            uniform,
        };
        let (bind, pixel_lists) = BindGroups::new(&sources, max_batch);
        context.check()?;
        let mut backend = Self {
            context,
            kernels,
            kernel_options,
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
        backend.running = backend.resolve_schedule();
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
        self.running = self.resolve_schedule();
        self.build_schedule_kernels();
    }

    /// How the layers after the first are computed (see `resolve_schedule`).
    pub fn dense_schedule(&self) -> DenseSchedule {
        self.running
    }

    /// How the layers after the first are computed: as chosen, except that a network with
    /// more than FUSED_UNITS units in layers 1..L runs the schedules that keep a row's values
    /// in private arrays (fused, whole, multi-step) as DenseSchedule::Registers; the whole
    /// step runs fused where its images' bytes are not uploaded or a row's pass is past the
    /// driver's loop budget; and the multi-step kernel runs as the whole step where it does
    /// not fit.
    fn resolve_schedule(&self) -> DenseSchedule {
        use DenseSchedule::{Fused, MultiStep, Registers, Whole};
        let options = &self.kernel_options;
        let row_fits = self
            .context
            .loop_iteration_limit()
            .is_none_or(|budget| loop_budget::row_pass(&self.sizes) <= budget);
        match self.schedule {
            Fused | Whole | MultiStep if options.units > options.max_units => Registers,
            // The whole step's update reads the images' bytes, uploaded where a backend is
            // built for it and they fit a binding.
            Whole | MultiStep if self.data.train_bytes.is_none() || !row_fits => Fused,
            MultiStep if !self.multi_step_fits() => Whole,
            schedule => schedule,
        }
    }

    /// Whether multi_step.wgsl fits the batch and the device: its one workgroup of
    /// STEP_GROUP, a batch's losses in its workgroup memory, every step slot in one uniform
    /// binding, and at least one step within the driver's loop budget.
    fn multi_step_fits(&self) -> bool {
        let limits = &self.context.limits;
        let step_bytes = self.step_slots.stride * STEP_SLOTS as u64;
        self.max_batch as u64 * 4 <= u64::from(limits.max_compute_workgroup_storage_size)
            && STEP_GROUP <= limits.max_compute_invocations_per_workgroup
            && STEP_GROUP <= limits.max_compute_workgroup_size_x
            && step_bytes <= limits.max_uniform_buffer_binding_size
            && self.multi_step_run_limit() > 0
    }

    /// The most steps one dispatch of multi_step.wgsl runs: STEP_SLOTS, or on a driver with a
    /// loop budget as many as fit in it.
    fn multi_step_run_limit(&self) -> usize {
        match self.context.loop_iteration_limit() {
            None => STEP_SLOTS,
            Some(budget) => {
                // Each invocation takes a row in every STEP_GROUP of the batch.
                let rows = self.max_batch.div_ceil(STEP_GROUP as usize) as u64;
                let per_step = rows * loop_budget::row_pass(&self.sizes)
                    + loop_budget::update_share(&self.sizes, self.max_batch, STEP_GROUP as usize)
                    + 1;
                ((budget / per_step) as usize).min(STEP_SLOTS)
            }
        }
    }

    /// Builds the kernels of the schedule it runs and their bind groups, where they are not
    /// built yet: a schedule's pipelines are made only once a run uses it.
    fn build_schedule_kernels(&mut self) {
        let running = self.dense_schedule();
        if self.step.as_ref().is_some_and(|step| step.runs(running)) {
            return;
        }
        let sources = Sources {
            device: &self.context.device,
            kernels: &self.kernels,
            data: &self.data,
            tensors: &self.tensors,
            tables: &self.tables,
            steps: &self.step_slots,
            uniform: self.kernel_options.uniform,
        };
        self.step = Some(ScheduleStep::build(running, &self.kernel_options, &sources));
    }

    /// The kernels built so far: those every schedule runs, and those of each schedule of
    /// layers 2..L that a step has used.
    pub fn built_kernels(&self) -> Vec<&str> {
        self.all_kernels()
            .into_iter()
            .map(|k| k.name.as_str())
            .collect()
    }

    fn all_kernels(&self) -> Vec<&crate::kernels::Kernel> {
        let mut kernels = self.kernels.built_kernels();
        kernels.extend(self.step.iter().flat_map(|step| step.kernels()));
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

impl Backend for GpuBackend {
    fn step_kernels(&self) -> StepKernels {
        let depth = self.sizes.len() - 1;
        let per_layer = |first: &str, rest: &str| -> Vec<String> {
            (0..depth)
                .map(|k| if k == 0 { first } else { rest }.to_string())
                .collect()
        };
        let forward = match self.dense_schedule() {
            DenseSchedule::Tiled => "linear_forward_tiled",
            _ => "linear_forward",
        };
        match self.dense_schedule() {
            DenseSchedule::Whole => StepKernels {
                activations: per_layer("step_forward_backward", "step_forward_backward"),
                deltas: per_layer("step_forward_backward", "step_forward_backward"),
                parameters: per_layer("step_weights_update", "step_weights_update"),
            },
            DenseSchedule::MultiStep => StepKernels {
                activations: per_layer("multi_step", "multi_step"),
                deltas: per_layer("multi_step", "multi_step"),
                parameters: per_layer("multi_step", "multi_step"),
            },
            DenseSchedule::Fused => StepKernels {
                activations: per_layer("sparse_forward", "row_forward_backward"),
                deltas: per_layer("row_forward_backward", "row_forward_backward"),
                parameters: per_layer("sparse_weights_update", "layers_weights_update"),
            },
            DenseSchedule::Registers | DenseSchedule::Tiled => StepKernels {
                // Under dropout a hidden layer's output is what dropout_forward made of it.
                activations: (0..depth)
                    .map(|k| match (self.hyper.dropout, k) {
                        (Some(_), k) if k + 1 < depth => format!(
                            "{} + dropout_forward",
                            if k == 0 { "sparse_forward" } else { forward }
                        ),
                        (_, 0) => "sparse_forward".into(),
                        _ => forward.into(),
                    })
                    .collect(),
                deltas: (0..depth)
                    .map(|k| {
                        if k + 1 == depth {
                            "output_delta"
                        } else {
                            "hidden_delta"
                        }
                        .into()
                    })
                    .collect(),
                parameters: per_layer("sparse_weights_update", "weights_update"),
            },
        }
    }

    fn name(&self) -> String {
        let a = &self.context.adapter;
        let per_step = self.dispatches(PixelSource::PerStep);
        let cached = self.dispatches(PixelSource::Cached { spans: 0 });
        let dispatches = match self.pixel_lists {
            Some(_) if cached != per_step => format!(
                "{cached} in the file order, {} shuffled",
                per_step.dispatches
            ),
            _ => per_step.to_string(),
        };
        let why = self
            .variant_reason
            .as_ref()
            .map_or(String::new(), |reason| format!(" ({reason})"));
        format!(
            "gpu ({}, {} {}; {} kernels{why}, {dispatches})",
            a.name,
            a.backend,
            a.device_type,
            self.variant(),
        )
    }

    fn set_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError> {
        self.write_parameters(parameters)
    }

    fn parameters(&mut self) -> Result<Parameters, BackendError> {
        self.read_parameters()
    }

    fn optimiser_state(&mut self) -> Result<OptimiserState, BackendError> {
        self.read_optimiser_state()
    }

    fn set_optimiser_state(&mut self, state: &OptimiserState) -> Result<(), BackendError> {
        self.write_optimiser_state(state)
    }

    fn set_learning_rate(&mut self, learning_rate: f32) -> Result<(), BackendError> {
        // Each queued step keeps the rate it was queued with.
        self.hyper.learning_rate = learning_rate;
        Ok(())
    }

    fn set_order(&mut self, order: &[u32]) -> Result<(), BackendError> {
        check_order(order, self.train_count)?;
        // Steps queued before this call must still read the old order.
        self.flush()?;
        self.context
            .queue
            .write_buffer(&self.data.train.order, 0, bytemuck::cast_slice(order));
        self.file_order = order.iter().enumerate().all(|(i, &o)| o as usize == i);
        Ok(())
    }

    fn train_batch(&mut self, rows: Range<usize>) -> Result<(), BackendError> {
        mlp_core::backend::check_rows(&rows, self.train_count)?;
        if rows.len() > self.max_batch {
            return Err(BackendError::Device {
                backend: self.name(),
                message: format!(
                    "a batch of {} rows is larger than the {} this backend was built for",
                    rows.len(),
                    self.max_batch
                ),
            });
        }
        if self.losses_used == LOSS_SLOTS {
            self.collect_losses()?;
        }
        self.build_schedule_kernels();
        self.steps += 1;
        let pixels = self.pixel_source(&rows);
        self.queued.push(Queued::TrainingStep {
            rows,
            loss_slot: self.losses_used,
            learning_rate: self.hyper.learning_rate,
            t: self.steps,
            pixels,
        });
        self.losses_used += 1;
        if self.queued.len() >= STEP_SLOTS {
            self.flush()?;
        }
        Ok(())
    }

    fn kernel_times(&mut self, rows: Range<usize>) -> Result<Vec<KernelTime>, BackendError> {
        self.train_batch(rows)?;
        Ok(self.time_last_step()?)
    }

    fn take_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        self.collect_losses()?;
        Ok(std::mem::take(&mut self.loss_carry))
    }

    fn set_validation(&mut self, images: &Dataset) -> Result<(), BackendError> {
        let built = (self.validation_count, self.sizes[0]);
        mlp_core::backend::check_same_shape(built, images)?;
        Ok(self.replace_validation_images(images)?)
    }

    fn peek_train_loss(&mut self) -> Result<TrainLoss, BackendError> {
        // The losses read back are added to the carry in the order a take adds them.
        self.collect_losses()?;
        Ok(self.loss_carry)
    }

    fn trace_batch(&mut self, rows: Range<usize>) -> Result<StepTrace, BackendError> {
        let b = rows.len();
        self.train_batch(rows)?;
        self.flush()?;
        let read = |tensors: &PerLayer, widths: &[usize]| -> Result<Vec<Array2<f32>>, GpuError> {
            tensors
                .regions
                .iter()
                .zip(widths)
                .map(|(region, &n)| {
                    let values = self.read_f32_at(&tensors.buffer, region.start, b * n)?;
                    Ok(Array2::from_shape_vec((b, n), values).expect("b x n values"))
                })
                .collect()
        };
        Ok(StepTrace {
            activations: read(&self.tensors.activations, &self.sizes[1..])?,
            deltas: read(&self.tensors.deltas, &self.sizes[1..])?,
        })
    }

    fn evaluate(&mut self) -> Result<Evaluation, BackendError> {
        Ok(self.evaluate_validation()?)
    }

    fn validation_outputs(&mut self) -> Result<Array2<f32>, BackendError> {
        Ok(self.output_layer_of_validation()?)
    }
}
