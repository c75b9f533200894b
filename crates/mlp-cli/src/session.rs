//! A training session: the data, the initial parameters and the chosen backend, built once
//! from the options that `train` and `bench` share.

use anyhow::Result;
use mlp_core::{Backend, CpuBackend, Parameters};

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
        let mnist = data::load(&args.data)?;
        let train = match args.limit {
            Some(limit) => mnist.train.first(limit),
            None => mnist.train,
        };
        let parameters = Parameters::seed_init(&args.layers, args.seed);
        let backend: Box<dyn Backend> = match args.backend {
            BackendKind::Cpu => {
                Box::new(CpuBackend::new(parameters, args.lr, &train, &mnist.test)?)
            }
        };
        Ok(Self {
            backend,
            train_rows: train.len(),
            test_labels: mnist.test.labels,
        })
    }
}
