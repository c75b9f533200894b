//! The command line against a hostile user: a catalogue of bad inputs, one row each, run
//! through the real binary. For every row: the exit code, no panic, the first line of the
//! message, and that no file in the scratch directory was created, changed or removed (the
//! old model, the old metrics, the FIFO and the link all stay as they were). Then the cases
//! that need a process of their own: a closed stdout, a signal, a full disk.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::Scratch;

const BIN: &str = env!("CARGO_BIN_EXE_mlp-cli");
const IMAGES_MAGIC: u32 = 0x803;
const LABELS_MAGIC: u32 = 0x801;

fn mlp_cli(args: &[&str]) -> Output {
    Command::new(BIN)
        // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
        .env("MLP_KERNEL_CACHE", "off")
        .args(args)
        .env_remove("MNIST_DIR")
        .env_remove("XDG_RUNTIME_DIR")
        // As a user runs it: scripts/test quiets Mesa's layer for the tests, mlp-cli must itself.
        .env_remove("NODEVICE_SELECT")
        .stdin(Stdio::null())
        .output()
        .expect("mlp-cli runs")
}

fn mnist() -> String {
    common::mnist_dir().to_string_lossy().into_owned()
}

fn images(count: u32, side: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = [IMAGES_MAGIC, count, side, side]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    bytes.extend((0..count * side * side).map(|i| if i % 3 == 0 { 200 } else { 0 }));
    bytes
}

fn labels(count: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = [LABELS_MAGIC, count]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    bytes.extend((0..count).map(|i| (i % 10) as u8));
    bytes
}

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// A directory `name` in `root` holding an IDX set of `train` and `test` images.
fn idx_set(root: &Path, name: &str, train: u32, test: u32) -> PathBuf {
    let dir = root.join(name);
    fs::create_dir_all(&dir).unwrap();
    let files = [
        images(train, 28),
        labels(train),
        images(test, 28),
        labels(test),
    ];
    for (file, bytes) in NAMES.iter().zip(files) {
        fs::write(dir.join(file), bytes).unwrap();
    }
    dir
}

fn gzip_of(parts: &[&[u8]]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for part in parts {
        encoder.write_all(part).unwrap();
    }
    encoder.finish().unwrap()
}

/// A PNG whose header says `width` x `height` grey pixels and whose data is one empty row:
/// what a decoder would allocate for is the header's size.
fn png_header(width: u32, height: u32) -> Vec<u8> {
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        let mut bytes = (data.len() as u32).to_be_bytes().to_vec();
        bytes.extend(kind);
        bytes.extend(data);
        bytes.extend(crc.sum().to_be_bytes());
        bytes
    };
    let mut header = width.to_be_bytes().to_vec();
    header.extend(height.to_be_bytes());
    header.extend([8, 0, 0, 0, 0]);
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&[0]).unwrap();
    let data = encoder.finish().unwrap();
    [
        b"\x89PNG\r\n\x1a\n".to_vec(),
        chunk(b"IHDR", &header),
        chunk(b"IDAT", &data),
        chunk(b"IEND", &[]),
    ]
    .concat()
}

/// Every file under `dir` with its kind and content: what a row must leave as it was.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.file_type().is_symlink() {
            files.insert(
                path.clone(),
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes(),
            );
        } else if meta.is_dir() {
            files.insert(path.clone(), b"<dir>".to_vec());
            files.extend(snapshot(&path));
        } else if meta.len() > 1 << 20 {
            // The bomb and the sparse file: their size and time stand for their content.
            let stamp = format!("{} {:?}", meta.len(), meta.modified().unwrap());
            files.insert(path.clone(), stamp.into_bytes());
        } else if meta.is_file() {
            files.insert(path.clone(), fs::read(&path).unwrap());
        } else {
            files.insert(path.clone(), format!("{:?}", meta.file_type()).into_bytes());
        }
    }
    files
}

/// The scratch directory every row runs against.
struct Fixture {
    scratch: Scratch,
}

