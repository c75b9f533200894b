//! The seed multilayer perceptron of `docs/SEED.md`: its parameters, the CPU reference backend that
//! is the spec for every other backend, the training loop, the metrics, and the MNIST loader.
//!
//! Data flows one way: [`data`] loads and checks the IDX files, [`train`] drives any
//! [`Backend`] batch by batch, [`metrics`] turns what the backend reports into numbers.

pub mod aligned;
pub mod atomic;
pub mod backend;
pub mod checkpoint;
pub mod compare;
pub mod cpu;
pub mod data;
pub mod dense;
pub mod digit;
pub mod input;
pub mod memory;
pub mod metrics;
pub mod model;
pub mod network;
pub mod onnx;
pub mod options;
pub mod predictor;
pub mod rng;
pub mod simd;
pub mod sparse;
pub mod train;
pub mod vectorised;

pub use backend::{Backend, BackendError, Evaluation, OptimiserState, StepTrace};
pub use cpu::{CpuBackend, ReferenceBackend};
pub use data::{DataError, Dataset};
pub use model::{Model, ModelError, ModelInfo};
pub use network::{LayerSizes, NetworkError, Parameters};
pub use options::{
    Activation, Hyperparameters, Init, Optimiser, OptimiserKind, Output, Reduction, Schedule,
};
pub use train::{EpochMetrics, TrainConfig};
