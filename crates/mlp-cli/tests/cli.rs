//! The command line as a user meets it: bad options and missing data give a clear message
//! and a non-zero exit; a short run on real MNIST learns and writes its metrics.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;

use std::process::{Command, Output};

use common::Scratch;
use mlp_wgpu::KernelVariant;

fn mlp_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
        .env("MLP_KERNEL_CACHE", "off")
        .args(args)
        .env_remove("MNIST_DIR")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("mlp-cli runs")
}

/// The shared MNIST copy, as a command-line argument.
fn mnist_dir() -> String {
    common::mnist_dir().to_string_lossy().into_owned()
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
    assert_refused(
        &["--backend", "gpu", "--kernel", "tile"],
        &["--kernel", "fused, registers, tiled", "fused-uniform"],
    );
    // The old name of the schedules is refused with the new one named.
    assert_refused(
        &["--backend", "gpu", "--matmul", "tiled"],
        &["--matmul is now --kernel", "give --kernel tiled"],
    );
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
        let backend = line["backend"].as_str().unwrap();
        assert!(backend.starts_with("cpu (ndarray, f32, "), "{backend}");
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

fn succeeds(args: &[&str]) -> String {
    let out = mlp_cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed:\n{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The final validation accuracy, in percent, of a training run's summary line.
fn final_accuracy(summary: &str) -> f64 {
    summary
        .split("final val accuracy ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no final accuracy in {summary}"))
}

/// `mlp-cli eval` of `model` on the CPU and on the GPU, each of which must report the test
/// accuracy `final_accuracy` (percent) that training ended with; returns both outputs.
fn eval_on_both_backends(model: &str, data: &str, final_accuracy: f64) -> Vec<String> {
    ["cpu", "gpu"]
        .into_iter()
        .map(|backend| {
            let eval = succeeds(&[
                "eval",
                "--model",
                model,
                "--data-dir",
                data,
                "--backend",
                backend,
            ]);
            let line = line_starting(&eval, "test set");
            assert!(
                line.contains(&format!("accuracy {final_accuracy:.2}%")),
                "{backend}: {line}, but training ended at {final_accuracy:.2}%"
            );
            eval
        })
        .collect()
}

/// The line of `text` that starts with `start`.
fn line_starting<'a>(text: &'a str, start: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
}

#[test]
fn saved_model_evaluates_predicts_and_restarts_on_both_backends() {
    let scratch = Scratch::new("model");
    let data = mnist_dir();
    let model = scratch.file("seed.safetensors");
    let plots = scratch.file("plots");
    let quiet = succeeds(&[
        "--data-dir",
        &data,
        "--limit",
        "10000",
        "--epochs",
        "3",
        "--quiet",
        "--save",
        &model,
        "--plots",
        &plots,
    ]);
    assert!(
        !quiet.contains("epoch   1/3"),
        "--quiet printed epochs:\n{quiet}"
    );
    let summary = line_starting(&quiet, "summary");
    for name in ["loss.png", "accuracy.png", "digits.png", "confusion.png"] {
        let picture = image::open(scratch.0.join("plots").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            picture.width() >= 600 && picture.height() >= 400,
            "{name} is tiny"
        );
    }

    // The final accuracy of the run is what eval measures, on either backend.
    let final_accuracy = final_accuracy(summary);
    eval_on_both_backends(&model, &data, final_accuracy);

    // The seed's demo: the first test image is a 7.
    let predicted = succeeds(&[
        "predict",
        "--model",
        &model,
        "--index",
        "0",
        "--data-dir",
        &data,
    ]);
    assert!(
        line_starting(&predicted, "test image 0").contains("label 7"),
        "{predicted}"
    );
    assert!(predicted.contains("top 3:"), "{predicted}");

    // A picture on disk: a bar, drawn dark on white, is read and gets a digit.
    let picture = scratch.file("bar.png");
    let mut page = image::GrayImage::from_pixel(60, 90, image::Luma([255]));
    for y in 10..80 {
        for x in 27..33 {
            page.put_pixel(x, y, image::Luma([0]));
        }
    }
    page.save(&picture).unwrap();
    let gpu_prediction = succeeds(&["predict", "--model", &model, &picture, "--backend", "gpu"]);
    let cpu_prediction = succeeds(&["predict", "--model", &model, &picture]);
    let digit = |text: &str| line_starting(text, &picture).to_string();
    assert_eq!(digit(&gpu_prediction), digit(&cpu_prediction));

    // Training goes on from the saved parameters, on the GPU.
    let resumed = succeeds(&[
        "--backend",
        "gpu",
        "--init",
        &model,
        "--data-dir",
        &data,
        "--limit",
        "10000",
        "--epochs",
        "1",
    ]);
    assert!(resumed.contains("starting from"), "{resumed}");
}

#[test]
fn bad_models_and_pictures_are_refused_with_the_file_named() {
    let scratch = Scratch::new("bad-model");
    let not_a_model = scratch.file("notes.safetensors");
    std::fs::write(&not_a_model, "not weights").unwrap();
    assert_refused(
        &["eval", "--model", &not_a_model],
        &["notes.safetensors", "--save"],
    );
    assert_refused(
        &[
            "predict",
            "--model",
            &scratch.file("absent.safetensors"),
            "--index",
            "0",
        ],
        &["absent.safetensors"],
    );
    assert_refused(
        &["--init", &not_a_model, "--epochs", "1"],
        &["notes.safetensors"],
    );
    assert_refused(&["predict", "--model", &not_a_model], &["IMAGE", "--index"]);

    let model = scratch.file("small.safetensors");
    succeeds(&[
        "--data-dir",
        &mnist_dir(),
        "--limit",
        "1000",
        "--epochs",
        "1",
        "--quiet",
        "--save",
        &model,
    ]);
    let scribble = scratch.file("scribble.png");
    std::fs::write(&scribble, "this is text").unwrap();
    assert_refused(
        &["predict", "--model", &model, &scribble],
        &["scribble.png", "PNG or JPEG"],
    );
    let blank = scratch.file("blank.png");
    image::GrayImage::from_pixel(40, 40, image::Luma([255]))
        .save(&blank)
        .unwrap();
    assert_refused(
        &["predict", "--model", &model, &blank],
        &["blank.png", "no digit"],
    );
    assert_refused(
        &[
            "predict",
            "--model",
            &model,
            "--index",
            "10000",
            "--data-dir",
            &mnist_dir(),
        ],
        &["--index 10000", "0 to 9999"],
    );
}

#[test]
fn options_that_make_no_sense_together_are_refused() {
    assert_refused(
        &["--momentum", "0.5"],
        &["--momentum", "--optimiser momentum"],
    );
    assert_refused(
        &["--optimiser", "momentum", "--beta1", "0.8"],
        &["--beta1", "--optimiser adam"],
    );
    assert_refused(&["--preset", "modern", "--momentum", "0.5"], &["adam"]);
    assert_refused(
        &["--optimiser", "momentum", "--momentum", "1.5"],
        &["[0, 1)"],
    );
    assert_refused(
        &["--activation", "swish"],
        &["swish", "sigmoid, relu, tanh"],
    );
    assert_refused(&["--output", "softmax"], &["sigmoid-mse, softmax-ce"]);
    assert_refused(&["--schedule", "linear"], &["constant, step, cosine"]);
    assert_refused(
        &["--init", "model.safetensors", "--weight-init", "he"],
        &["--weight-init", "--init"],
    );
    assert_refused(&["--shuffle", "--no-shuffle"], &["--no-shuffle"]);
    assert_refused(
        &["--early-stopping", "3"],
        &["--early-stopping needs --validation"],
    );
    assert_refused(&["--validation", "0"], &["at least 1 image"]);
    assert_refused(&["--validation", "1.5"], &["fraction in (0, 1)"]);
    assert_refused(&["--validation", "ten"], &["not a number of images"]);
    assert_refused(&["--early-stopping", "0"], &["at least 1"]);
    assert_refused(
        &["--dropout", "1"],
        &["not a dropout probability in (0, 1)"],
    );
    assert_refused(
        &["--weight-decay", "-0.1"],
        &["not a weight decay in [0, 1)"],
    );
    assert_refused(&["--shift", "0"], &["0 is not a shift", "1 to 255"]);
    assert_refused(&["--shift", "two"], &["not a whole number of pixels"]);
    let data = mnist_dir();
    assert_refused(
        &["--shift", "28", "--data-dir", &data, "--limit", "100"],
        &["--shift 28 would move every pixel out of these 28x28 images"],
    );
}

/// --validation holds images out of training and chooses the epoch of lowest validation loss;
/// early stopping ends the run; the test set is evaluated once, on that model, which is the
/// one saved: `eval` of the file gives the same test figures, on both backends.
#[test]
fn held_out_validation_chooses_the_epoch_and_the_test_set_judges_it_once() {
    let scratch = Scratch::new("held-out");
    let (model, metrics) = (scratch.file("m.safetensors"), scratch.file("m.jsonl"));
    let data = mnist_dir();
    let out = succeeds(&[
        "--preset",
        "modern",
        "--schedule",
        "constant",
        "--lr",
        "0.003",
        "--limit",
        "3000",
        "--validation",
        "0.05",
        "--early-stopping",
        "2",
        "--epochs",
        "30",
        "--data-dir",
        &data,
        "--save",
        &model,
        "--metrics",
        &metrics,
    ]);
    assert!(
        out.contains("validation on the last 3000 training images, held out"),
        "{out}"
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (last, epochs) = lines.split_last().unwrap();
    assert!(epochs.len() < 30, "early stopping never stopped: {out}");
    assert!(epochs.iter().all(|l| l["val_set"] == "held-out"));
    let best = epochs
        .iter()
        .min_by(|a, b| {
            a["val_loss"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["val_loss"].as_f64().unwrap())
        })
        .unwrap();
    let chosen = best["epoch"].as_u64().unwrap();
    assert_eq!(
        epochs.len() as u64,
        chosen + 2,
        "stopped 2 epochs after the best"
    );
    assert_eq!(
        (&last["set"], &last["epoch"]),
        (&"test".into(), &chosen.into())
    );
    assert!(
        out.contains(&format!("saved the model of epoch {chosen} to")),
        "{out}"
    );
    let test_accuracy = 100.0 * last["test_accuracy"].as_f64().unwrap();
    assert!(test_accuracy > 85.0, "{out}");
    eval_on_both_backends(&model, &data, test_accuracy);
}

#[test]
fn modern_preset_trains_saves_and_is_rebuilt_by_eval_and_predict_on_both_backends() {
    let scratch = Scratch::new("modern");
    let data = mnist_dir();
    let model = scratch.file("modern.safetensors");
    let out = succeeds(&[
        "--preset",
        "modern",
        "--data-dir",
        &data,
        "--limit",
        "5000",
        "--epochs",
        "2",
        "--save",
        &model,
    ]);
    assert!(
        out.contains("relu layers, softmax-ce output, he weights"),
        "{out}"
    );
    assert!(out.contains("adam"), "{out}");
    let summary = line_starting(&out, "summary");
    let final_accuracy = final_accuracy(summary);
    // Two epochs over 5,000 images reached 91.5 % here; the seed network got 18.9 %.
    assert!(final_accuracy > 85.0, "{summary}");

    for eval in eval_on_both_backends(&model, &data, final_accuracy) {
        assert!(eval.contains("relu layers"), "{eval}");
    }
    let predicted = succeeds(&[
        "predict",
        "--model",
        &model,
        "--index",
        "0",
        "--data-dir",
        &data,
    ]);
    assert!(predicted.contains("softmax probabilities"), "{predicted}");
    let top = line_starting(
        predicted
            .lines()
            .find(|l| l.contains("top 3"))
            .unwrap()
            .trim(),
        "top 3",
    );
    let probabilities: f64 = top
        .split('(')
        .skip(1)
        .map(|p| p.split(')').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!(probabilities <= 1.0 + 1e-3 && probabilities > 0.5, "{top}");

    // A model of another kind than the run's is refused as --init, with what to pass.
    assert_refused(
        &[
            "--init",
            &model,
            "--layers",
            "784,256,128,10",
            "--data-dir",
            &data,
        ],
        &["relu", "--activation relu --output softmax-ce"],
    );
}

#[test]
fn check_holds_the_backends_in_lockstep_with_adam_and_shuffling() {
    let out = succeeds(&[
        "check",
        "--preset",
        "modern",
        "--data-dir",
        &mnist_dir(),
        "--limit",
        "1000",
        "--steps",
        "25",
        "--every",
        "5",
    ]);
    assert!(
        out.contains("verdict: the fast CPU backend and the GPU match the reference"),
        "{out}"
    );
    // Rows are named after the reference function and the kernel that computed the tensor.
    for words in [
        "fast CPU vs reference:",
        "GPU vs reference:",
        "linear_forward A1            by sparse_forward",
        "hidden_delta D1              by row_forward_backward",
        "weights_update W1            by sparse_weights_gradient + adam_update_vectorised",
    ] {
        assert!(out.contains(words), "{words:?} not in:\n{out}");
    }
    let out = succeeds(&[
        "check",
        "--optimiser",
        "momentum",
        "--activation",
        "tanh",
        "--weight-init",
        "xavier",
        "--reduction",
        "mean",
        "--lr",
        "0.1",
        "--schedule",
        "step",
        "--shuffle",
        "--data-dir",
        &mnist_dir(),
        "--limit",
        "500",
        "--steps",
        "12",
        "--every",
        "4",
    ]);
    assert!(
        out.contains("verdict: the fast CPU backend and the GPU match the reference"),
        "{out}"
    );
}

/// Shifts with both dropouts, on MNIST: the fast CPU backend and the GPU move the same images
/// the same way as the reference.
#[test]
fn check_holds_the_backends_in_lockstep_with_shifts_and_dropout() {
    let out = succeeds(&[
        "check",
        "--preset",
        "modern",
        "--shift",
        "2",
        "--input-dropout",
        "0.1",
        "--dropout",
        "0.2",
        "--data-dir",
        &mnist_dir(),
        "--limit",
        "1000",
        "--steps",
        "20",
        "--every",
        "5",
    ]);
    assert!(
        out.contains("verdict: the fast CPU backend and the GPU match the reference"),
        "{out}"
    );
    assert!(out.contains("shifts of up to 2 pixels"), "{out}");
    // The per-layer schedule drops each hidden layer in a kernel of its own.
    let out = succeeds(&[
        "check",
        "--preset",
        "modern",
        "--dropout",
        "0.2",
        "--kernel",
        "registers",
        "--data-dir",
        &mnist_dir(),
        "--limit",
        "500",
        "--steps",
        "10",
        "--every",
        "5",
    ]);
    assert!(
        out.contains("verdict: the fast CPU backend and the GPU match the reference")
            && out.contains("by sparse_forward + dropout_forward"),
        "{out}"
    );
}

#[test]
fn bench_profile_names_each_gpu_kernel_and_says_when_a_backend_cannot() {
    let data = mnist_dir();
    let common = [
        "--data-dir",
        data.as_str(),
        "--limit",
        "300",
        "--epochs",
        "1",
    ];
    // In the file order the GPU builds each batch's pixel lists once, at upload; shuffled, it
    // builds them every step with pixel_columns.
    for (order, regroups) in [("--no-shuffle", false), ("--shuffle", true)] {
        let args = [
            &["bench", "--backend", "gpu", "--profile", order],
            &common[..],
        ]
        .concat();
        let gpu = succeeds(&args);
        assert!(gpu.contains("dense-equivalent"), "{gpu}");
        assert!(gpu.contains("% of training pixels are lit"), "{gpu}");
        let profile = line_starting(&gpu, "profile: ");
        // lavapipe writes timestamps inside compute passes; an adapter that cannot must say so.
        if profile.contains("cannot time its kernels") {
            continue;
        }
        assert!(profile.contains("mean per step over 3 steps"), "{gpu}");
        for kernel in [
            "sparse_forward",
            "sparse_weights_update",
            "row_forward_backward",
            "layers_weights_update",
        ] {
            assert!(
                gpu.contains(&format!("  {kernel} layer")),
                "{kernel} missing: {gpu}"
            );
        }
        assert_eq!(
            gpu.contains("  pixel_columns layer"),
            regroups,
            "{order}: {gpu}"
        );
    }
    let cpu = succeeds(&[&["bench", "--backend", "cpu", "--profile"], &common[..]].concat());
    assert!(
        cpu.contains("profile: this backend cannot time its kernels"),
        "{cpu}"
    );
}

/// A run stopped by SIGTERM after its first checkpoint leaves that checkpoint whole (and no
/// temporary file), and resumed from it ends with the same parameters, bit for bit, as a run
/// that never stopped: on the CPU and on the GPU. Resuming with other options is refused.
#[test]
fn interrupted_run_resumed_from_its_checkpoint_ends_with_the_same_bits() {
    let data = mnist_dir();
    for backend in ["cpu", "gpu"] {
        let scratch = Scratch::new(&format!("resume-{backend}"));
        let dir = scratch.file("checkpoints");
        let options = [
            "--preset",
            "modern",
            "--epochs",
            "10",
            "--limit",
            "4000",
            "--validation",
            "1000",
            "--quiet",
            "--backend",
            backend,
            "--data-dir",
            &data,
        ];
        let with = |more: &[&str]| -> Vec<String> {
            options.iter().chain(more).map(|s| s.to_string()).collect()
        };
        succeeds(&strs(&with(&[
            "--save",
            &scratch.file("whole.safetensors"),
        ])));

        let mut interrupted = Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
            // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
            .env("MLP_KERNEL_CACHE", "off")
            .args(with(&["--checkpoint", &dir]))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let file = scratch.path().join("checkpoints/checkpoint.safetensors");
        while !file.exists() {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Command::new("kill")
            .args(["-TERM", &interrupted.id().to_string()])
            .status()
            .unwrap();
        interrupted.wait().unwrap();
        let mut left: Vec<_> = std::fs::read_dir(scratch.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        // The lock file stays: removing it could let two runs lock two files of one name.
        assert_eq!(left, [".lock", "checkpoint.safetensors"], "{backend}");
        let epoch = mlp_core::checkpoint::Checkpoint::load(&file).unwrap().epoch;
        assert!(epoch < 10, "{backend}: the run ended before it was stopped");

        let resumed = succeeds(&strs(&with(&[
            "--resume",
            &dir,
            "--save",
            &scratch.file("resumed.safetensors"),
        ])));
        assert!(
            resumed.contains(&format!("resuming after epoch {epoch} of 10")),
            "{resumed}"
        );
        let parameters = |name: &str| {
            mlp_core::Model::load(&scratch.path().join(name))
                .unwrap()
                .parameters
        };
        assert_eq!(
            parameters("whole.safetensors"),
            parameters("resumed.safetensors"),
            "{backend}: resumed after epoch {epoch}"
        );
        assert_refused(
            &strs(&with(&["--resume", &dir, "--lr", "0.002"])),
            &["options differ", "lr 0.002 (checkpoint 0.001)"],
        );
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `bench --to-accuracy` trains until the held-out validation accuracy reaches the target and
/// reports the seconds of training, the epochs and the test accuracy of that epoch's model; a
/// target the schedule never reaches is said so; a target that is not an accuracy is refused.
#[test]
fn bench_to_accuracy_reports_the_time_and_the_test_accuracy_of_that_model() {
    let data = mnist_dir();
    let run = |target: &str, epochs: &str| {
        succeeds(&[
            "bench",
            "--preset",
            "modern",
            "--limit",
            "3000",
            "--validation",
            "500",
            "--to-accuracy",
            target,
            "--train-epochs",
            epochs,
            "--data-dir",
            &data,
        ])
    };
    let reached = run("0.85", "5");
    let line = line_starting(&reached, "reached 85.00% after");
    assert!(line.contains("s of training; test accuracy"), "{line}");
    let never = run("1", "2");
    assert!(
        never.contains("did not reach 100.00% in the 2 epochs"),
        "{never}"
    );
    assert_refused(
        &["bench", "--to-accuracy", "98"],
        &["not an accuracy in (0, 1]"],
    );
}

/// `--preset best` is the configuration the README reports: its network, dropout and shifts,
/// 5000 training images held out, and options still override it. `check` holds the fast CPU
/// backend and the GPU to the reference on it (a short run: the full one is for the README).
#[test]
fn best_preset_holds_out_validation_and_the_backends_agree_on_it() {
    let data = mnist_dir();
    let out = succeeds(&[
        "train",
        "--preset",
        "best",
        "--epochs",
        "1",
        "--limit",
        "500",
        "--data-dir",
        &data,
    ]);
    for words in [
        "validation on the last 5000 training images, held out",
        "network: 784-512-512-10 relu layers",
        "dropout 0.3, shifts of up to 2 pixels",
        "test set:",
    ] {
        assert!(out.contains(words), "{words:?} not in:\n{out}");
    }
    let out = succeeds(&[
        "train",
        "--preset",
        "best",
        "--epochs",
        "1",
        "--limit",
        "500",
        "--validation",
        "100",
        "--dropout",
        "0.1",
        "--shift",
        "1",
        "--data-dir",
        &data,
    ]);
    assert!(
        out.contains("last 100 training images") && out.contains("dropout 0.1, shifts of up to 1"),
        "{out}"
    );
    let out = succeeds(&[
        "check",
        "--preset",
        "best",
        "--data-dir",
        &data,
        "--limit",
        "300",
        "--steps",
        "6",
        "--every",
        "3",
    ]);
    assert!(
        out.contains("verdict: the fast CPU backend and the GPU match the reference"),
        "{out}"
    );
}

/// `tune` times every variant on the adapter and keeps the fastest; a later GPU run uses it
/// without timing again and says so; a run whose adapter and network have no entry times them
/// itself, once.
#[test]
fn tune_times_every_variant_and_later_runs_use_the_cache() {
    let scratch = Scratch::new("tune");
    let cache = scratch.file("kernels.json");
    let data = mnist_dir();
    let common = ["--backend", "gpu", "--data-dir", &data, "--limit", "600"];
    let tuned = succeeds(
        &[
            &["tune", "--steps", "4", "--kernel-cache", &cache][..],
            &common,
        ]
        .concat(),
    );
    for variant in KernelVariant::all() {
        let line = tuned
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{variant} ")))
            .unwrap_or_else(|| panic!("{variant} not timed:\n{tuned}"));
        assert!(
            line.contains("ms per step") && line.contains(" per "),
            "{line}"
        );
    }
    let fastest = tuned
        .split("fastest: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no choice in:\n{tuned}"))
        .to_string();
    let train = |cache: &str| {
        let out = mlp_cli(&[&["--epochs", "1", "--kernel-cache", cache][..], &common].concat());
        assert!(out.status.success());
        // The backend's line says which kernels and why; the timing is noted on stderr.
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let again = train(&cache);
    assert!(
        again.contains(&format!("{fastest} kernels (tuned on this adapter"))
            && !again.contains("timing each variant"),
        "{again}"
    );
    let fresh = scratch.file("fresh.json");
    let first = train(&fresh);
    assert!(
        first.contains("timing each variant") && first.contains("tuned now"),
        "{first}"
    );
    assert!(
        std::fs::read_to_string(&fresh)
            .unwrap()
            .contains("ms_per_step")
    );
    assert!(!train(&fresh).contains("timing each variant"));
}

/// `check --kernel` holds each variant to the reference on MNIST.
#[test]
fn check_passes_with_each_kernel() {
    let data = mnist_dir();
    for variant in KernelVariant::all() {
        let out = succeeds(&[
            "check",
            "--kernel",
            &variant.name(),
            "--data-dir",
            &data,
            "--limit",
            "400",
            "--steps",
            "6",
            "--every",
            "3",
            "--shuffle",
        ]);
        assert!(
            out.contains("verdict: the fast CPU backend and the GPU match the reference"),
            "{variant}: {out}"
        );
    }
}

/// `--preset minute` is best's network and training with the larger batch, rate and epochs
/// that reach 99 % in under 45 s of training (docs/results.md), validating on held-out images.
#[test]
fn minute_preset_is_best_with_a_larger_batch_in_27_epochs() {
    let out = succeeds(&[
        "--preset",
        "minute",
        "--limit",
        "600",
        "--epochs",
        "1",
        "--data-dir",
        &mnist_dir(),
    ]);
    for said in [
        "validation on the last 5000 training images, held out",
        "network: 784-512-512-10 relu layers",
        "at lr 0.002 (cosine schedule), dropout 0.2, shifts of up to 2 pixels, batch 200",
    ] {
        assert!(out.contains(said), "{said:?} not in {out}");
    }
    let help = succeeds(&["--help"]);
    assert!(help.contains("minute: 27"), "{help}");
}

/// `--preset fast` is the configuration the README times: one hidden layer of 192, Adam at
/// 0.005, 4 epochs; on a tenth of MNIST it already learns.
#[test]
fn fast_preset_is_what_the_readme_times() {
    let out = succeeds(&[
        "--preset",
        "fast",
        "--limit",
        "6000",
        "--data-dir",
        &mnist_dir(),
    ]);
    assert!(
        out.contains("network: 784-192-10 relu layers")
            && out.contains("adam (β1 0.9, β2 0.999, ε 1e-8) at lr 0.005 (cosine schedule)"),
        "{out}"
    );
    assert!(out.contains("4 epochs"), "{out}");
    assert!(final_accuracy(&out) > 93.0, "{out}");
}