impl Fixture {
    /// The fixture in a scratch directory of its own, `name`.
    fn new(name: &str) -> Self {
        let scratch = Scratch::new(name);
        let root = scratch.path();
        fs::write(root.join("old.safetensors"), b"a model the user keeps").unwrap();
        fs::write(root.join("old.jsonl"), b"{\"epoch\":1}\n").unwrap();
        std::os::unix::fs::symlink("old.safetensors", root.join("link.safetensors")).unwrap();
        let fifo = root.join("fifo");
        assert!(
            Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        idx_set(root, "no-train", 0, 3);
        idx_set(root, "no-test", 5, 0);
        // 1 GiB of zeros behind a header that promises one image.
        let bomb = idx_set(root, "bomb", 5, 3);
        let zeros = vec![0u8; 1 << 20];
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&images(1, 28)).unwrap();
        for _ in 0..1024 {
            encoder.write_all(&zeros).unwrap();
        }
        fs::remove_file(bomb.join(NAMES[0])).unwrap();
        fs::write(
            bomb.join(format!("{}.gz", NAMES[0])),
            encoder.finish().unwrap(),
        )
        .unwrap();
        // A 3 GB file, sparse, behind a header that promises one image.
        let sparse = idx_set(root, "sparse", 5, 3);
        let file = fs::File::create(sparse.join(NAMES[0])).unwrap();
        (&file).write_all(&images(1, 28)).unwrap();
        file.set_len(3_000_000_000).unwrap();
        // Both forms of a file: the raw one is read, and a note says so.
        let both = idx_set(root, "both", 5, 3);
        fs::write(
            both.join(format!("{}.gz", NAMES[1])),
            gzip_of(&[&labels(5)]),
        )
        .unwrap();
        // Two gzip members, as RFC 1952 allows.
        let members = idx_set(root, "members", 5, 3);
        let whole = images(5, 28);
        let two = [gzip_of(&[&whole[..100]]), gzip_of(&[&whole[100..]])].concat();
        fs::remove_file(members.join(NAMES[0])).unwrap();
        fs::write(members.join(format!("{}.gz", NAMES[0])), two).unwrap();
        fs::write(root.join("huge.png"), png_header(20_000, 20_000)).unwrap();
        let model = mlp_core::Model {
            parameters: mlp_core::Parameters::seed_init(&mlp_core::LayerSizes::seed(), 0),
            info: mlp_core::ModelInfo::seed(0),
        };
        model.save(&root.join("seed.safetensors")).unwrap();
        let mut fashion = model.clone();
        let options = &mut fashion.info.options;
        options.insert("dataset".into(), "Fashion-MNIST".into());
        fashion.save(&root.join("fashion.safetensors")).unwrap();
        fs::create_dir(root.join("ck")).unwrap();
        Self { scratch }
    }

    fn path(&self, name: &str) -> String {
        self.scratch.file(name)
    }
}

/// One bad input: what to run, the exit code, and text the first line of stderr must hold.
struct Case {
    name: &'static str,
    args: Vec<String>,
    code: i32,
    first_line: &'static str,
}

