//! What several test files share: where the real MNIST copy is, scratch directories, lockstep
//! steps, and the kernel tests' matrices, instruction sets and verdict.
//! The test files of mlp-wgpu and mlp-cli include this file too (`#[path]`).
#![allow(dead_code)]

use std::ops::Range;
use std::path::{Path, PathBuf};

use mlp_core::backend::Backend;
use mlp_core::compare::{Row, Tolerance, compare_step};

/// The MNIST directory the tests read: `MNIST_DIR`, else the workspace's `data/mnist`, which
/// is downloaded there (once, by the library's own verified download) where it lacks files.
/// Fails loudly, saying how to get the data, where it cannot be had.
pub fn mnist_dir() -> PathBuf {
    let given = std::env::var_os("MNIST_DIR").map(PathBuf::from);
    let dir = given
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"));
    let format = mlp_core::data::DataFormat::Mnist;
    let mut problem = String::new();
    if given.is_none() {
        // One download for every test thread of this process; the files are written
        // atomically, so another test process downloading at once harms nothing.
        static DOWNLOAD: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _turn = DOWNLOAD.lock().unwrap_or_else(|e| e.into_inner());
        let missing = !mlp_core::data::missing_files(&dir, format).is_empty();
        if missing && let Err(e) = mlp_core::data::download_missing(&dir, format, format.mirrors())
        {
            problem = format!(" (downloading them failed: {e})");
        }
    }
    let missing = mlp_core::data::missing_files(&dir, format);
    assert!(
        missing.is_empty(),
        "these tests need MNIST's four files in {}{problem}: run `cargo run -p mlp-cli -- \
         download` on a machine with internet, or set MNIST_DIR to a directory that has them",
        dir.display()
    );
    dir
}

/// A fresh empty directory under the system's temporary directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mlp-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path of `name` inside, as a command-line argument.
    pub fn file(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One lockstep step on `rows` of the training order: both backends take it, and `other`'s
/// activations, deltas and parameters are compared with `reference`'s within `tolerance`.
pub fn lockstep_step(
    reference: &mut dyn Backend,
    other: &mut dyn Backend,
    rows: Range<usize>,
    tolerance: Tolerance,
) -> Vec<Row> {
    let expected = reference.trace_batch(rows.clone()).unwrap();
    let found = other.trace_batch(rows).unwrap();
    compare_step(
        (&expected, &reference.parameters().unwrap()),
        (&found, &other.parameters().unwrap()),
        (&reference.step_kernels(), &other.step_kernels()),
        tolerance,
    )
}

/// What a new epoch gives every backend alike: its order and its learning rate.
pub fn start_epoch_on(backends: [&mut dyn Backend; 2], order: &[u32], learning_rate: f32) {
    for backend in backends {
        backend.set_order(order).unwrap();
        backend.set_learning_rate(learning_rate).unwrap();
    }
}

/// A (rows, cols) matrix of standard normal values.
pub fn random_matrix(
    rows: usize,
    cols: usize,
    rng: &mut mlp_core::rng::Rng,
) -> ndarray::Array2<f32> {
    ndarray::Array2::from_shape_fn((rows, cols), |_| rng.standard_normal() as f32)
}

/// Every instruction set this CPU has, each named where it is tested.
pub fn instruction_sets() -> Vec<mlp_core::simd::InstructionSet> {
    let sets = mlp_core::simd::InstructionSet::available();
    println!("instruction sets: {sets:?}");
    sets
}

/// Prints how far `values` is from `reference` under `name`, and fails beyond `tolerance`.
pub fn assert_matrix_passes(
    name: &str,
    values: &ndarray::Array2<f32>,
    reference: &ndarray::Array2<f32>,
    tolerance: Tolerance,
) {
    assert_eq!(values.dim(), reference.dim(), "{name}");
    let difference = mlp_core::compare::Difference::between(
        values.as_slice().expect("standard layout"),
        reference.as_slice().expect("standard layout"),
        tolerance,
    );
    println!("{name}: {difference}");
    assert!(difference.passes(), "{name}: {difference}");
}
