//! What the watch tests share: a watched run of the modern preset, long enough to watch.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// `mlp-cli train --preset modern --epochs 60 --limit 30000 --watch 127.0.0.1:0 --quiet
/// MORE`, and the page's address from the run's first line (`127.0.0.1:PORT`).
pub fn start_run(more: &[&str]) -> (Child, String) {
    let data = crate::common::mnist_dir().to_string_lossy().into_owned();
    let mut run = Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        .env("MLP_KERNEL_CACHE", "off")
        .args([
            "train", "--preset", "modern", "--epochs", "60", "--limit", "30000",
        ])
        .args(["--data-dir", &data, "--watch", "127.0.0.1:0", "--quiet"])
        .args(more)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mlp-cli runs");
    let mut first = String::new();
    BufReader::new(run.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let address = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap_or_else(|| panic!("no address on the first line: {first:?}"))
        .trim_end_matches('/')
        .to_string();
    (run, address)
}
