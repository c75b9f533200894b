//! A training session: the data, the initial parameters and the chosen backend, built once
//! from the options that `train` and `bench` share.

use anyhow::Result;
use mlp_core::{Backend, CpuBackend, Dataset, Parameters};
use mlp_wgpu::{GpuBackend, GpuContext};

use crate::args::{BackendKind, NetworkArgs};
use crate::data;

pub struct Session {
    pub backend: Box<dyn Backend>,
    pub train_rows: usize,
    /// The validation labels, for the confusion matrix.
    pub test_labels: Vec<u8>,
}

impl Session {
    pub fn new(args: &NetworkArgs) -> Result<Self> {
        let mnist = data::load_limited(args)?;
        let train = mnist.train;
        let parameters = Parameters::seed_init(&args.layers, args.seed);
        let backend = build_backend(args.backend, args, parameters, &train, &mnist.test)?;
        Ok(Self {
            backend,
            train_rows: train.len(),
            test_labels: mnist.test.labels,
        })
    }
}

/// The backend `kind`, holding `parameters` and both sets.
pub fn build_backend(
    kind: BackendKind,
    args: &NetworkArgs,
    parameters: Parameters,
    train: &Dataset,
    validation: &Dataset,
) -> Result<Box<dyn Backend>> {
    Ok(match kind {
        BackendKind::Cpu => Box::new(CpuBackend::new(parameters, args.lr, train, validation)?),
        BackendKind::Gpu => {
            let context = GpuContext::new(args.adapter.as_deref())?;
            Box::new(GpuBackend::new(
                context,
                &parameters,
                args.lr,
                args.batch_size,
                train,
                validation,
            )?)
        }
    })
}
