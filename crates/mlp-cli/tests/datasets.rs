//! Data sets other than MNIST, as a user meets them: Fashion-MNIST by name with its checksums
//! verified, and IDX sets made here of other image sizes and class counts (26 classes of
//! 32 x 32 images), trained and predicted on both backends.
//!
//! Fashion-MNIST is read from Debian's `dataset-fashion-mnist` (`FASHION_MNIST_DIR` elsewhere),
//! which `scripts/test` installs; the tests fail, never skip, where it is missing.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::Scratch;

fn mlp_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
        .env("MLP_KERNEL_CACHE", "off")
        .args(args)
        .env_remove("MNIST_DIR")
        .output()
        .expect("mlp-cli runs")
}

fn succeeds(args: &[&str]) -> String {
    let out = mlp_cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?} failed:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails_with(args: &[&str], words: &[&str]) {
    let out = mlp_cli(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for word in words {
        assert!(
            stderr.contains(word),
            "{args:?}: {word:?} not in:\n{stderr}"
        );
    }
}

fn fashion_dir() -> PathBuf {
    let dir = std::env::var_os("FASHION_MNIST_DIR").map_or_else(
        || PathBuf::from("/usr/share/datasets/fashion-mnist"),
        PathBuf::from,
    );
    assert!(
        dir.join("t10k-labels-idx1-ubyte.gz").is_file(),
        "these tests need Fashion-MNIST in {} (apt-get install dataset-fashion-mnist, as \
         scripts/test does, or set FASHION_MNIST_DIR)",
        dir.display()
    );
    dir
}

/// The final validation accuracy, in percent, of a training run's summary line.
fn final_accuracy(out: &str) -> f64 {
    out.split("final val accuracy ")
        .nth(1)
        .and_then(|rest| rest.split('%').next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no final accuracy in {out}"))
}

#[test]
fn fashion_mnist_by_name_trains_predicts_with_class_names_and_is_checked() {
    let dir = fashion_dir();
    let dir = dir.to_str().unwrap();
    let scratch = Scratch::new("fashion");
    let model = scratch.file("fashion.safetensors");
    let fashion = ["--dataset", "fashion-mnist", "--data-dir", dir];
    let out = succeeds(
        &[
            &fashion[..],
            &[
                "--preset", "modern", "--epochs", "2", "--limit", "10000", "--save", &model,
            ],
        ]
        .concat(),
    );
    assert!(final_accuracy(&out) > 75.0, "{out}");
    let predicted = succeeds(
        &[
            &["predict", "--model", &model, "--index", "0"],
            &fashion[..],
        ]
        .concat(),
    );
    assert!(predicted.contains("label 9 Ankle boot"), "{predicted}");

    // A file that is not Fashion-MNIST's, by content: refused, naming it.
    let copy = scratch.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
    }
    let labels = copy.join("t10k-labels-idx1-ubyte.gz");
    let mut content = gunzip(&labels);
    content[100] = (content[100] + 1) % 10;
    std::fs::write(&labels, gzip(&content)).unwrap();
    let copy = copy.to_str().unwrap();
    fails_with(
        &[
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            copy,
            "--epochs",
            "1",
        ],
        &[
            "t10k-labels-idx1-ubyte.gz",
            "is not the Fashion-MNIST file",
            "SHA-256",
        ],
    );
    // MNIST under Fashion-MNIST's name is refused too.
    let mnist = common::mnist_dir();
    fails_with(
        &[
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            mnist.to_str().unwrap(),
            "--epochs",
            "1",
        ],
        &["is not the Fashion-MNIST file"],
    );
}

fn gunzip(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

/// An IDX set of `count` images `side` x `side` in `classes` classes: class c is a bright
/// square at its own place on a grid, with a little noise, so that a network can learn it.
fn write_set(dir: &Path, prefix: &str, count: u32, side: u32, classes: u32) {
    let mut images: Vec<u8> = [0x803u32, count, side, side]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let mut labels: Vec<u8> = [0x801u32, count]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let per_row = (side / 5).max(1);
    let mut noise = 12345u32;
    for i in 0..count {
        let class = i % classes;
        let (x0, y0) = ((class % per_row) * 5, (class / per_row) * 5);
        for y in 0..side {
            for x in 0..side {
                noise = noise.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let inside = (x0..x0 + 4).contains(&x) && (y0..y0 + 4).contains(&y);
                let speck = (noise >> 24) as u8 / 8;
                images.push(if inside { 200 + speck } else { speck / 4 });
            }
        }
        labels.push(class as u8);
    }
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), images).unwrap();
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), labels).unwrap();
}

