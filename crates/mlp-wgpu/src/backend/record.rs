//! Queued work and its recording: a training step or an evaluation chunk becomes a unit of
//! work, and units are recorded up to STEP_SLOTS per command buffer in one compute pass, each
//! unit's rows in a uniform slot bound at a dynamic offset.

use std::ops::Range;

use mlp_core::cpu::{AdamStep, reduction_scale};
use mlp_core::options::{Hyperparameters, Optimiser};

use super::GpuBackend;
use super::bind_groups::Group;
use super::layout::{BLOCK, GROUP, PIXEL_GROUP, STEP_SLOTS, TILE, div_ceil};
use super::recorder::{Dispatched, Recorder};
use super::uniforms::StepUniform;
use crate::error::GpuError;
use crate::variant::Dispatches;

/// Where a training step finds its batch's lit pixels regrouped by pixel, for W1's update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PixelSource {
    /// pixel_columns.wgsl regroups the batch, a dispatch in the step itself.
    PerStep,
    /// The lists built once at upload for the file order (`PixelLists`); this batch's spans
    /// start at this index.
    Cached { spans: u32 },
}

/// The lit pixels of every batch of the training set in its file order, regrouped by pixel
/// once at upload: the batches of that order are the same every epoch, so an epoch in it (the
/// seed's) needs no pixel_columns dispatch. Other orders, and batches that are not the
/// `batch`-sized ones from row 0, use the per-step kernel.
pub(super) struct PixelLists {
    /// The batch size the lists were made for.
    pub(super) batch: usize,
    /// sparse_weights_update.wgsl over these lists.
    pub(super) sparse_weights_update: Group,
}

/// Work waiting to be recorded: a training step, or a chunk of the validation set's forward
/// pass and evaluation.
#[derive(Debug, Clone)]
pub(super) enum Queued {
    TrainingStep {
        rows: Range<usize>,
        loss_slot: usize,
        learning_rate: f32,
        /// The step's number from 1, for Adam's bias corrections.
        t: u64,
        pixels: PixelSource,
    },
    EvaluationChunk {
        rows: Range<usize>,
    },
}

impl Queued {
    /// The Step uniform of this unit of work, for images `image_cols` pixels wide.
    pub(super) fn uniform(&self, hyper: &Hyperparameters, image_cols: u32) -> StepUniform {
        match self {
            Queued::TrainingStep {
                rows,
                loss_slot,
                learning_rate,
                t,
                pixels,
            } => {
                let dropout = mlp_core::cpu::DropoutConstants::of(hyper.dropout);
                let input = mlp_core::cpu::DropoutConstants::of(hyper.input_dropout);
                let shift = mlp_core::cpu::ShiftConstants::of(hyper.shift);
                let (correction1, correction2) = match hyper.optimiser {
                    Optimiser::Adam {
                        beta1,
                        beta2,
                        epsilon,
                    } => AdamStep {
                        beta1,
                        beta2,
                        epsilon,
                        t: *t,
                    }
                    .corrections(),
                    _ => (1.0, 1.0),
                };
                StepUniform {
                    row_start: rows.start as u32,
                    rows: rows.len() as u32,
                    loss_slot: *loss_slot as u32,
                    pixel_spans: match pixels {
                        PixelSource::PerStep => 0,
                        PixelSource::Cached { spans } => *spans,
                    },
                    learning_rate: *learning_rate,
                    gradient_scale: reduction_scale(hyper.reduction, rows.len()),
                    correction1,
                    correction2,
                    weight_decay: hyper.weight_decay,
                    dropout_threshold: dropout.threshold,
                    dropout_seed: dropout.seed,
                    dropout_step: *t as u32,
                    dropout_scale: dropout.scale,
                    input_dropout_threshold: input.threshold,
                    input_dropout_seed: input.seed,
                    input_dropout_scale: input.scale,
                    shift_pixels: shift.pixels,
                    shift_seed: shift.seed,
                    image_cols,
                    ..StepUniform::default()
                }
            }
            Queued::EvaluationChunk { rows } => StepUniform {
                row_start: rows.start as u32,
                rows: rows.len() as u32,
                image_cols,
                ..StepUniform::default()
            },
        }
    }
}

impl GpuBackend {
    /// Dispatches per training step of a whole batch in the current order (see
    /// `dispatches`).
    pub fn dispatches_per_step(&self) -> Dispatches {
        let first_batch = 0..self.max_batch.min(self.train_count);
        self.dispatches(self.pixel_source(&first_batch))
    }

    /// Dispatches of a training step that finds its pixel lists in `pixels`
    /// (`schedule::dispatches`).
    pub(super) fn dispatches(&self, pixels: PixelSource) -> Dispatches {
        super::schedules::dispatches(self.dense_schedule(), self, pixels)
    }

