//! The downloader against an HTTP server this test starts on 127.0.0.1: a good mirror, a
//! corrupt file, a 404, a body cut off mid-way, and falling back from a bad mirror to a good
//! one. Nothing here reaches the internet.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};
use std::{fs, thread};

use common::{Scratch, mnist_dir};
use mlp_core::data::{self, DataFormat, MNIST_FILES};

enum Reply {
    Body(Vec<u8>),
    /// Promises the full length, sends half, and closes.
    CutOff(Vec<u8>),
}

/// Serves `routes` on a loopback port; anything else is a 404. The server stops by itself
/// after `max_requests` requests or 60 seconds.
fn serve(routes: HashMap<String, Reply>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut served = 0;
        while served < max_requests && Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(5));
                continue;
            };
            served += 1;
            stream.set_nonblocking(false).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap_or(0) > 2 {
                header.clear();
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            let mut stream = stream;
            let _ = match routes.get(&path) {
                Some(Reply::Body(body)) => write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .and_then(|()| stream.write_all(body)),
                Some(Reply::CutOff(body)) => write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )
                .and_then(|()| stream.write_all(&body[..body.len() / 2])),
                None => write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                ),
            };
        }
    });
    format!("http://{address}")
}

fn real_gz(name: &str) -> Vec<u8> {
    fs::read(mnist_dir().join(format!("{name}.gz"))).unwrap()
}

/// A data directory with every file but the test labels, linked from the real copy.
fn dir_without_test_labels(name: &str) -> Scratch {
    let scratch = Scratch::new(name);
    for file in MNIST_FILES
        .iter()
        .filter(|f| f.name != "t10k-labels-idx1-ubyte")
    {
        let gz = format!("{}.gz", file.name);
        std::os::unix::fs::symlink(mnist_dir().join(&gz), scratch.path().join(&gz)).unwrap();
    }
    scratch
}

