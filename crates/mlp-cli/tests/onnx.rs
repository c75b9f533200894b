//! `mlp-cli export --onnx`, checked by an independent runtime: onnxruntime (from PyPI, which
//! `scripts/test` installs in `target/onnx-venv`) runs the exported seed and modern models on
//! the whole MNIST test set, and its scores must be `predict`'s (the CPU backend's outputs)
//! within 1e-5, its classes giving the same accuracy.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;
#[path = "../../mlp-core/tests/common/export.rs"]
mod export;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Scratch, mnist_dir};
use mlp_core::data::{self, DataFormat};
use mlp_core::predictor::Predictor;
use mlp_core::{Backend, CpuBackend, Model};

/// The largest difference allowed between onnxruntime's scores and the CPU backend's: both
/// are f32 sums of the same products, in different orders.
const TOLERANCE: f32 = 1e-5;

fn mlp_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        .env("MLP_KERNEL_CACHE", "off")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mlp-cli runs")
}

/// A Python with onnxruntime: `MLP_ONNX_PYTHON`, else the workspace's `target/onnx-venv`.
fn python() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = std::env::var_os("MLP_ONNX_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target/onnx-venv/bin/python"));
    let works = Command::new(&python)
        .args(["-c", "import onnxruntime, numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "this test runs exported models in onnxruntime, which {} lacks: run scripts/test, which \
         installs it there (python3 -m venv target/onnx-venv && target/onnx-venv/bin/pip \
         install onnxruntime numpy), or set MLP_ONNX_PYTHON to a Python that has it",
        python.display()
    );
    python
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    let words = bytes.chunks_exact(4).map(|b| b.try_into().unwrap());
    words.map(f32::from_le_bytes).collect()
}

#[test]
fn onnxruntime_reads_exported_models_as_predict_does() {
    let python = python();
    let scratch = Scratch::new("onnx");
    let test = data::load(&mnist_dir(), DataFormat::Mnist).unwrap().test;
    let pixels: Vec<u8> = (test.images.iter())
        .flat_map(|&b| (f32::from(b) / 255.0).to_le_bytes())
        .collect();
    let pixels_path = scratch.path().join("pixels.npy");
    fs::write(
        &pixels_path,
        export::npy_bytes("<f4", &[test.len(), 784], &pixels),
    )
    .unwrap();
    let mnist = mnist_dir().to_string_lossy().into_owned();
    for preset in ["seed", "modern"] {
        let model_path = scratch.file(&format!("{preset}.safetensors"));
        let onnx_path = scratch.file(&format!("{preset}.onnx"));
        let trained = mlp_cli(&[
            "--preset",
            preset,
            "--epochs",
            "4",
            "-q",
            "--data-dir",
            &mnist,
            "--save",
            &model_path,
        ]);
        assert!(
            trained.status.success(),
            "{}",
            String::from_utf8_lossy(&trained.stderr)
        );
        let exported = mlp_cli(&["export", "--model", &model_path, "--onnx", &onnx_path]);
        let stdout = String::from_utf8_lossy(&exported.stdout);
        assert!(
            exported.status.success(),
            "{}",
            String::from_utf8_lossy(&exported.stderr)
        );
        assert!(stdout.contains("ONNX opset 17"), "{stdout}");

        let out = scratch.file(preset);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/onnx_run.py");
        let run = Command::new(&python)
            .arg(&script)
            .args([
                &onnx_path,
                &pixels_path.to_string_lossy().into_owned(),
                &out,
            ])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success(),
            "{said}{}",
            String::from_utf8_lossy(&run.stderr)
        );
        print!("{preset}: {said}");
        let scores = f32s(&fs::read(format!("{out}.scores")).unwrap());
        let classes: Vec<i64> = (fs::read(format!("{out}.class")).unwrap().chunks_exact(8))
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect();

        let model = Model::load(Path::new(&model_path)).unwrap();
        let mut backend = CpuBackend::new(
            model.parameters.clone(),
            &Predictor::hyperparameters(&model),
            &Predictor::no_training((28, 28)),
            &test,
        )
        .unwrap();
        let expected = backend.validation_outputs().unwrap();
        assert_eq!(scores.len(), expected.len());
        let worst = (scores.iter().zip(expected.iter()))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let predicted = mlp_core::cpu::argmax_rows(expected.view());
        let right = |found: &mut dyn Iterator<Item = u64>| {
            found
                .zip(&test.labels)
                .filter(|(c, l)| *c == u64::from(**l))
                .count()
        };
        let onnx_right = right(&mut classes.iter().map(|&c| c as u64));
        let predict_right = right(&mut predicted.iter().map(|&c| u64::from(c)));
        println!(
            "{preset}: max |onnxruntime - predict| over {} scores = {worst:.2e} (tolerance \
             {TOLERANCE:.0e}); accuracy {:.2}% and {:.2}%",
            scores.len(),
            100.0 * onnx_right as f64 / test.len() as f64,
            100.0 * predict_right as f64 / test.len() as f64,
        );
        assert!(worst <= TOLERANCE, "{preset}: {worst}");
        assert_eq!(onnx_right, predict_right, "{preset}");
    }
}

#[test]
fn export_refuses_to_overwrite_its_model_and_names_a_bad_one() {
    let scratch = Scratch::new("onnx-refusals");
    let model = scratch.file("model.safetensors");
    fs::write(&model, b"not a model").unwrap();
    let bad = mlp_cli(&[
        "export",
        "--model",
        &model,
        "--onnx",
        &scratch.file("m.onnx"),
    ]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&model) && stderr.contains("is not a model file"),
        "{stderr}"
    );
    assert!(!scratch.path().join("m.onnx").exists());
}
