//! The validation set on the GPU: its forward pass in chunks of rows, each image's prediction
//! and loss, and the output layer for `predict`.

use mlp_core::{Dataset, Evaluation};
use ndarray::Array2;

use super::GpuBackend;
use super::layout::EVAL_CHUNK;
use super::record::Queued;
use super::upload::{lit_pixels, word_bytes};
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

    /// Writes `images` (as many, of as many pixels, as the validation set it was built with:
    /// the caller checks) over the validation set's buffers, so that `validation_outputs`
    /// reads them with the device, buffers and pipelines already built. Their lit pixels must
    /// fit where the first set's were: a backend built on images lit everywhere takes any.
    pub(super) fn replace_validation_images(&mut self, images: &Dataset) -> Result<(), GpuError> {
        let (entries, starts) = lit_pixels(images, "new validation images")?;
        let validation = &self.data.validation;
        let entry_bytes = word_bytes(&entries);
        if entry_bytes.len() as u64 > validation.entries.size() {
            return Err(GpuError::ImagesTooLarge {
                set: "new validation images".into(),
                problem: format!(
                    "{} lit pixels, more than the {} of the images the backend was built with",
                    entries.len(),
                    validation.entries.size() / 4
                ),
            });
        }
        let labels: Vec<u32> = images.labels.iter().map(|&l| u32::from(l)).collect();
        let queue = &self.context.queue;
        queue.write_buffer(&validation.entries, 0, &entry_bytes);
        queue.write_buffer(&validation.starts, 0, &word_bytes(&starts));
        queue.write_buffer(&validation.labels, 0, &word_bytes(&labels));
        self.validation_labels = images.labels.clone();
        self.context.check()
    }
}
