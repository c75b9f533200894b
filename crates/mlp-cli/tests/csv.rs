//! `mlp-cli predict --csv`: a Kaggle submission (`ImageId,Label`) from a CSV file of MNIST
//! test images written by this test, labelled and not, on both backends: its labels are the
//! reference functions' readings, image by image; and its outputs are checked against its
//! inputs, as every command's are.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Scratch, mnist_dir};
use mlp_core::data::{self, DataFormat};
use ndarray::Array2;

fn mlp_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        .env("MLP_KERNEL_CACHE", "off")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mlp-cli runs")
}

fn kaggle_csv(set: &mlp_core::Dataset, labelled: bool) -> String {
    let mut header: Vec<String> = (0..set.pixels()).map(|i| format!("pixel{i}")).collect();
    if labelled {
        header.insert(0, "label".into());
    }
    let mut text = header.join(",") + "\n";
    for (image, label) in set.images.chunks(set.pixels()).zip(&set.labels) {
        let mut fields: Vec<String> = image.iter().map(u8::to_string).collect();
        if labelled {
            fields.insert(0, label.to_string());
        }
        text.push_str(&(fields.join(",") + "\n"));
    }
    text
}

/// The reference functions' reading of each image of `set` by the model at `path`.
fn reference_labels(path: &Path, set: &mlp_core::Dataset) -> Vec<u32> {
    let model = mlp_core::Model::load(path).unwrap();
    let input = Array2::from_shape_fn((set.len(), set.pixels()), |(r, c)| {
        f32::from(set.images[r * set.pixels() + c]) / 255.0
    });
    let outputs = model.forward(input.view());
    mlp_core::cpu::argmax_rows(outputs.last().unwrap().view())
}

fn submission_labels(text: &str) -> Vec<u32> {
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("ImageId,Label"), "{text}");
    lines
        .enumerate()
        .map(|(i, line)| {
            let (id, label) = line.split_once(',').unwrap();
            assert_eq!(id, (i + 1).to_string());
            label.parse().unwrap()
        })
        .collect()
}