    /// Where the step of `rows` finds its batch's lit pixels by pixel: in the lists cached
    /// at upload where the order is the file order, the images are not shifted, and `rows` is
    /// one of their batches.
    pub(super) fn pixel_source(&self, rows: &Range<usize>) -> PixelSource {
        match &self.pixel_lists {
            Some(lists)
                if self.file_order
                    && self.hyper.shift.is_none()
                    && rows.start.is_multiple_of(lists.batch)
                    && rows.len() == lists.batch.min(self.train_count - rows.start) =>
            {
                PixelSource::Cached {
                    spans: (rows.start / lists.batch * self.sizes[0]) as u32,
                }
            }
            _ => PixelSource::PerStep,
        }
    }

    /// Records and submits everything queued, STEP_SLOTS units per submission.
    pub(super) fn flush(&mut self) -> Result<(), GpuError> {
        self.flush_timed(None).map(|_| ())
    }

    /// [`Self::flush`], with a timestamp before each dispatch of the last queued unit and after
    /// it written to `timer`, where given. Returns those dispatches' names.
    pub(super) fn flush_timed(
        &mut self,
        timer: Option<&wgpu::QuerySet>,
    ) -> Result<Vec<String>, GpuError> {
        self.flush_captured(timer, None)
    }

    /// [`Self::flush_timed`]; with `capture`, each dispatch recorded is kept there, and the
    /// buffers it binds are read (as the dispatches will find them) before they are submitted.
    pub(super) fn flush_captured(
        &mut self,
        timer: Option<&wgpu::QuerySet>,
        mut capture: Option<&mut super::capture::Capture>,
    ) -> Result<Vec<String>, GpuError> {
        let queued = std::mem::take(&mut self.queued);
        let mut timed = Vec::new();
        for chunk in queued.chunks(STEP_SLOTS) {
            let runs = self.runs(chunk, timer.is_some());
            let mut uniforms = vec![0u8; self.step_slots.stride as usize * chunk.len()];
            for run in &runs {
                for slot in run.clone() {
                    let mut uniform = chunk[slot].uniform(&self.hyper, self.image_cols);
                    (uniform.slot, uniform.run_end) = (slot as u32, run.end as u32);
                    let at = slot * self.step_slots.stride as usize;
                    uniforms[at..at + std::mem::size_of::<StepUniform>()]
                        .copy_from_slice(bytemuck::bytes_of(&uniform));
                }
            }
            self.context
                .queue
                .write_buffer(&self.step_slots.buffer, 0, &uniforms);
            let mut encoder =
                self.context
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("steps"),
                    });
            {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("steps"),
                    timestamp_writes: None,
                });
                for run in runs {
                    let offset = (run.start as u64 * self.step_slots.stride) as u32;
                    let last = run.end == chunk.len();
                    let work = &chunk[run.start];
                    let dispatched = capture.as_deref_mut().map(|c| &mut c.dispatched);
                    let timing = (timer.filter(|_| last), dispatched);
                    timed = self.record(&mut pass, work, offset, timing);
                }
            }
            if let Some(capture) = capture.as_deref_mut() {
                capture.read_buffers(&self.context)?;
            }
            self.context.queue.submit([encoder.finish()]);
        }
        self.context.check()?;
        Ok(timed)
    }

    /// The slots of `chunk` that each record as one unit: where a dispatch runs several steps
    /// (the multi-step schedule), each run of consecutive training steps up to that many;
    /// else every unit alone. Where the last unit is `timed`, it is a run of its own, so that
    /// its time is one step's.
    fn runs(&self, chunk: &[Queued], timed: bool) -> Vec<Range<usize>> {
        let limit = self.dispatches(PixelSource::PerStep).steps;
        let mut runs: Vec<Range<usize>> = Vec::new();
        for (slot, work) in chunk.iter().enumerate() {
            let training = matches!(work, Queued::TrainingStep { .. });
            let timed_alone = timed && slot + 1 == chunk.len();
            match runs.last_mut() {
                Some(run)
                    if training
                        && !timed_alone
                        && run.len() < limit
                        && matches!(chunk[run.start], Queued::TrainingStep { .. }) =>
                {
                    run.end = slot + 1;
                }
                _ => runs.push(slot..slot + 1),
            }
        }
        runs
    }

    /// Records one unit's dispatches (on the multi-step schedule, a run's from its first
    /// step); with a `timer`, a timestamp before each and one after the last, and returns
    /// their names.
    pub(super) fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        work: &Queued,
        offset: u32,
        (timer, capture): (Option<&wgpu::QuerySet>, Option<&mut Vec<Dispatched>>),
    ) -> Vec<String> {
        let mut recorder = Recorder {
            pass,
            offset,
            timer,
            names: Vec::new(),
            capture,
        };
        match work {
            Queued::TrainingStep { rows, pixels, .. } => {
                let built = "a schedule's kernels are built before its steps are queued";
                let (_, step) = self.step.as_ref().expect(built);
                step.record_training(self, &mut recorder, rows.len(), *pixels);
            }
            Queued::EvaluationChunk { rows } => {
                let rows = rows.len();
                self.record_first_layer_forward(&mut recorder, rows, None);
                self.record_dense_forward(&mut recorder, rows, false);
                let what = ("evaluate layer", self.sizes.len() - 1);
                let groups = div_ceil(rows, 64);
                let evaluate = &self.kernels.evaluate;
                recorder.dispatch(evaluate, &self.bind.evaluate, what, groups, 1);
            }
        }
        recorder.finish()
    }

    /// The first layer's forward pass of `rows` rows: of a training step, whose batch by pixel
    /// is regrouped first where `pixels` says so; or (`None`) of an evaluation chunk.
    pub(super) fn record_first_layer_forward(
        &self,
        recorder: &mut Recorder,
        rows: usize,
        pixels: Option<PixelSource>,
    ) {
        let (kernels, sizes) = (&self.kernels, &self.sizes);
        if pixels == Some(PixelSource::PerStep) {
            // The batch by pixel, for the first layer's weight update.
            let groups = div_ceil(sizes[0], PIXEL_GROUP);
            let what = ("pixel_columns layer", 1);
            let group = &self.bind.pixel_columns;
            recorder.dispatch(&kernels.pixel_columns, group, what, groups, 1);
        }
        let first_layer = match pixels {
            Some(_) => &self.bind.sparse_forward_train,
            None => &self.bind.sparse_forward_validation,
        };
        let (x, y) = (div_ceil(sizes[1], 8 * GROUP), div_ceil(rows, GROUP));
        let what = ("sparse_forward layer", 1);
        recorder.dispatch(&kernels.sparse_forward, first_layer, what, x, y);
    }

    /// W1's update from the batch's lit pixels by pixel, found where `pixels` says.
    pub(super) fn record_first_layer_update(&self, recorder: &mut Recorder, pixels: PixelSource) {
        let sizes = &self.sizes;
        let group = match (pixels, &self.pixel_lists) {
            (PixelSource::Cached { .. }, Some(lists)) => &lists.sparse_weights_update,
            _ => &self.bind.sparse_weights_update,
        };
        let (x, y) = (div_ceil(sizes[1], 8 * GROUP), div_ceil(sizes[0] + 1, GROUP));
        let what = ("sparse_weights_update layer", 1);
        recorder.dispatch(&self.kernels.sparse_weights_update, group, what, x, y);
    }

    /// Layers 2..L forward, one dispatch per layer, `rows` rows; with `dropping`, each hidden
    /// layer's output (A1 first) through its dropout before the next layer reads it. A
    /// schedule with a forward product of its own (tiled) runs it once its step is built.
    pub(super) fn record_dense_forward(
        &self,
        recorder: &mut Recorder,
        rows: usize,
        dropping: bool,
    ) {
        let (kernels, sizes) = (&self.kernels, &self.sizes);
        let depth = sizes.len() - 1;
        let step = self.step.as_ref().map(|(_, step)| step);
        let dropout = step.and_then(|s| s.dropout()).filter(|_| dropping);
        let drop = |recorder: &mut Recorder, layer: usize| {
            if let Some((kernel, groups)) = dropout.filter(|_| layer < depth) {
                let (x, y) = (div_ceil(sizes[layer], 8), div_ceil(rows, 8));
                let what = ("dropout_forward layer", layer);
                recorder.dispatch(kernel, &groups[layer - 1], what, x, y);
            }
        };
        let tiled = step.and_then(|s| s.forward_product());
        drop(recorder, 1);
        for layer in 1..sizes.len() - 1 {
            let (kernel, x, y) = match tiled {
                Some(tiled) => (
                    tiled,
                    div_ceil(sizes[layer + 1], TILE),
                    div_ceil(rows, TILE),
                ),
                None => (
                    &kernels.linear_forward,
                    blocks(sizes[layer + 1]),
                    blocks(rows),
                ),
            };
            let what = ("linear_forward layer", layer + 1);
            recorder.dispatch(kernel, &self.bind.forward[layer - 1], what, x, y);
            drop(recorder, layer + 1);
        }
    }
}

/// Workgroups along one axis of the 4 x 4-block matrix kernels for `n` values.
pub(super) fn blocks(n: usize) -> u32 {
    div_ceil(n, BLOCK * GROUP)
}
