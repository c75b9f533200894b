//! `mlp-cli train --watch` through HTTP, without a browser: several viewers at once, one that
//! connects late and receives the history so far, one that leaves at once without harm, Save
//! now and a drawn digit during the run, Stop ending it as Ctrl-C does; and the watch page
//! refused on an address other machines reach. Every wait is bounded.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;
mod common_watch;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Scratch;

/// A viewer of `/api/events`.
fn viewer(address: &str) -> TcpStream {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /api/events HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    stream
}

/// Reads `stream` until `text` has been seen `times` times, within 60 s; returns what was read.
fn read_until(stream: &mut TcpStream, text: &str, times: usize) -> String {
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 65536];
    while String::from_utf8_lossy(&seen).matches(text).count() < times {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{text:?} x {times} not seen"
        );
        let n = stream.read(&mut buffer).expect("the events go on");
        assert!(n > 0, "the events ended");
        seen.extend_from_slice(&buffer[..n]);
    }
    String::from_utf8_lossy(&seen).into_owned()
}

/// One request with a body; the status line and the body.
fn post(address: &str, path: &str, content_type: &str, body: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(body).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.lines().next().unwrap_or_default().to_string();
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

#[test]
fn viewers_late_and_gone_save_now_and_stop() {
    let scratch = Scratch::new("watch");
    let save = scratch.file("watched.safetensors");
    let (mut run, address) = common_watch::start_run(&["--save", &save]);

    let mut early = viewer(&address);
    let gone = viewer(&address);
    drop(gone);
    let seen = read_until(&mut early, "event: epoch", 2);
    assert!(seen.starts_with("HTTP/1.1 200"), "{seen}");
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(
        seen.contains("event: run") && seen.contains("event: batch"),
        "{seen}"
    );

    // A viewer that connects now receives the history at once, in its first read.
    let mut late = viewer(&address);
    let history = read_until(&mut late, "event: epoch", 2);
    assert!(history.contains("event: run"), "{history}");
    assert!(
        history.contains("\"weights\""),
        "the latest epoch's pictures: {history}"
    );

    let (status, body) = post(&address, "/api/save", "application/json", b"");
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    assert!(body.contains("\"saved\":\"watched.safetensors\""), "{body}");
    let saved = mlp_core::Model::load(Path::new(&save)).expect("a whole model");
    assert!(saved.info.epochs >= 2, "{:?}", saved.info);

    let mut pixels = vec![0u8; 784];
    for row in 4..24 {
        pixels[row * 28 + 14] = 255;
    }
    let json = serde_json::json!({ "pixels": pixels }).to_string();
    let (status, body) = post(
        &address,
        "/api/predict",
        "application/json",
        json.as_bytes(),
    );
    assert!(status.starts_with("HTTP/1.1 200"), "{status} {body}");
    assert!(
        body.contains("\"digit\":") && body.contains("\"epoch\":"),
        "{body}"
    );

    let (status, _) = post(&address, "/api/stop", "application/json", b"");
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let ended = read_until(&mut early, "event: end", 1);
    assert!(ended.contains("stopped from the page"), "{ended}");
    let started = Instant::now();
    let code = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "Stop did not end the run"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(130));
    mlp_core::Model::load(Path::new(&save)).expect("the saved model stays whole");
    let partial = std::fs::read_dir(scratch.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".partial")
        })
        .count();
    assert_eq!(partial, 0);
}

#[test]
fn the_watch_page_listens_on_loopback_only() {
    let out = Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        .env("MLP_KERNEL_CACHE", "off")
        .args(["train", "--epochs", "1", "--watch", "0.0.0.0:0"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("listens on loopback only"), "{stderr}");
}

/// A run that finishes tells its viewers so before the process ends.
#[test]
fn a_finished_run_says_so_to_its_viewers() {
    let data = common::mnist_dir().to_string_lossy().into_owned();
    let mut run = Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
        .env("MLP_KERNEL_CACHE", "off")
        .args(["--epochs", "40", "--limit", "3000", "--data-dir", &data])
        .args(["--watch", "127.0.0.1:0", "--quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("mlp-cli runs");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(run.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let address = first
        .split_whitespace()
        .find_map(|w| w.strip_prefix("http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let mut stream = viewer(&address);
    let seen = read_until(&mut stream, "event: end", 1);
    assert!(seen.contains("\"reason\":\"finished\""), "{seen}");
    assert!(run.wait().unwrap().success());
}