#[test]
fn a_26_class_set_of_32x32_images_trains_and_predicts_on_both_backends() {
    let scratch = Scratch::new("letters");
    let data = scratch.path().join("letters");
    std::fs::create_dir_all(&data).unwrap();
    write_set(&data, "train", 1300, 32, 26);
    write_set(&data, "t10k", 260, 32, 26);
    let data = data.to_str().unwrap();
    let any = ["--any-idx", "--data-dir", data];
    for backend in ["cpu", "gpu"] {
        let model = scratch.file(&format!("letters-{backend}.safetensors"));
        let out = succeeds(
            &[
                &any[..],
                &[
                    "--preset",
                    "modern",
                    "--epochs",
                    "3",
                    "--backend",
                    backend,
                    "--save",
                    &model,
                ],
            ]
            .concat(),
        );
        assert!(out.contains("1024-256-128-26"), "{out}");
        assert!(final_accuracy(&out) > 90.0, "{backend}: {out}");
        for on in ["cpu", "gpu"] {
            let predicted = succeeds(
                &[
                    &[
                        "predict",
                        "--model",
                        &model,
                        "--index",
                        "27",
                        "--backend",
                        on,
                    ],
                    &any[..],
                ]
                .concat(),
            );
            assert!(
                predicted.contains("digit 1  label 1"),
                "{backend} model on {on}: {predicted}"
            );
        }
    }
    // --layers that do not fit the data, and --classes below a label, are refused.
    fails_with(
        &[&any[..], &["--layers", "784,64,10", "--epochs", "1"]].concat(),
        &[
            "--layers 784,64,10 does not fit",
            "input size 1024",
            "classes 26",
        ],
    );
    fails_with(
        &[&any[..], &["--classes", "20", "--epochs", "1"]].concat(),
        &["label 25", "--classes 20"],
    );
    let seed = scratch.file("seed.safetensors");
    let mnist = common::mnist_dir();
    let mnist = mnist.to_str().unwrap();
    succeeds(&[
        "--epochs",
        "1",
        "--limit",
        "500",
        "--data-dir",
        mnist,
        "--save",
        &seed,
    ]);
    fails_with(
        &[&["eval", "--model", &seed], &any[..]].concat(),
        &["takes 784 inputs", "32 x 32 = 1024 pixels"],
    );
}

/// `dir`'s set `prefix` as EMNIST stores its images and labels: each image transposed, each
/// label one more, under EMNIST Letters' file names.
fn write_as_emnist_letters(dir: &Path, prefix: &str, to: &Path, emnist_prefix: &str) {
    let images = std::fs::read(dir.join(format!("{prefix}-images-idx3-ubyte"))).unwrap();
    let labels = std::fs::read(dir.join(format!("{prefix}-labels-idx1-ubyte"))).unwrap();
    let side = u32::from_be_bytes(images[8..12].try_into().unwrap()) as usize;
    let mut stored = images[..16].to_vec();
    for image in images[16..].chunks_exact(side * side) {
        stored.extend((0..side * side).map(|i| image[(i % side) * side + i / side]));
    }
    let mut shifted = labels[..8].to_vec();
    shifted.extend(labels[8..].iter().map(|l| l + 1));
    let name = |kind: &str| to.join(format!("emnist-letters-{emnist_prefix}-{kind}.gz"));
    std::fs::write(name("images-idx3-ubyte"), gzip(&stored)).unwrap();
    std::fs::write(name("labels-idx1-ubyte"), gzip(&shifted)).unwrap();
}

/// EMNIST Letters by name: its files (transposed images, labels from 1) load as the set they
/// were made from, so a run on them ends exactly where a run on that set does, on both
/// backends; predict names the letters; a missing set says where NIST publishes it.
#[test]
fn emnist_letters_by_name_loads_turned_back_and_names_the_letters() {
    let scratch = Scratch::new("emnist");
    let (plain, emnist) = (scratch.path().join("plain"), scratch.path().join("emnist"));
    for dir in [&plain, &emnist] {
        std::fs::create_dir_all(dir).unwrap();
    }
    write_set(&plain, "train", 520, 28, 26);
    write_set(&plain, "t10k", 104, 28, 26);
    write_as_emnist_letters(&plain, "train", &emnist, "train");
    write_as_emnist_letters(&plain, "t10k", &emnist, "test");
    let (plain, emnist) = (plain.to_str().unwrap(), emnist.to_str().unwrap());
    let run = ["--preset", "modern", "--epochs", "2", "-q"];
    for backend in ["cpu", "gpu"] {
        let model = scratch.file(&format!("emnist-{backend}.safetensors"));
        let named = ["--dataset", "emnist-letters", "--data-dir", emnist];
        let out = succeeds(&[&run[..], &named, &["--backend", backend, "--save", &model]].concat());
        let any = ["--any-idx", "--data-dir", plain, "--backend", backend];
        let same = succeeds(&[&run[..], &any].concat());
        let summary = |out: &str| {
            out.lines().find(|l| l.starts_with("summary")).map(|l| {
                l.split(" in ")
                    .nth(1)
                    .and_then(|rest| rest.split_once("; "))
                    .map(|(_, r)| r.to_string())
            })
        };
        assert_eq!(summary(&out), summary(&same), "{backend}: {out}\n{same}");
        assert!(final_accuracy(&out) > 90.0, "{backend}: {out}");
        let predicted =
            succeeds(&[&["predict", "--model", &model, "--index", "27"], &named[..]].concat());
        assert!(predicted.contains("label 1 B b"), "{backend}: {predicted}");
    }
    let empty = scratch.path().join("none");
    fails_with(
        &[
            "--dataset",
            "emnist-balanced",
            "--no-download",
            "--data-dir",
            empty.to_str().unwrap(),
        ],
        &[
            "no EMNIST Balanced data",
            "emnist-balanced-train-images-idx3-ubyte",
            "https://biometrics.nist.gov/cs_links/EMNIST/gzip.zip",
            "mlp-cli download --dataset emnist-balanced",
        ],
    );
}