fn cases(f: &Fixture) -> Vec<Case> {
    let p = |name: &str| f.path(name);
    let (old, metrics, fifo, link) = (
        p("old.safetensors"),
        p("old.jsonl"),
        p("fifo"),
        p("link.safetensors"),
    );
    let mnist = mnist();
    let quick = [
        "--epochs",
        "1",
        "--limit",
        "200",
        "-q",
        "--data-dir",
        &mnist,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        extra
            .iter()
            .chain(&quick)
            .map(ToString::to_string)
            .collect()
    };
    let row = |name, args: Vec<String>, code, first_line| Case {
        name,
        args,
        code,
        first_line,
    };
    vec![
        // Writes that would replace what is not a regular file, or go nowhere.
        row(
            "save to a device",
            with(&["--save", "/dev/null"]),
            1,
            "--save: cannot write /dev/null: it is a device",
        ),
        row(
            "save to a FIFO",
            with(&["--save", &fifo]),
            1,
            "it is a FIFO, not a regular file",
        ),
        row(
            "save to a directory",
            with(&["--save", &p("bomb")]),
            1,
            "it is a directory",
        ),
        row(
            "save to a missing directory",
            with(&["--save", &p("nowhere/m.safetensors")]),
            1,
            "does not exist",
        ),
        row(
            "save to a read-only place",
            with(&["--save", "/proc/m.safetensors"]),
            1,
            "--save: cannot write /proc/m.safetensors",
        ),
        row(
            "metrics and model to one file",
            with(&["--save", &link, "--metrics", &old]),
            1,
            "are the same file: give each its own",
        ),
        row(
            "metrics to a FIFO",
            with(&["--metrics", &fifo]),
            1,
            "--metrics: cannot write",
        ),
        row("plots over a file", with(&["--plots", &old]), 1, "--plots"),
        // Bad data, after which no output may be touched.
        row(
            "metrics kept when the data is missing",
            vec![
                "--metrics".into(),
                metrics.clone(),
                "--save".into(),
                old.clone(),
                "--data-dir".into(),
                p("absent"),
                "--no-download".into(),
            ],
            1,
            "no MNIST data in",
        ),
        row(
            "no training images",
            vec![
                "--any-idx".into(),
                "--data-dir".into(),
                p("no-train"),
                "--save".into(),
                link.clone(),
                "--metrics".into(),
                metrics.clone(),
            ],
            1,
            "holds no images",
        ),
        row(
            "no test images",
            vec!["--any-idx".into(), "--data-dir".into(), p("no-test")],
            1,
            "holds no images",
        ),
        row(
            "check with no training images",
            vec![
                "check".into(),
                "--any-idx".into(),
                "--data-dir".into(),
                p("no-train"),
            ],
            1,
            "holds no images",
        ),
        row(
            "predict an index of an empty test set",
            vec![
                "predict".into(),
                "--model".into(),
                p("seed.safetensors"),
                "--index".into(),
                "0".into(),
                "--any-idx".into(),
                "--data-dir".into(),
                p("no-test"),
            ],
            1,
            "holds no images",
        ),
        row(
            "a gzip bomb",
            vec![
                "--any-idx".into(),
                "--data-dir".into(),
                p("bomb"),
                "--epochs".into(),
                "1".into(),
            ],
            1,
            "holds more than the 800 bytes its header promises",
        ),
        row(
            "a huge sparse file",
            vec![
                "--any-idx".into(),
                "--data-dir".into(),
                p("sparse"),
                "--epochs".into(),
                "1".into(),
            ],
            1,
            "is 3000000000 bytes but its header promises 800",
        ),
        // Diverging training saves nothing that eval would refuse.
        row(
            "diverging on the CPU",
            with(&[
                "--preset",
                "modern",
                "--lr",
                "1e30",
                "--save",
                &p("diverged.safetensors"),
            ]),
            1,
            "training diverged in epoch 1 at step",
        ),
        row(
            "diverging on the GPU",
            with(&[
                "--backend",
                "gpu",
                "--activation",
                "relu",
                "--output",
                "softmax-ce",
                "--lr",
                "1000",
                "--save",
                &link,
            ]),
            1,
            "training diverged in epoch 1 at step",
        ),
        // Networks that cannot fit.
        row(
            "a layer past addressing",
            with(&["--layers", "784,100000000000000000,10"]),
            2,
            "more weights than this machine can address",
        ),
        row(
            "a layer past memory",
            with(&["--layers", "784,1000000000000,10", "--save", &old]),
            1,
            "needs 7.2 PB (7160000000635280 bytes) of memory",
        ),
        // Pictures.
        row(
            "a picture too large",
            vec![
                "predict".into(),
                "--model".into(),
                p("seed.safetensors"),
                p("huge.png"),
            ],
            1,
            "is 20000 x 20000 pixels, more than the 48000000 pixels",
        ),
        // Options that do nothing or contradict.
        row(
            "an adapter that does not exist",
            with(&["--backend", "gpu", "--adapter", "no-such-gpu"]),
            1,
            "no GPU adapter has a name containing \"no-such-gpu\"; these were found:",
        ),
        row(
            "an adapter for the CPU",
            with(&["--adapter", "llvmpipe"]),
            1,
            "--adapter chooses a GPU: it needs --backend gpu",
        ),
        row(
            "kernels for the CPU",
            with(&["--kernel", "tiled"]),
            1,
            "--kernel chooses GPU kernels: it needs --backend gpu",
        ),
        row(
            "a kernel variant for the CPU",
            with(&["--kernel", "fused-storage"]),
            1,
            "--kernel chooses GPU kernels: it needs --backend gpu",
        ),
        row(
            "a kernel variant that does not exist",
            with(&["--backend", "gpu", "--kernel", "fused-texture"]),
            2,
            "unknown kernel \"fused-texture\": choose a schedule (fused, registers",
        ),
        row(
            "download without downloading",
            vec!["download".into(), "--no-download".into()],
            2,
            "unexpected argument '--no-download'",
        ),
        row(
            "download of another set",
            vec!["download".into(), "--any-idx".into()],
            2,
            "unexpected argument '--any-idx'",
        ),
        row(
            "check of one backend",
            vec![
                "check".into(),
                "--backend".into(),
                "gpu".into(),
                "--data-dir".into(),
                mnist.clone(),
            ],
            1,
            "check runs every backend against the reference: drop --backend",
        ),
        // Cases that already failed cleanly before, kept so that they stay so.
        row(
            "a learning rate of 0",
            with(&["--lr", "0"]),
            2,
            "not a positive finite learning rate",
        ),
        row(
            "layers of the wrong input",
            with(&["--layers", "100,10"]),
            2,
            "input size 784",
        ),
        row(
            "eval of a file that is not a model",
            vec!["eval".into(), "--model".into(), old.clone()],
            1,
            "is not a model file that mlp-cli can load",
        ),
        row(
            "init from a missing file",
            with(&["--init", &p("missing.safetensors")]),
            1,
            "cannot read the model file",
        ),
        // Outputs over inputs and over each other (docs/reliability.md, item 5).
        row(
            "metrics over the --init model",
            with(&[
                "--init",
                &p("seed.safetensors"),
                "--metrics",
                &p("seed.safetensors"),
            ]),
            1,
            "--metrics",
        ),
        row(
            "save over a data file",
            vec![
                "--any-idx".into(),
                "--data-dir".into(),
                p("both"),
                "--save".into(),
                p("both/train-labels-idx1-ubyte.gz"),
            ],
            1,
            "would overwrite the data set",
        ),
        row(
            "save over the checkpoint",
            with(&[
                "--checkpoint",
                &p("ck"),
                "--save",
                &p("ck/../ck/checkpoint.safetensors"),
            ]),
            1,
            "are the same file: give each its own",
        ),
        // Files that are no regular files, read as inputs (item 10).
        row(
            "a FIFO as the model",
            vec!["eval".into(), "--model".into(), fifo.clone()],
            1,
            "it is a FIFO, not a regular file",
        ),
        row(
            "a FIFO as the initial model",
            with(&["--init", &fifo]),
            1,
            "it is a FIFO, not a regular file",
        ),
        row(
            "a device as the model",
            vec!["eval".into(), "--model".into(), "/dev/zero".into()],
            1,
            "it is a device, not a regular file",
        ),
        row(
            "a FIFO as a picture",
            vec![
                "predict".into(),
                "--model".into(),
                p("seed.safetensors"),
                fifo.clone(),
            ],
            1,
            "it is a FIFO, not a regular file",
        ),
        row(
            "a FIFO as the kernel cache",
            with(&["--backend", "gpu", "--kernel-cache", &fifo]),
            1,
            "it is a FIFO, not a regular file",
        ),
        row(
            "a device as the kernel cache",
            with(&["--backend", "gpu", "--kernel-cache", "/dev/zero"]),
            1,
            "it is a device",
        ),
        row(
            "an unwritable kernel cache, before any work",
            with(&["--backend", "gpu", "--kernel-cache", "/proc/kernels.json"]),
            1,
            "the kernel cache: cannot write /proc/kernels.json",
        ),
        row(
            "tune with one kernel",
            vec![
                "tune".into(),
                "--backend".into(),
                "gpu".into(),
                "--kernel".into(),
                "fused-storage".into(),
            ],
            2,
            "tune times every kernel variant",
        ),
        // Checkpoint directories (items 6 and 11).
        row(
            "a checkpoint directory that is a file",
            with(&["--checkpoint", &old]),
            1,
            "it is a file, not a directory",
        ),
        row(
            "resume from nowhere",
            with(&["--resume", &p("nowhere")]),
            1,
            "no such directory",
        ),
        row(
            "resume from a directory without a checkpoint",
            with(&["--resume", &p("no-test")]),
            1,
            "it holds no checkpoint",
        ),
        // Classes (items 1 and 2).
        row(
            "more classes than labels can name",
            with(&["--classes", "20000"]),
            2,
            "more than the 256 classes a label file can hold",
        ),
        // Messages (items 12 and 14).
        row(
            "kmnist missing, without downloading",
            vec![
                "--dataset".into(),
                "kmnist".into(),
                "--no-download".into(),
                "--data-dir".into(),
                p("absent"),
            ],
            1,
            "run `mlp-cli download --dataset kmnist`",
        ),
        row(
            "a Fashion-MNIST model on MNIST",
            vec![
                "eval".into(),
                "--model".into(),
                p("fashion.safetensors"),
                "--data-dir".into(),
                mnist.clone(),
            ],
            1,
            "was trained on Fashion-MNIST, but this data is MNIST",
        ),
        row(
            "holding out every training image",
            with(&["--validation", "60000"]),
            2,
            "leaving none of the",
        ),
        row(
            "momentum without its optimiser",
            with(&["--momentum", "0.5"]),
            1,
            "--momentum belongs to --optimiser momentum",
        ),
    ]
}

