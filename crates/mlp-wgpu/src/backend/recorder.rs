//! The recording of dispatches into a compute pass, with the timestamps of a timed step and
//! the dispatches of a captured one.

use super::bind_groups::Group;
use crate::kernels::Kernel;

/// Dispatches into one compute pass, each at the unit's step slot; with a timer, a timestamp
/// before each dispatch and one after the last, and each dispatch's name.
pub(super) struct Recorder<'a, 'p> {
    pub(super) pass: &'a mut wgpu::ComputePass<'p>,
    pub(super) offset: u32,
    pub(super) timer: Option<&'a wgpu::QuerySet>,
    pub(super) names: Vec<String>,
    /// Where a captured step keeps what it dispatches.
    pub(super) capture: Option<&'a mut Vec<Dispatched>>,
}

/// One dispatch of a captured step: the kernel, its bind group and dynamic offset, and the
/// workgroups.
pub(super) struct Dispatched {
    pub(super) kernel: crate::PipelineSpec,
    pub(super) group: Group,
    pub(super) offset: u32,
    pub(super) workgroups: (u32, u32),
}

impl Recorder<'_, '_> {
    /// `what` names the dispatch by the layer it works on, only when it is timed.
    pub(super) fn dispatch(
        &mut self,
        kernel: &Kernel,
        group: &Group,
        what: (&str, usize),
        x: u32,
        y: u32,
    ) {
        if let Some(timer) = self.timer {
            self.pass.write_timestamp(timer, self.names.len() as u32);
            self.names.push(format!("{} {}", what.0, what.1));
        }
        if let Some(capture) = self.capture.as_deref_mut() {
            capture.push(Dispatched {
                kernel: kernel.spec.clone(),
                group: group.clone(),
                offset: self.offset,
                workgroups: (x, y),
            });
        }
        self.pass.set_pipeline(&kernel.pipeline);
        self.pass
            .set_bind_group(0, &group.bind_group, &[self.offset]);
        self.pass.dispatch_workgroups(x, y, 1);
    }

    pub(super) fn finish(self) -> Vec<String> {
        if let Some(timer) = self.timer {
            self.pass.write_timestamp(timer, self.names.len() as u32);
        }
        self.names
    }
}
