//! Training on the user's own files: MNIST's training and test sets written by this test as
//! PNG folders, as Kaggle CSV files and as an `.npz` load as the very bytes of the IDX files
//! and train to the same bits, on both backends; a folder of 32 x 32 pictures in 26 classes
//! trains above chance on both backends and `predict` names its classes; and the options'
//! misuses are refused.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;
#[path = "../../mlp-core/tests/common/export.rs"]
mod export;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Scratch, mnist_dir};
use export::{set_arrays, write_npz, write_png_folders};
use mlp_core::Dataset;
use mlp_core::data::{self, DataFormat, PictureOptions};

fn mlp_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        .env("MLP_KERNEL_CACHE", "off")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("mlp-cli runs")
}

fn succeeded(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{what}: {stderr}");
    stderr
}

fn kaggle_csv(set: &Dataset) -> String {
    let names: Vec<String> = (0..set.pixels()).map(|i| format!("pixel{i}")).collect();
    let mut text = format!("label,{}\n", names.join(","));
    for (image, label) in set.images.chunks(set.pixels()).zip(&set.labels) {
        let pixels: Vec<String> = image.iter().map(u8::to_string).collect();
        text.push_str(&format!("{label},{}\n", pixels.join(",")));
    }
    text
}

/// Each format the CLI reads besides IDX, written from MNIST's whole training and test sets
/// in `root`: (the --format value, the --data-dir).
fn write_every_format(root: &Path, train: &Dataset, test: &Dataset) -> Vec<(&'static str, String)> {
    let digits: Vec<String> = (0..10).map(|d| d.to_string()).collect();
    let folders = root.join("folders");
    write_png_folders(&folders.join("train"), train, &digits);
    write_png_folders(&folders.join("test"), test, &digits);
    let csv = root.join("csv");
    fs::create_dir_all(&csv).unwrap();
    fs::write(csv.join("train.csv"), kaggle_csv(train)).unwrap();
    fs::write(csv.join("test.csv"), kaggle_csv(test)).unwrap();
    let npz = root.join("mnist.npz");
    let ((x_train, y_train), (x_test, y_test)) = (set_arrays(train), set_arrays(test));
    let arrays = [
        ("x_train", x_train),
        ("y_train", y_train),
        ("x_test", x_test),
        ("y_test", y_test),
    ];
    write_npz(&npz, &arrays);
    let path = |p: &Path| p.to_string_lossy().into_owned();
    vec![
        ("folders", path(&folders)),
        ("csv", path(&csv)),
        ("numpy", path(&npz)),
    ]
}

#[test]
fn training_from_folders_csv_and_npz_gives_the_bits_of_training_from_idx() {
    let mnist = data::load(&mnist_dir(), DataFormat::Mnist).unwrap();
    let scratch = Scratch::new("own-data-round-trip");
    let formats = write_every_format(scratch.path(), &mnist.train, &mnist.test);
    // The library's readers give back the IDX files' bytes and labels, in their order.
    let read = |format: &str, dir: &str| {
        let format = match format {
            "folders" => DataFormat::Folders(PictureOptions::default()),
            "csv" => DataFormat::Csv,
            _ => DataFormat::Numpy,
        };
        data::load(Path::new(dir), format).unwrap()
    };
    for (format, dir) in &formats {
        let loaded = read(format, dir);
        assert!(
            loaded.train == mnist.train && loaded.test == mnist.test,
            "{format}"
        );
        println!("{format}: all 70,000 images and labels equal the IDX files'");
    }
    let mnist_dir = mnist_dir().to_string_lossy().into_owned();
    for backend in ["cpu", "gpu"] {
        let saved = |name: &str| scratch.file(&format!("{name}-{backend}.safetensors"));
        let quick = [
            "--epochs",
            "1",
            "--limit",
            "3000",
            "-q",
            "--backend",
            backend,
        ];
        let from_idx = saved("idx");
        let args: Vec<&str> =
            [&quick[..], &["--data-dir", &mnist_dir, "--save", &from_idx]].concat();
        succeeded(&mlp_cli(&args), "idx");
        let parameters = |path: &str| mlp_core::Model::load(Path::new(path)).unwrap().parameters;
        for (format, dir) in &formats {
            let model = saved(format);
            let own = ["--format", format, "--data-dir", dir, "--save", &model];
            succeeded(&mlp_cli(&[&quick[..], &own].concat()), format);
            assert_eq!(
                parameters(&from_idx),
                parameters(&model),
                "{format} on {backend}"
            );
            println!("{backend}: training from {format} gives the bits of training from IDX");
        }
    }
}

/// A 32 x 32 picture of class `class` of 26: a bright square at the class's place on a 6 x 5
/// grid, shifted by up to a pixel and over a little noise, as RGB.
fn letter_picture(class: usize, variant: u32) -> image::RgbImage {
    let noise = |x: u32, y: u32| (x * 7 + y * 13 + variant * 31) % 23;
    let (dx, dy) = ((variant % 3) as i32 - 1, (variant / 3 % 3) as i32 - 1);
    let (left, top) = (
        (class % 6) as i32 * 5 + 1 + dx,
        (class / 6) as i32 * 6 + 1 + dy,
    );
    image::RgbImage::from_fn(32, 32, |x, y| {
        let inside = (left..left + 4).contains(&(x as i32)) && (top..top + 4).contains(&(y as i32));
        let level = if inside { 230 } else { noise(x, y) as u8 };
        image::Rgb([level, level / 2, 255 - level])
    })
}

