//! What the serve tests share: a model trained once per test binary, a running `mlp-cli serve`
//! that is stopped when dropped, MNIST test digits, and an HTTP client that returns 4xx
//! answers instead of failing on them.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::{Scratch, mnist_dir};

/// The modern preset, 3 epochs (about 97.9 % on the test set): a model that reads drawn
/// digits, trained once for every test of a binary.
pub fn model() -> &'static str {
    static MODEL: OnceLock<(Scratch, String)> = OnceLock::new();
    let (_, path) = MODEL.get_or_init(|| {
        let scratch = Scratch::new("serve-model");
        let path = scratch.file("modern.safetensors");
        let data = mnist_dir().to_string_lossy().into_owned();
        let out = Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
            // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
            .env("MLP_KERNEL_CACHE", "off")
            .args(["train", "--preset", "modern", "--epochs", "3"])
            .args(["--data-dir", &data, "--no-download", "--save", &path])
            .output()
            .expect("mlp-cli runs");
        assert!(
            out.status.success(),
            "training the model failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (scratch, path)
    });
    path
}

/// A running `mlp-cli serve` on a free loopback port; killed when dropped.
pub struct Served {
    child: Child,
    pub url: String,
}

impl Served {
    /// Starts `mlp-cli serve --model MODEL --addr 127.0.0.1:0 ARGS` and reads the address from
    /// its first line.
    pub fn start(model: &str, args: &[&str]) -> Self {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_mlp-cli")), model, args)
    }

    /// [`Served::start`] in a process that may hold at most `descriptors` open files.
    pub fn start_with_limit(model: &str, descriptors: u32) -> Self {
        let mut shell = Command::new("sh");
        shell.args([
            "-c",
            &format!("ulimit -n {descriptors} && exec \"$0\" \"$@\""),
            env!("CARGO_BIN_EXE_mlp-cli"),
        ]);
        Self::spawn(shell, model, &[])
    }

    fn spawn(mut command: Command, model: &str, args: &[&str]) -> Self {
        let mut child = command
            // No kernel tuning: the adapter's default kernels, and nothing written to ~/.cache.
            .env("MLP_KERNEL_CACHE", "off")
            .args(["serve", "--model", model, "--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("mlp-cli runs");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("stdout is piped");
        BufReader::new(stdout).read_line(&mut first).unwrap();
        let url = first
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap_or_else(|| panic!("no address on the first line: {first:?}"))
            .trim_end_matches('/')
            .to_string();
        assert!(
            first.starts_with("serving http://127.0.0.1:"),
            "first line: {first:?}"
        );
        Self { child, url }
    }

    /// The server's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_memory_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server runs");
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("Linux reports VmHWM");
        let kib: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024.0
    }

    /// Whether the server is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that hands back every answer, 4xx and 5xx included.
pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .into()
}

/// The status and JSON body of one request; `body` None sends none.
pub fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Value) {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(content_type) = content_type {
        builder = builder.header("Content-Type", content_type);
    }
    let request = builder.body(body.unwrap_or_default().to_vec()).unwrap();
    let mut response = agent
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap();
    let value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url}: answer not JSON ({e}): {text}"));
    (status, value)
}

/// The first `count` MNIST test images (28 x 28 bytes each) and their labels.
pub fn test_digits(count: usize) -> Vec<(Vec<u8>, u8)> {
    let dir = mnist_dir();
    let images = idx_bytes(&dir, "t10k-images-idx3-ubyte");
    let labels = idx_bytes(&dir, "t10k-labels-idx1-ubyte");
    (0..count)
        .map(|i| {
            (
                images[16 + i * 784..16 + (i + 1) * 784].to_vec(),
                labels[8 + i],
            )
        })
        .collect()
}

fn idx_bytes(dir: &Path, name: &str) -> Vec<u8> {
    let gz: PathBuf = dir.join(format!("{name}.gz"));
    let mut bytes = Vec::new();
    if gz.is_file() {
        flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap())
            .read_to_end(&mut bytes)
            .unwrap();
    } else {
        bytes = std::fs::read(dir.join(name)).unwrap();
    }
    bytes
}

/// `pixels` (28 x 28) as a PNG, light ink on black as MNIST stores it.
pub fn png_of(pixels: &[u8]) -> Vec<u8> {
    encode(pixels, 28, image::ImageFormat::Png)
}

/// A grey picture of `side` x `side` pixels as `format`.
pub fn encode(pixels: &[u8], side: u32, format: image::ImageFormat) -> Vec<u8> {
    let picture = image::GrayImage::from_raw(side, side, pixels.to_vec()).unwrap();
    let mut bytes = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageLuma8(picture)
        .write_to(&mut bytes, format)
        .unwrap();
    bytes.into_inner()
}