#[test]
fn a_kaggle_submission_holds_the_model_s_readings() {
    let scratch = Scratch::new("csv-predict");
    let mnist = mnist_dir().to_string_lossy().into_owned();
    let model = scratch.file("seed.safetensors");
    let trained = mlp_cli(&[
        "--epochs",
        "2",
        "--limit",
        "3000",
        "-q",
        "--data-dir",
        &mnist,
        "--save",
        &model,
    ]);
    assert!(
        trained.status.success(),
        "{}",
        String::from_utf8_lossy(&trained.stderr)
    );
    let test = data::load(&mnist_dir(), DataFormat::Mnist)
        .unwrap()
        .test
        .first(500);
    let expected = reference_labels(Path::new(&model), &test);
    let (labelled, unlabelled) = (scratch.file("train-like.csv"), scratch.file("test.csv"));
    fs::write(&labelled, kaggle_csv(&test, true)).unwrap();
    fs::write(&unlabelled, kaggle_csv(&test, false)).unwrap();

    for backend in ["cpu", "gpu"] {
        let out = scratch.file(&format!("submission-{backend}.csv"));
        let run = mlp_cli(&[
            "predict",
            "--model",
            &model,
            "--csv",
            &labelled,
            "--out",
            &out,
            "--backend",
            backend,
        ]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(run.status.success(), "{stderr}");
        assert!(stderr.contains("500 images, accuracy"), "{stderr}");
        let found = submission_labels(&fs::read_to_string(&out).unwrap());
        let differing = found.iter().zip(&expected).filter(|(a, b)| a != b).count();
        println!("{backend}: {differing} of 500 readings differ from the reference's");
        assert_eq!(found.len(), 500);
        // The GPU's sums may round the other way on a near tie.
        assert!(
            differing <= usize::from(backend == "gpu"),
            "{backend}: {differing}"
        );
    }
    let run = mlp_cli(&["predict", "--model", &model, "--csv", &unlabelled]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        submission_labels(&String::from_utf8_lossy(&run.stdout)),
        expected
    );

    // Outputs against inputs, and options that need each other.
    let before = fs::read(&labelled).unwrap();
    let over = mlp_cli(&[
        "predict", "--model", &model, "--csv", &labelled, "--out", &labelled,
    ]);
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert_eq!(over.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("would overwrite --csv"), "{stderr}");
    assert_eq!(fs::read(&labelled).unwrap(), before);
    let alone = mlp_cli(&[
        "predict",
        "--model",
        &model,
        "--out",
        &scratch.file("x.csv"),
    ]);
    assert_eq!(alone.status.code(), Some(2));
    fs::write(&unlabelled, "pixel0,pixel1,pixel2,pixel3\n1,2,3\n").unwrap();
    let bad = mlp_cli(&["predict", "--model", &model, "--csv", &unlabelled]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("test.csv, line 2: 3 columns, where the header has 4"),
        "{stderr}"
    );
}

/// `set` as the two raw IDX files of `prefix` in `dir`.
fn write_idx(dir: &Path, prefix: &str, set: &mlp_core::Dataset) {
    let mut images: Vec<u8> = [0x803u32, set.len() as u32, set.rows as u32, set.cols as u32]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    images.extend(&set.images);
    let mut labels: Vec<u8> = [0x801u32, set.len() as u32]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    labels.extend(&set.labels);
    fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
}

/// The same images as IDX files and as Kaggle CSV files train to the same bits, on both
/// backends; a CSV directory whose test.csv has no labels trains with --validation and is
/// refused without it (exit 2).
#[test]
fn training_from_csv_gives_the_bits_of_training_from_idx() {
    let scratch = Scratch::new("csv-train");
    let mnist = data::load(&mnist_dir(), DataFormat::Mnist).unwrap();
    let (train, test) = (mnist.train.first(2000), mnist.test.first(500));
    let (idx, csv) = (scratch.path().join("idx"), scratch.path().join("csv"));
    fs::create_dir_all(&idx).unwrap();
    fs::create_dir_all(&csv).unwrap();
    write_idx(&idx, "train", &train);
    write_idx(&idx, "t10k", &test);
    fs::write(csv.join("train.csv"), kaggle_csv(&train, true)).unwrap();
    fs::write(csv.join("test.csv"), kaggle_csv(&test, true)).unwrap();
    let (idx, csv) = (idx.to_string_lossy(), csv.to_string_lossy());
    for backend in ["cpu", "gpu"] {
        let saved = |name: &str| scratch.file(&format!("{name}-{backend}.safetensors"));
        let quick = ["--epochs", "2", "-q", "--backend", backend];
        let from_idx = saved("idx");
        let from_csv = saved("csv");
        let runs = [
            (
                vec!["--any-idx", "--data-dir", &idx, "--save", &from_idx],
                &from_idx,
            ),
            (
                vec!["--format", "csv", "--data-dir", &csv, "--save", &from_csv],
                &from_csv,
            ),
        ];
        for (args, _) in &runs {
            let args: Vec<&str> = quick.iter().copied().chain(args.iter().copied()).collect();
            let out = mlp_cli(&args);
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let parameters = |path: &str| mlp_core::Model::load(Path::new(path)).unwrap().parameters;
        assert_eq!(parameters(&from_idx), parameters(&from_csv), "{backend}");
    }
    // Kaggle's own layout: test.csv is a file to predict.
    fs::write(
        scratch.path().join("csv/test.csv"),
        kaggle_csv(&test, false),
    )
    .unwrap();
    let refused = mlp_cli(&["--format", "csv", "--data-dir", &csv, "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("give --validation N"), "{stderr}");
    let held_out = mlp_cli(&[
        "--format",
        "csv",
        "--data-dir",
        &csv,
        "--epochs",
        "1",
        "--validation",
        "200",
    ]);
    let stderr = String::from_utf8_lossy(&held_out.stderr);
    assert!(held_out.status.success(), "{stderr}");
    // A model trained on CSV records it, and eval needs labelled test images.
    let model = scratch.file("csv-cpu.safetensors");
    let eval = mlp_cli(&[
        "eval",
        "--model",
        &model,
        "--format",
        "csv",
        "--data-dir",
        &csv,
    ]);
    let stderr = String::from_utf8_lossy(&eval.stderr);
    assert_eq!(eval.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no labelled test images"), "{stderr}");
    let on_mnist = mlp_cli(&[
        "eval",
        "--model",
        &model,
        "--data-dir",
        &mnist_dir().to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&on_mnist.stderr);
    assert!(
        stderr.contains("was trained on CSV, but this data is MNIST"),
        "{stderr}"
    );
}
