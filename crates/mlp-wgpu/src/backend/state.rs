//! The state a training run carries between steps, written to and read back from the GPU's
//! buffers: the parameters and the optimiser's state (what `--save` and checkpoints keep).

use mlp_core::backend::{BackendError, OptimiserState};
use mlp_core::network::Parameters;

use super::GpuBackend;
use super::layout::{pack_layer, unpack_layer};

impl GpuBackend {
    /// Replaces every weight and bias; steps queued before still see the old ones.
    pub(super) fn write_parameters(&mut self, parameters: &Parameters) -> Result<(), BackendError> {
        parameters.check_shapes(&Parameters::layer_sizes_of(&self.sizes))?;
        // Steps queued before this call must still see the old parameters.
        self.flush()?;
        for (region, layer) in self
            .tensors
            .parameters
            .regions
            .iter()
            .zip(&parameters.layers)
        {
            self.context.queue.write_buffer(
                &self.tensors.parameters.buffer,
                region.start,
                bytemuck::cast_slice(&pack_layer(layer)),
            );
        }
        Ok(())
    }

    /// Reads every weight and bias back, after the queued steps.
    pub(super) fn read_parameters(&mut self) -> Result<Parameters, BackendError> {
        self.flush()?;
        let mut layers = Vec::new();
        for (region, w) in self
            .tensors
            .parameters
            .regions
            .iter()
            .zip(self.sizes.windows(2))
        {
            let (inputs, outputs) = (w[0], w[1]);
            let values = self.read_f32_at(
                &self.tensors.parameters.buffer,
                region.start,
                (inputs + 1) * outputs,
            )?;
            layers.push(unpack_layer(values, inputs, outputs));
        }
        Ok(Parameters { layers })
    }

    /// Reads the optimiser's state back, after the queued steps: each layer's region holds
    /// its first moments (or velocity), then its second moments, each packed as [Wk; bk].
    pub(super) fn read_optimiser_state(&mut self) -> Result<OptimiserState, BackendError> {
        self.flush()?;
        let slots = self.hyper.optimiser.state_per_parameter();
        let mut moments = [Vec::new(), Vec::new()];
        for (region, w) in self
            .tensors
            .optimiser_state
            .regions
            .iter()
            .zip(self.sizes.windows(2))
        {
            let count = (w[0] + 1) * w[1];
            for (slot, layers) in moments.iter_mut().enumerate().take(slots) {
                let start = region.start + (slot * count * 4) as u64;
                let values =
                    self.read_f32_at(&self.tensors.optimiser_state.buffer, start, count)?;
                layers.push(unpack_layer(values, w[0], w[1]));
            }
        }
        let [first, second] = moments;
        Ok(OptimiserState {
            first,
            second,
            steps: self.steps,
        })
    }

    /// Replaces the optimiser's state and the step count its corrections use.
    pub(super) fn write_optimiser_state(
        &mut self,
        state: &OptimiserState,
    ) -> Result<(), BackendError> {
        state.check_for(
            self.hyper.optimiser,
            &Parameters::layer_sizes_of(&self.sizes),
        )?;
        // Steps queued before this call must still see the old state.
        self.flush()?;
        for (k, region) in self.tensors.optimiser_state.regions.iter().enumerate() {
            let packed: Vec<f32> = [&state.first, &state.second]
                .into_iter()
                .filter_map(|layers| layers.get(k))
                .flat_map(pack_layer)
                .collect();
            if !packed.is_empty() {
                self.context.queue.write_buffer(
                    &self.tensors.optimiser_state.buffer,
                    region.start,
                    bytemuck::cast_slice(&packed),
                );
            }
        }
        self.steps = state.steps;
        Ok(())
    }
}