/// `per_class` pictures of each of the 26 classes "A".."Z" in `dir/<letter>/`, PNG and JPEG.
fn write_letters(dir: &Path, per_class: u32, first_variant: u32) {
    for class in 0..26 {
        let letter = char::from(b'A' + class as u8).to_string();
        fs::create_dir_all(dir.join(&letter)).unwrap();
        for v in first_variant..first_variant + per_class {
            let extension = if v % 2 == 0 { "png" } else { "jpg" };
            let path = dir.join(&letter).join(format!("{v:04}.{extension}"));
            letter_picture(class, v).save(path).unwrap();
        }
    }
}

fn final_accuracy(stderr: &str) -> f64 {
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.contains("accuracy"))
        .unwrap_or_else(|| panic!("no accuracy in {stderr}"));
    let percent = line.split('%').next().unwrap();
    let number: String = percent
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    number.parse().unwrap_or_else(|_| panic!("{line}"))
}

#[test]
fn a_folder_of_26_classes_of_32_pixel_pictures_trains_above_chance_and_predicts_by_name() {
    let scratch = Scratch::new("own-data-letters");
    let root = scratch.path().join("letters");
    write_letters(&root.join("train"), 24, 0);
    write_letters(&root.join("test"), 6, 100);
    let root = root.to_string_lossy().into_owned();
    for backend in ["cpu", "gpu"] {
        let model = scratch.file(&format!("letters-{backend}.safetensors"));
        let run = mlp_cli(&[
            "--format",
            "folders",
            "--data-dir",
            &root,
            "--image-size",
            "32",
            "--preset",
            "modern",
            "--epochs",
            "8",
            "--backend",
            backend,
            "--save",
            &model,
        ]);
        let stderr = succeeded(&run, backend);
        let stdout = String::from_utf8_lossy(&run.stdout);
        let accuracy = final_accuracy(&stdout);
        println!("{backend}: 26 classes of 32 x 32 pictures, {accuracy}% (chance 3.8%)");
        assert!(accuracy > 30.0, "{backend}: {accuracy}%\n{stdout}");
        assert!(
            stderr.contains("26 classes, named by their folders: A, B, C"),
            "{stderr}"
        );
        let loaded = mlp_core::Model::load(Path::new(&model)).unwrap();
        assert_eq!(loaded.parameters.sizes().first(), Some(&1024));
        assert_eq!(loaded.parameters.sizes().last(), Some(&26));
        let picture = format!("{root}/test/H/0100.png");
        let predicted = mlp_cli(&["predict", "--model", &model, &picture]);
        succeeded(&predicted, "predict");
        let stdout = String::from_utf8_lossy(&predicted.stdout);
        assert!(stdout.contains(": class 7 H"), "{stdout}");
        // eval reads the folders as the model's were read, its side taken from the model.
        let args = [
            "eval",
            "--model",
            &model,
            "--format",
            "folders",
            "--data-dir",
            &root,
        ];
        let evaluated = mlp_cli(&[&args[..], &["--backend", backend]].concat());
        let said = String::from_utf8_lossy(&evaluated.stdout);
        succeeded(&evaluated, "eval");
        assert!(said.contains("test set: 156 images"), "{said}");
        // The class names go with the model to ONNX, one per line of its metadata.
        let onnx = scratch.file(&format!("letters-{backend}.onnx"));
        succeeded(
            &mlp_cli(&["export", "--model", &model, "--onnx", &onnx]),
            "export",
        );
        let bytes = fs::read(&onnx).unwrap();
        assert!(bytes.windows(11).any(|w| w == b"class_names"));
        assert!(bytes.windows(8).any(|w| w == b"A\nB\nC\nD\n"));
    }
}

#[test]
fn own_data_options_are_refused_where_they_do_not_apply_and_bad_pictures_are_named() {
    let scratch = Scratch::new("own-data-misuse");
    let mnist = mnist_dir().to_string_lossy().into_owned();
    let usage = mlp_cli(&["--data-dir", &mnist, "--image-size", "32", "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&usage.stderr);
    assert_eq!(usage.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--image-size applies to --format folders only"),
        "{stderr}"
    );
    let no_dir = mlp_cli(&["--format", "numpy", "--epochs", "1"]);
    let stderr = String::from_utf8_lossy(&no_dir.stderr);
    assert_eq!(no_dir.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--format numpy needs --data-dir"),
        "{stderr}"
    );

    let root = scratch.path().join("pictures");
    write_letters(&root, 4, 0);
    let bad = root.join("C/0002.png");
    fs::write(&bad, b"not a picture").unwrap();
    let root = root.to_string_lossy().into_owned();
    let args = [
        "--format",
        "folders",
        "--data-dir",
        &root,
        "--image-size",
        "32",
    ];
    let refused = mlp_cli(&[&args[..], &["--validation", "10", "--epochs", "1"]].concat());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot use the picture {}", bad.display())),
        "{stderr}"
    );
    let skipped = mlp_cli(
        &[
            &args[..],
            &["--skip-bad", "--validation", "10", "--epochs", "1"],
        ]
        .concat(),
    );
    let stderr = succeeded(&skipped, "--skip-bad");
    assert!(stderr.contains("skipped 1 of the 104 pictures"), "{stderr}");
}
