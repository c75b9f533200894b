//! The command line as a user meets it: bad options and missing data give a clear message
//! and a non-zero exit; a short run on real MNIST learns and writes its metrics.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mlp_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        .args(args)
        .env_remove("MNIST_DIR")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("mlp-cli runs")
}

fn mnist_dir() -> String {
    let dir = std::env::var_os("MNIST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/mnist"));
    assert!(
        dir.is_dir(),
        "this test needs MNIST in {} (set MNIST_DIR)",
        dir.display()
    );
    dir.to_string_lossy().into_owned()
}

/// Fails with a non-zero exit and a message on stderr that contains every one of `words`.
fn assert_refused(args: &[&str], words: &[&str]) {
    let out = mlp_cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    for word in words {
        assert!(
            stderr.contains(word),
            "{args:?}: {word:?} not in:\n{stderr}"
        );
    }
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
}

#[test]
fn bad_option_values_are_refused_with_the_reason() {
    assert_refused(
        &["--lr", "0"],
        &["--lr", "not a positive finite learning rate"],
    );
    assert_refused(&["--lr", "-0.5"], &["not a positive finite learning rate"]);
    assert_refused(&["--lr", "inf"], &["not a positive finite learning rate"]);
    assert_refused(&["--lr", "NaN"], &["not a positive finite learning rate"]);
    assert_refused(&["--batch-size", "0"], &["--batch-size", "at least 1"]);
    assert_refused(&["--epochs", "0"], &["--epochs", "at least 1"]);
    assert_refused(&["--layers", "100,32,10"], &["input size 784"]);
    assert_refused(&["--layers", "784,32,9"], &["classes 10"]);
    assert_refused(&["--layers", "784,x,10"], &["whole numbers"]);
    assert_refused(&["--backend", "tpu"], &["--backend"]);
}

#[test]
fn missing_data_directory_names_it_and_the_files() {
    assert_refused(
        &[
            "--data-dir",
            "/nonexistent/mnist",
            "--no-download",
            "--epochs",
            "1",
        ],
        &[
            "/nonexistent/mnist",
            "train-images-idx3-ubyte",
            "t10k-labels-idx1-ubyte",
            "MNIST_DIR",
        ],
    );
}

#[test]
fn short_run_on_real_mnist_learns_and_writes_json_lines() {
    let metrics =
        std::env::temp_dir().join(format!("mlp-cli-metrics-{}.jsonl", std::process::id()));
    let metrics_arg = metrics.to_string_lossy().into_owned();
    let data = mnist_dir();
    let out = mlp_cli(&[
        "--backend",
        "cpu",
        "--data-dir",
        &data,
        "--limit",
        "20000",
        "--epochs",
        "3",
        "--metrics",
        &metrics_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("epoch   3/3") && stdout.contains("summary"),
        "{stdout}"
    );

    let text = std::fs::read_to_string(&metrics).unwrap();
    let _ = std::fs::remove_file(&metrics);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["epoch"], i + 1);
        assert_eq!(line["backend"], "cpu (ndarray, f32)");
        for key in ["train_loss", "val_loss", "val_accuracy", "seconds"] {
            assert!(line[key].as_f64().is_some(), "{key} missing in {line}");
        }
    }
    let accuracy = lines[2]["val_accuracy"].as_f64().unwrap();
    // Chance is 0.10; three epochs over 20,000 images reached 0.55 with seed 0.
    assert!(
        accuracy > 0.35,
        "accuracy {accuracy} after 3 epochs on 20,000 images"
    );
    assert!(lines[2]["train_loss"].as_f64() < lines[0]["train_loss"].as_f64());
}