/// Nothing named like the test labels, complete or partial, may be left in `dir`.
fn assert_nothing_written(dir: &Path) {
    let leftovers: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("t10k-labels"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn good_mirror_fills_an_empty_directory_with_files_that_load() {
    let routes = MNIST_FILES
        .iter()
        .map(|f| {
            (
                format!("/mnist/{}.gz", f.name),
                Reply::Body(real_gz(f.name)),
            )
        })
        .collect();
    let base = serve(routes, 4);
    let scratch = Scratch::new("download-good");
    let target = scratch.path().join("nested/mnist");
    let written =
        data::download_missing(&target, DataFormat::Mnist, &[&format!("{base}/mnist/")]).unwrap();
    assert_eq!(written.len(), 4);
    let mnist = data::load(&target, DataFormat::Mnist).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (60_000, 10_000));
}

#[test]
fn corrupt_file_is_refused_and_not_written() {
    let mut body = real_gz("t10k-labels-idx1-ubyte");
    let last = body.len() - 20;
    body[last] ^= 0xff;
    let base = serve(
        HashMap::from([(
            "/m/t10k-labels-idx1-ubyte.gz".to_string(),
            Reply::Body(body),
        )]),
        1,
    );
    let scratch = dir_without_test_labels("download-corrupt");
    let message =
        data::download_missing(scratch.path(), DataFormat::Mnist, &[&format!("{base}/m/")])
            .unwrap_err()
            .to_string();
    assert!(
        message.contains("t10k-labels-idx1-ubyte") && message.contains(&base),
        "{message}"
    );
    assert_nothing_written(scratch.path());
}

#[test]
fn not_found_is_reported_with_the_url() {
    let base = serve(HashMap::new(), 1);
    let scratch = dir_without_test_labels("download-404");
    let message = data::download_missing(
        scratch.path(),
        DataFormat::Mnist,
        &[&format!("{base}/none/")],
    )
    .unwrap_err()
    .to_string();
    assert!(
        message.contains("404")
            && message.contains(&format!("{base}/none/t10k-labels-idx1-ubyte.gz")),
        "{message}"
    );
    assert_nothing_written(scratch.path());
}

/// A first download that fails (offline, say) leaves no empty data directory behind, which
/// a later look would take for one that holds the data.
#[test]
fn a_failed_first_download_leaves_no_directory() {
    let base = serve(HashMap::new(), 1);
    let scratch = Scratch::new("download-first");
    let target = scratch.path().join("data/mnist");
    let message = data::download_missing(&target, DataFormat::Mnist, &[&format!("{base}/none/")])
        .unwrap_err()
        .to_string();
    assert!(message.contains("404"), "{message}");
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn body_cut_off_midway_leaves_no_file() {
    let body = real_gz("t10k-labels-idx1-ubyte");
    let base = serve(
        HashMap::from([(
            "/cut/t10k-labels-idx1-ubyte.gz".to_string(),
            Reply::CutOff(body),
        )]),
        1,
    );
    let scratch = dir_without_test_labels("download-cut");
    let message = data::download_missing(
        scratch.path(),
        DataFormat::Mnist,
        &[&format!("{base}/cut/")],
    )
    .unwrap_err()
    .to_string();
    assert!(message.contains("t10k-labels-idx1-ubyte"), "{message}");
    assert_nothing_written(scratch.path());
}

#[test]
fn a_failing_mirror_falls_back_to_the_next() {
    let body = real_gz("t10k-labels-idx1-ubyte");
    let base = serve(
        HashMap::from([(
            "/good/t10k-labels-idx1-ubyte.gz".to_string(),
            Reply::Body(body),
        )]),
        2,
    );
    let scratch = dir_without_test_labels("download-fallback");
    let mirrors = [format!("{base}/missing/"), format!("{base}/good/")];
    let mirrors: Vec<&str> = mirrors.iter().map(String::as_str).collect();
    let written = data::download_missing(scratch.path(), DataFormat::Mnist, &mirrors).unwrap();
    assert_eq!(written, vec!["t10k-labels-idx1-ubyte"]);
    assert!(data::load(scratch.path(), DataFormat::Mnist).is_ok());
}

/// A zip laid out as NIST's EMNIST zip (`gzip/emnist-<split>-...-ubyte.gz`), holding a small
/// set of the split `split` made from MNIST's test files, and its MD5.
fn emnist_zip(split: &str) -> (Vec<u8>, String) {
    use md5::{Digest, Md5};
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (kind, source) in [
        ("train-images-idx3-ubyte", "t10k-images-idx3-ubyte"),
        ("train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"),
        ("test-images-idx3-ubyte", "t10k-images-idx3-ubyte"),
        ("test-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"),
    ] {
        writer
            .start_file(format!("gzip/emnist-{split}-{kind}.gz"), options)
            .unwrap();
        writer.write_all(&real_gz(source)).unwrap();
    }
    let bytes = writer.finish().unwrap().into_inner();
    let md5 = Md5::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (bytes, md5)
}

/// EMNIST comes as one zip: it is fetched, checked against its MD5, and the split's four
/// files are taken out of it and load; a zip of another MD5 is refused, and nothing written.
#[test]
fn emnist_is_taken_out_of_a_zip_checked_by_its_md5() {
    let (zip, md5) = emnist_zip("balanced");
    let routes = HashMap::from([("/gzip.zip".to_string(), Reply::Body(zip))]);
    let base = serve(routes, 2);
    let url = format!("{base}/gzip.zip");
    let scratch = Scratch::new("emnist-zip");
    let format = DataFormat::EmnistBalanced;
    let wrong = "0".repeat(32);
    let err = data::download_emnist(scratch.path(), format, &[&url], &wrong)
        .unwrap_err()
        .to_string();
    assert!(err.contains("MD5") && err.contains(&wrong), "{err}");
    assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0);
    let written = data::download_emnist(scratch.path(), format, &[&url], &md5).unwrap();
    assert_eq!(written.len(), 4, "{written:?}");
    let set = data::load(scratch.path(), format).unwrap();
    assert_eq!((set.train.len(), set.test.len()), (10_000, 10_000));
}
