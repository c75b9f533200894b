//! `mlp-cli serve` against hostile clients on the same machine, through raw sockets: each case
//! of issue 24 that once killed or stalled the server, then a probe that must be answered
//! within 3 s. Every wait is bounded; no test waits on the server's good will.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;
#[path = "common_serve/mod.rs"]
mod common_serve;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common_serve::{Served, client, model, request};

/// The server's address, `127.0.0.1:PORT`, from its URL.
fn address(served: &Served) -> String {
    served.url.trim_start_matches("http://").to_string()
}

/// A connection that gives up on any read or write after 15 s.
fn connect(served: &Served) -> TcpStream {
    let stream = TcpStream::connect(address(served)).expect("the server accepts");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Sends `head` (request line and headers, ending in a blank line) and reads until the server
/// closes the connection or 15 s pass; returns what came back.
fn exchange(served: &Served, head: &str) -> String {
    let mut stream = connect(served);
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// `GET /api/model` answered within 3 s.
fn assert_answers_quickly(served: &mut Served) {
    assert!(served.is_running(), "the server has ended");
    let started = Instant::now();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(3)))
        .build()
        .into();
    let (status, _) = request(
        &agent,
        "GET",
        &format!("{}/api/model", served.url),
        None,
        None,
    );
    assert_eq!(status, 200);
    println!(
        "probe answered in {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn announced_lengths_are_never_allocated() {
    let mut served = Served::start(model(), &[]);
    let host = address(&served);
    for (route, length, status) in [
        ("POST /api/predict", "1000000000000000", "413"),
        ("GET /", "1000000000000000", "200"),
        ("POST /api/predict", "6291456", "413"),
        ("POST /api/predict", "18446744073709551615", "4"),
        ("GET /", "18446744073709551615", "4"),
    ] {
        let answer = exchange(
            &served,
            &format!("{route} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {length}\r\n\r\n"),
        );
        let first = answer.lines().next().unwrap_or_default();
        println!("{route} with Content-Length {length}: {first}");
        assert!(
            first.starts_with(&format!("HTTP/1.1 {status}")),
            "{route} {length}: {answer}"
        );
        assert_answers_quickly(&mut served);
    }
}

#[test]
fn eight_stalled_clients_and_more_do_not_stop_a_ninth() {
    let mut served = Served::start(model(), &[]);
    let host = address(&served);
    let stalls = [
        // A body that never finishes, by length and chunked.
        format!("POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5000\r\n\r\nabc"),
        format!(
            "POST /api/predict HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"
        ),
        // Expect: 100-continue, and no body.
        format!(
            "POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"
        ),
        // Headers that never end.
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nX-Slow: "),
        // Pipelined requests whose answers are never read.
        format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").repeat(200),
        // A body over 5 MiB, sent without reading the answer.
        format!("POST /api/predict HTTP/1.1\r\nHost: {host}\r\nContent-Length: 6000000\r\n\r\n"),
        // Nothing at all.
        String::new(),
        String::new(),
    ];
    let mut held = Vec::new();
    for stall in &stalls {
        let mut stream = connect(&served);
        stream.write_all(stall.as_bytes()).unwrap();
        held.push(stream);
    }
    for _ in 0..3 {
        assert_answers_quickly(&mut served);
    }
    drop(held);
}

#[test]
fn a_stalled_header_is_cut_off_after_its_timeout() {
    let served = Served::start(model(), &[]);
    let mut stream = connect(&served);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    println!(
        "a stalled header was cut off after {:.1} s",
        waited.as_secs_f64()
    );
    assert!(waited < Duration::from_secs(12), "held for {waited:?}");
}

#[test]
fn headers_over_16_kib_are_refused_while_read() {
    let mut served = Served::start(model(), &[]);
    let host = address(&served);
    let filler = format!("X-Filler: {}\r\n", "a".repeat(1000)).repeat(100);
    let mut stream = connect(&served);
    let head = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{filler}\r\n");
    // The server may close while this is still being written: what it answered counts.
    let _ = stream.write_all(head.as_bytes());
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_answers_quickly(&mut served);
}

#[test]
fn another_site_s_host_name_is_refused() {
    let mut served = Served::start(model(), &[]);
    let answer = exchange(
        &served,
        "GET /api/model HTTP/1.1\r\nHost: attacker.example:8080\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 421"), "{answer}");
    assert!(
        answer.contains("not to \\\"attacker.example:8080\\\""),
        "{answer}"
    );
    let port = address(&served).rsplit(':').next().unwrap().to_string();
    for name in ["localhost", "127.0.0.1", "[::1]"] {
        let answer = exchange(
            &served,
            &format!("GET /api/model HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n"),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
    }
    assert_answers_quickly(&mut served);
}

#[test]
fn counts_and_addresses_past_their_bounds_are_refused() {
    for (args, words) in [
        (vec!["--threads", "100000"], "at most 64"),
        (vec!["--addr", "0.0.0.0:0"], "give --allow-remote"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mlp-cli"))
            .env("MLP_KERNEL_CACHE", "off")
            .args(["serve", "--model", model()])
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
    }
}

/// Out of file descriptors, the server stops accepting for a while and then accepts again:
/// with a limit of 64 descriptors, 100 idle connections are opened (those past the limit wait
/// in the backlog or are refused), then closed, and the probe is answered.
#[test]
fn running_out_of_file_descriptors_is_survived() {
    let limit = Command::new("sh").args(["-c", "ulimit -n 64"]).status();
    assert!(
        limit.expect("sh runs").success(),
        "ulimit -n 64 is refused here"
    );
    let mut served = Served::start_with_limit(model(), 64);
    let mut idle = Vec::new();
    for _ in 0..100 {
        if let Ok(stream) =
            TcpStream::connect_timeout(&address(&served).parse().unwrap(), Duration::from_secs(2))
        {
            idle.push(stream);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(idle);
    // The descriptors come back as the server sees the closes.
    std::thread::sleep(Duration::from_millis(500));
    assert_answers_quickly(&mut served);
    let page = client().get(format!("{}/", served.url)).call().unwrap();
    assert_eq!(page.status(), 200);
}