#[test]
fn catalogue_of_bad_inputs_fails_cleanly_and_touches_no_file() {
    let fixture = Fixture::new("hostile-catalogue");
    let mut failures = Vec::new();
    for case in cases(&fixture) {
        let before = snapshot(fixture.scratch.path());
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let out = mlp_cli(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().next().unwrap_or("");
        let mut problems = Vec::new();
        if out.status.code() != Some(case.code) {
            problems.push(format!(
                "exit {:?}, expected {}",
                out.status.code(),
                case.code
            ));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".into());
        }
        if !first.contains(case.first_line) {
            problems.push(format!("first line {first:?} lacks {:?}", case.first_line));
        }
        if snapshot(fixture.scratch.path()) != before {
            problems.push("a file in the scratch directory was created, changed or removed".into());
        }
        let verdict = if problems.is_empty() { "ok" } else { "FAIL" };
        println!(
            "{verdict:4} {:<45} exit {:?}  {first}",
            case.name,
            out.status.code()
        );
        if !problems.is_empty() {
            failures.push(format!("{}: {}\n{stderr}", case.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs `args` with stdout a pipe that the reader closes after the first line, as `| head -1`
/// does; returns the exit status and stderr.
fn with_stdout_closed_after_a_line(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(BIN)
        // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
        .env("MLP_KERNEL_CACHE", "off")
        .args(args)
        .env_remove("MNIST_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_closed_stdout_ends_quietly_after_the_model_is_saved() {
    let scratch = Scratch::new("closed-stdout");
    let model = scratch.file("m.safetensors");
    let mnist = mnist();
    let (code, stderr) = with_stdout_closed_after_a_line(&[
        "--epochs",
        "2",
        "--limit",
        "500",
        "--save",
        &model,
        "--data-dir",
        &mnist,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    mlp_core::Model::load(Path::new(&model)).expect("the model was saved whole");
    for args in [
        vec!["--epochs", "30", "--data-dir", &mnist],
        vec!["eval", "--model", &model, "--data-dir", &mnist],
        vec![
            "predict",
            "--model",
            &model,
            "--index",
            "3",
            "--data-dir",
            &mnist,
        ],
        vec!["devices"],
        vec![
            "bench",
            "--epochs",
            "1",
            "--limit",
            "300",
            "--data-dir",
            &mnist,
        ],
    ] {
        let (code, stderr) = with_stdout_closed_after_a_line(&args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

/// No temporary file of an atomic write is left in `dir`.
fn assert_no_partial_files(dir: &Path) {
    let partial: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect();
    assert!(partial.is_empty(), "left behind: {partial:?}");
}

#[test]
fn a_model_saved_through_a_link_replaces_its_file_and_keeps_the_link() {
    let scratch = Scratch::new("save-link");
    let (file, link) = (
        scratch.path().join("m.safetensors"),
        scratch.file("link.safetensors"),
    );
    fs::write(&file, b"the model of an earlier run").unwrap();
    std::os::unix::fs::symlink(&file, &link).unwrap();
    let out = mlp_cli(&[
        "--epochs",
        "1",
        "--limit",
        "200",
        "-q",
        "--save",
        &link,
        "--data-dir",
        &mnist(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    mlp_core::Model::load(&file).expect("the linked file holds the new model");
}

#[test]
fn diverging_after_an_epoch_saves_the_last_finite_parameters() {
    // On 500 images these rates diverge in epoch 2 (found by trying rates): at 0.5 the loss
    // turns NaN; at 0.2 a weight of W1 turns NaN while every loss stays finite (the ReLU maps
    // the NaN sum to 0), which only the parameters themselves show.
    let scratch = Scratch::new("diverge-later");
    let model = scratch.file("m.safetensors");
    let mnist = mnist();
    for (lr, cause) in [("0.5", "the training loss"), ("0.2", "a weight")] {
        let out = mlp_cli(&[
            "--activation",
            "relu",
            "--output",
            "softmax-ce",
            "--weight-init",
            "he",
            "--lr",
            lr,
            "--limit",
            "500",
            "--epochs",
            "6",
            "-q",
            "--save",
            &model,
            "--data-dir",
            &mnist,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{lr}: {stderr}");
        assert!(
            stderr.contains("training diverged in epoch 2") && stderr.contains(cause),
            "{lr}: {stderr}"
        );
        assert!(
            stderr.contains("saved the parameters after epoch 1"),
            "{lr}: {stderr}"
        );
        let saved = mlp_core::Model::load(Path::new(&model)).expect("a finite model");
        assert_eq!(saved.info.epochs, 1);
        fs::remove_file(&model).unwrap();
    }
}

#[test]
fn a_signal_mid_run_leaves_the_old_model_and_no_temporary_file() {
    let scratch = Scratch::new("signal");
    let model = scratch.path().join("m.safetensors");
    let metrics = scratch.path().join("m.jsonl");
    fs::write(&model, b"the model of an earlier run").unwrap();
    let mnist = mnist();
    let mut child = Command::new(BIN)
        // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
        .env("MLP_KERNEL_CACHE", "off")
        .args(["--epochs", "300", "--save", &model.to_string_lossy()])
        .args([
            "--metrics",
            &metrics.to_string_lossy(),
            "--data-dir",
            &mnist,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Mid-run: loading takes about a second, and 300 epochs far longer than the wait.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(130),
        "ended by the handler, not by the signal"
    );
    assert_eq!(fs::read(&model).unwrap(), b"the model of an earlier run");
    assert_no_partial_files(scratch.path());
    // What the metrics file holds, if anything yet, is whole lines of finished epochs.
    if let Ok(text) = fs::read_to_string(&metrics) {
        for line in text.lines() {
            serde_json::from_str::<serde_json::Value>(line).expect("a whole JSON line");
        }
    }
}

#[test]
fn a_full_disk_keeps_the_old_files_and_leaves_no_temporary_file() {
    // `ulimit -f` makes every write past 64 blocks of 512 bytes fail as a full disk would;
    // SIGXFSZ is ignored so that the write returns an error instead of ending the process.
    let scratch = Scratch::new("full-disk");
    let model = scratch.path().join("m.safetensors");
    let plots = scratch.path().join("plots");
    fs::create_dir_all(&plots).unwrap();
    fs::write(&model, b"the model of an earlier run").unwrap();
    fs::write(plots.join("accuracy.png"), b"an earlier picture").unwrap();
    let mnist = mnist();
    for output in [
        vec!["--save".to_string(), model.to_string_lossy().into_owned()],
        vec!["--plots".to_string(), plots.to_string_lossy().into_owned()],
    ] {
        let command = format!(
            "trap '' XFSZ; ulimit -f 64; exec {BIN} --epochs 1 --limit 200 -q --data-dir {mnist} {}",
            output.join(" ")
        );
        let out = Command::new("sh").args(["-c", &command]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{output:?}: {stderr}");
        assert!(stderr.contains("cannot write"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    assert_eq!(fs::read(&model).unwrap(), b"the model of an earlier run");
    assert_eq!(
        fs::read(plots.join("accuracy.png")).unwrap(),
        b"an earlier picture"
    );
    assert_no_partial_files(scratch.path());
    assert_no_partial_files(&plots);
}

#[test]
fn a_decompression_bomb_and_a_huge_sparse_file_cost_no_memory() {
    // Under a 512 MiB address-space limit: inflating the 1 GiB bomb or reading the 3 GB file
    // whole would fail to allocate and abort.
    let fixture = Fixture::new("hostile-bomb");
    for (set, expected) in [
        ("bomb", "holds more than the 800 bytes its header promises"),
        ("sparse", "is 3000000000 bytes but its header promises 800"),
    ] {
        let command = format!(
            "ulimit -v 524288; exec {BIN} --any-idx --epochs 1 --data-dir {}",
            fixture.path(set)
        );
        let out = Command::new("sh").args(["-c", &command]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{set}: {stderr}");
        assert!(stderr.contains(expected), "{set}: {stderr}");
    }
}

#[test]
fn odd_but_valid_data_loads_and_says_which_file_it_read() {
    let fixture = Fixture::new("hostile-odd-data");
    let out = mlp_cli(&[
        "--any-idx",
        "--epochs",
        "1",
        "-q",
        "--data-dir",
        &fixture.path("both"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: read") && stderr.contains("train-labels-idx1-ubyte.gz beside it"),
        "{stderr}"
    );
    let out = mlp_cli(&[
        "--any-idx",
        "--epochs",
        "1",
        "-q",
        "--data-dir",
        &fixture.path("members"),
    ]);
    assert!(
        out.status.success(),
        "two gzip members: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gpu_commands_print_nothing_of_mesa_without_a_runtime_directory() {
    let out = mlp_cli(&["devices"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");
    // Every adapter on every driver stack, the one a run picks marked once.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.matches("<- a run picks this one").count(),
        1,
        "{stdout}"
    );
}

#[test]
fn a_network_whose_thousand_row_evaluation_would_not_fit_still_trains_on_the_gpu() {
    // 784-36000-10: its parameters (113 MB) fit a 128 MiB storage binding, as on lavapipe,
    // but 1,000 rows of its activations (144 MB) do not; evaluation takes fewer rows at once.
    let fixture = Fixture::new("hostile-wide");
    let dir = idx_set(fixture.scratch.path(), "wide", 20, 20);
    let out = mlp_cli(&[
        "--backend",
        "gpu",
        "--any-idx",
        "--layers",
        "784,36000,10",
        "--batch-size",
        "10",
        "--epochs",
        "1",
        "-q",
        "--data-dir",
        &dir.to_string_lossy(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
}

#[test]
fn predict_takes_pictures_and_an_index_together() {
    let fixture = Fixture::new("hostile-predict-both");
    let picture = fixture.scratch.path().join("seven.png");
    let mut img = image::GrayImage::from_pixel(40, 40, image::Luma([255]));
    for y in 5..35 {
        for x in 18..22 {
            img.put_pixel(x, y, image::Luma([0]));
        }
    }
    img.save(&picture).unwrap();
    let out = mlp_cli(&[
        "predict",
        "--model",
        &fixture.path("seed.safetensors"),
        &picture.to_string_lossy(),
        "--index",
        "0",
        "--data-dir",
        &mnist(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("test image 0") && stdout.contains("seven.png"),
        "{stdout}"
    );
}

/// MLP_SIMD names the fast CPU kernels' instruction set: an unknown one is refused with the
/// choices before anything runs; scalar runs and says so in the backend line.
#[test]
fn mlp_simd_is_refused_unless_the_cpu_has_it() {
    let run = |simd: &str| {
        Command::new(BIN)
            .env("MLP_KERNEL_CACHE", "off")
            .env("MLP_SIMD", simd)
            .args(["--epochs", "1", "--limit", "200", "--data-dir", &mnist()])
            .stdin(Stdio::null())
            .output()
            .expect("mlp-cli runs")
    };
    let refused = run("avx9");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("MLP_SIMD") && stderr.contains("scalar"),
        "{stderr}"
    );
    let scalar = run("scalar");
    let stdout = String::from_utf8_lossy(&scalar.stdout);
    assert!(
        scalar.status.success(),
        "{}",
        String::from_utf8_lossy(&scalar.stderr)
    );
    assert!(stdout.contains("f32, scalar)"), "{stdout}");
}

fn mlp_cli_in(dir: &Path, env: &[(&str, Option<&str>)], args: &[&str]) -> Output {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .args(args)
        .env_remove("MNIST_DIR")
        .stdin(Stdio::null());
    for (name, value) in env {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.output().expect("mlp-cli runs")
}

fn succeeded(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    format!("{}{stderr}", String::from_utf8_lossy(&out.stdout))
}

fn failed(out: &Output, code: i32, text: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(text), "{text:?} not in: {stderr}");
}

/// Items 6 and 7: a second run on a checkpoint directory in use is refused at once, naming the
/// first run's pid; a finished run's checkpoint is not replaced by a new run; temporary files
/// that a killed run left are removed when the directory is next opened.
#[test]
fn a_checkpoint_directory_is_one_run_s_and_stale_temporary_files_go() {
    let scratch = Scratch::new("checkpoint-lock");
    let dir = scratch.file("ck");
    let mnist = mnist();
    let run = |more: &[&str]| -> Vec<String> {
        [
            "--epochs",
            "30",
            "--limit",
            "20000",
            "-q",
            "--data-dir",
            &mnist,
        ]
        .iter()
        .chain(more)
        .map(ToString::to_string)
        .collect()
    };
    let mut first = Command::new(BIN)
        .env("MLP_KERNEL_CACHE", "off")
        .args(run(&["--checkpoint", &dir, "--preset", "modern"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lock = scratch.path().join("ck/.lock");
    let started = std::time::Instant::now();
    while fs::read_to_string(&lock).map_or(true, |pid| pid.trim().is_empty()) {
        assert!(started.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = mlp_cli(&strs(&run(&["--checkpoint", &dir, "--preset", "modern"])));
    let pid = first.id().to_string();
    let _ = first.kill();
    first.wait().unwrap();
    failed(
        &second,
        1,
        &format!("another run (pid {pid}) is using this directory"),
    );

    // The first run is gone, its lock with it; it left a checkpoint, and a killed write's file.
    let checkpoint = scratch.path().join("ck/checkpoint.safetensors");
    let started = std::time::Instant::now();
    while !checkpoint.exists() {
        // Killed before its first epoch ended: make the run's checkpoint by a short run.
        let out = mlp_cli(&[
            "--epochs",
            "1",
            "--limit",
            "200",
            "-q",
            "--data-dir",
            &mnist,
            "--checkpoint",
            &dir,
        ]);
        succeeded(&out);
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    let stale = scratch
        .path()
        .join("ck/.checkpoint.safetensors.4000000000-0.partial");
    fs::write(&stale, b"half a checkpoint").unwrap();
    let before = fs::read(&checkpoint).unwrap();
    failed(
        &mlp_cli(&strs(&run(&["--checkpoint", &dir]))),
        1,
        "it holds the checkpoint of another run; give `--resume",
    );
    assert_eq!(fs::read(&checkpoint).unwrap(), before);
    assert!(
        stale.exists(),
        "a refused run removes nothing before the lock is taken"
    );
    // Resuming opens the directory: the stale file goes.
    let out = mlp_cli(&[
        "--epochs",
        "30",
        "--limit",
        "2000",
        "-q",
        "--data-dir",
        &mnist,
        "--resume",
        &dir,
    ]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!text.contains("panicked"), "{text}");
    assert!(!stale.exists(), "the stale temporary file was not removed");
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Items 3, 4 and 15: checkpoints whose fields disagree with the run are refused with a
/// reason, never a panic: a best epoch without its parameters in a run that validates on
/// held-out images, and a run that early stopping had already ended.
#[test]
fn resuming_a_checkpoint_that_cannot_go_on_is_refused() {
    use mlp_core::checkpoint::{self, Checkpoint};
    let scratch = Scratch::new("resume-refused");
    let dir = scratch.file("ck");
    let mnist = mnist();
    let options = [
        "--preset",
        "modern",
        "--epochs",
        "10",
        "--limit",
        "400",
        "--validation",
        "100",
        "--early-stopping",
        "2",
        "-q",
        "--data-dir",
        &mnist,
    ];
    let with = |more: &[&str]| -> Vec<String> {
        options
            .iter()
            .chain(more)
            .map(ToString::to_string)
            .collect()
    };
    succeeded(&mlp_cli(&strs(&with(&["--checkpoint", &dir]))));
    let file = checkpoint::file_in(Path::new(&dir));
    let whole = Checkpoint::load(&file).unwrap();
    assert!(whole.epoch >= 3, "the run wrote {} epochs", whole.epoch);
    let after_three = |best: usize, keep_parameters: bool| {
        let mut edited = whole.clone();
        edited.epoch = 3;
        edited.history.truncate(3);
        let parameters = keep_parameters.then(|| whole.model.parameters.clone());
        edited.best = Some((best, edited.history[best - 1].val_loss, parameters));
        fs::write(&file, edited.to_bytes()).unwrap();
    };
    after_three(2, false);
    failed(
        &mlp_cli(&strs(&with(&["--resume", &dir]))),
        1,
        "names epoch 2 as its best but holds no best.* parameters",
    );
    after_three(1, true);
    failed(
        &mlp_cli(&strs(&with(&["--resume", &dir]))),
        1,
        "early stopping ended that run after epoch 3",
    );
}

/// Item 8: a closed stdout does not end a run whose only output is its checkpoint.
#[test]
fn a_closed_stdout_does_not_end_a_checkpointed_run() {
    let scratch = Scratch::new("closed-stdout-checkpoint");
    let dir = scratch.file("ck");
    let mnist = mnist();
    let (code, stderr) = with_stdout_closed_after_a_line(&[
        "--epochs",
        "3",
        "--limit",
        "300",
        "--data-dir",
        &mnist,
        "--checkpoint",
        &dir,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let file = mlp_core::checkpoint::file_in(Path::new(&dir));
    let checkpoint = mlp_core::checkpoint::Checkpoint::load(&file).unwrap();
    assert_eq!(checkpoint.epoch, 3, "the run ended early");
}

/// Item 2: a model of more than 256 outputs is judged by its real predictions, not by them
/// cut to a byte. This one answers class 265 for every image: none is right.
#[test]
fn a_model_of_many_outputs_is_not_judged_by_a_byte() {
    let scratch = Scratch::new("wide-model");
    let sizes = mlp_core::LayerSizes::new(vec![784, 4, 266], 784, 266).unwrap();
    let mut parameters = mlp_core::Parameters::seed_init(&sizes, 0);
    parameters.layers[1].bias[265] = 100.0;
    let model = mlp_core::Model {
        parameters,
        info: mlp_core::ModelInfo::seed(0),
    };
    let path = scratch.file("wide.safetensors");
    model.save(Path::new(&path)).unwrap();
    let mnist = mnist();
    for backend in ["cpu", "gpu"] {
        let out = mlp_cli(&[
            "eval",
            "--model",
            &path,
            "--backend",
            backend,
            "--data-dir",
            &mnist,
        ]);
        let text = succeeded(&out);
        assert!(
            text.contains("accuracy 0.00% (0 correct)"),
            "{backend}: {text}"
        );
    }
}

/// Item 13: the kernel cache's environment read as the XDG specification and the docs say.
#[test]
fn the_kernel_cache_follows_its_environment() {
    let scratch = Scratch::new("kernel-cache-env");
    let (home, work) = (scratch.path().join("home"), scratch.path().join("work"));
    fs::create_dir_all(&home).unwrap();
    fs::create_dir_all(&work).unwrap();
    let mnist = mnist();
    // The backend's line says why the kernels were not tuned.
    let gpu_run = [
        "--backend",
        "gpu",
        "--epochs",
        "1",
        "--limit",
        "200",
        "--data-dir",
        &mnist,
    ];
    let home_text = home.to_string_lossy().into_owned();
    let off = mlp_cli_in(
        &work,
        &[
            ("MLP_KERNEL_CACHE", Some("OFF")),
            ("HOME", Some(&home_text)),
        ],
        &gpu_run,
    );
    assert!(succeeded(&off).contains("not tuned, MLP_KERNEL_CACHE=off"));
    let nothing = mlp_cli_in(
        &work,
        &[
            ("MLP_KERNEL_CACHE", None),
            ("XDG_CACHE_HOME", None),
            ("HOME", None),
        ],
        &gpu_run,
    );
    assert!(succeeded(&nothing).contains("not tuned, no cache directory (HOME and XDG_CACHE_HOME"));
    // A relative XDG_CACHE_HOME and an empty MLP_KERNEL_CACHE are ignored: the cache goes to
    // HOME's, never under the working directory. An empty cache file is an empty cache.
    let cache = home.join(".cache/mlp/kernels.json");
    fs::create_dir_all(cache.parent().unwrap()).unwrap();
    fs::write(&cache, b"").unwrap();
    let tuned = mlp_cli_in(
        &work,
        &[
            ("MLP_KERNEL_CACHE", Some("")),
            ("XDG_CACHE_HOME", Some("relative")),
            // Mesa keeps its shaders under XDG_CACHE_HOME, relative or not: not ours to judge.
            ("MESA_SHADER_CACHE_DISABLE", Some("true")),
            ("HOME", Some(&home_text)),
        ],
        &[
            "tune",
            "--steps",
            "1",
            "--backend",
            "gpu",
            "--limit",
            "200",
            "--data-dir",
            &mnist,
        ],
    );
    succeeded(&tuned);
    let entries: serde_json::Value =
        serde_json::from_slice(&fs::read(&cache).unwrap()).expect("the cache is JSON");
    assert!(
        entries.as_object().is_some_and(|e| !e.is_empty()),
        "{entries}"
    );
    let written: Vec<_> = fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        written.is_empty(),
        "written to the working directory: {written:?}"
    );
}
