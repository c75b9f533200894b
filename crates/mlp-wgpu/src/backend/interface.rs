//! mlp-core's [`Backend`] interface on the GPU: each method queues work (`record`) or reads
//! results back.

use std::ops::Range;

use mlp_core::Dataset;
use mlp_core::backend::{
    Backend, BackendError, Evaluation, KernelTime, OptimiserState, StepKernels, StepTrace,
    TrainLoss,
};
use mlp_core::cpu::check_order;
use mlp_core::network::Parameters;
use ndarray::Array2;

use super::layout::{LOSS_SLOTS, PerLayer, STEP_SLOTS};
use super::record::{PixelSource, Queued};
use super::{GpuBackend, schedules};
use crate::error::GpuError;

impl Backend for GpuBackend {
    fn step_kernels(&self) -> StepKernels {
        schedules::step_kernels(self.dense_schedule(), self)
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
