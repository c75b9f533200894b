//! The validation set on the GPU: its forward pass in chunks of rows, each image's prediction
//! and loss, and the output layer for `predict`.

use mlp_core::Evaluation;
use ndarray::Array2;

use super::GpuBackend;
use super::layout::EVAL_CHUNK;
use super::record::Queued;
use crate::context::GpuContext;
use crate::error::GpuError;

/// Rows of the validation set per evaluation dispatch. They pass through the training batch's
/// activation buffer, so a wide network gets fewer than EVAL_CHUNK: as many as fit one storage
/// binding, so that only the training batch itself can be too large for the device.
pub(super) fn evaluation_chunk(context: &GpuContext, sizes: &[usize]) -> usize {
    let units: u64 = sizes[1..].iter().map(|&n| n as u64).sum();
    let alignment = u64::from(context.limits.min_storage_buffer_offset_alignment);
    let room = context
        .storage_limit()
        .saturating_sub(alignment * sizes.len() as u64);
    let fits = (room / (4 * units.max(1))) as usize;
    EVAL_CHUNK.min(fits).max(1)
}

impl GpuBackend {
    /// Evaluates the whole validation set in chunks: each image's prediction and loss on the
    /// GPU, read back once.
    pub(super) fn evaluate_validation(&mut self) -> Result<Evaluation, GpuError> {
        for start in (0..self.validation_count).step_by(self.eval_chunk) {
            self.queued.push(Queued::EvaluationChunk {
                rows: start..(start + self.eval_chunk).min(self.validation_count),
            });
        }
        self.flush()?;
        let image_losses = self.read_f32(&self.tensors.image_losses, self.validation_count)?;
        let predictions: Vec<u32> = if self.validation_count == 0 {
            Vec::new()
        } else {
            let bytes = self.context.read_buffer(
                &self.tensors.predictions,
                0,
                (self.validation_count * 4) as u64,
            )?;
            bytemuck::pod_collect_to_vec::<u8, u32>(&bytes)
        };
        let classes = *self.sizes.last().unwrap_or(&0);
        Ok(Evaluation::new(
            image_losses.iter().map(|&e| f64::from(e)).sum(),
            mlp_core::cpu::loss_terms(self.hyper.output, predictions.len(), classes),
            predictions,
            &self.validation_labels,
            classes,
        ))
    }

    /// A_L of every validation image, (images, classes), read back chunk by chunk.
    pub(super) fn output_layer_of_validation(&mut self) -> Result<Array2<f32>, GpuError> {
        let classes = *self.sizes.last().unwrap_or(&0);
        let depth = self.sizes.len() - 1;
        let mut outputs = Vec::with_capacity(self.validation_count * classes);
        for start in (0..self.validation_count).step_by(self.eval_chunk) {
            let rows = start..(start + self.eval_chunk).min(self.validation_count);
            let count = rows.len();
            self.queued.push(Queued::EvaluationChunk { rows });
            self.flush()?;
            let region = &self.tensors.activations.regions[depth - 1];
            outputs.extend(self.read_f32_at(
                &self.tensors.activations.buffer,
                region.start,
                count * classes,
            )?);
        }
        Ok(
            Array2::from_shape_vec((self.validation_count, classes), outputs)
                .expect("images x classes values"),
        )
    }
}
