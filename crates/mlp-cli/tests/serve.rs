//! `mlp-cli serve` through its HTTP API, as a client meets it: each endpoint, each bad input
//! (a 4xx with a JSON error naming the problem, and the server goes on), concurrent clients,
//! a bounded load test, and the GPU backend against the reference.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;
mod common_serve;

use std::time::Instant;

use common_serve::{Served, client, encode, model, png_of, request, test_digits};
use serde_json::{Value, json};

fn pixels_json(pixels: &[u8]) -> Vec<u8> {
    json!({ "pixels": pixels }).to_string().into_bytes()
}

fn post_pixels(agent: &ureq::Agent, url: &str, pixels: &[u8]) -> (u16, Value) {
    let body = pixels_json(pixels);
    let url = format!("{url}/api/predict");
    request(agent, "POST", &url, Some("application/json"), Some(&body))
}

#[test]
fn model_endpoint_describes_the_file() {
    let served = Served::start(model(), &[]);
    let (status, info) = request(
        &client(),
        "GET",
        &format!("{}/api/model", served.url),
        None,
        None,
    );
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["layers"], json!([784, 256, 128, 10]));
    assert_eq!(info["activation"], "relu");
    assert_eq!(info["output"], "softmax-ce");
    assert_eq!(info["epochs"], 3);
    assert!(info["accuracy"].as_f64().unwrap() > 0.95, "{info}");
    assert_eq!(info["options"]["preset"], "modern");
    assert_eq!(info["scores"], "the numbers are softmax probabilities");
    // The file's name, never the directories it lies in.
    assert_eq!(info["file"], "modern.safetensors");
}

#[test]
fn page_and_its_files_are_served() {
    let served = Served::start(model(), &[]);
    let agent = client();
    for (path, content_type, words) in [
        ("/", "text/html", "<canvas id=\"board\""),
        ("/page.js", "text/javascript", "/api/predict"),
        ("/page.css", "text/css", "#board"),
    ] {
        let mut answer = agent.get(format!("{}{path}", served.url)).call().unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{path}");
        let kind = answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(kind.starts_with(content_type), "{path}: {kind}");
        assert!(answer.body_mut().read_to_string().unwrap().contains(words));
    }
}

#[test]
fn predict_reads_test_digits_from_json_png_and_jpeg() {
    let served = Served::start(model(), &[]);
    let agent = client();
    let digits = test_digits(20);
    let mut right = 0;
    for (pixels, label) in &digits {
        let (status, answer) = post_pixels(&agent, &served.url, pixels);
        assert_eq!(status, 200, "{answer}");
        // JSON grey values are taken as they are: the image the network saw is the one sent.
        assert_eq!(answer["image"], json!(pixels));
        let scores: Vec<f64> = serde_json::from_value(answer["scores"].clone()).unwrap();
        assert_eq!(scores.len(), 10);
        assert!(
            (scores.iter().sum::<f64>() - 1.0).abs() < 1e-4,
            "{scores:?}"
        );
        let hidden: Vec<Vec<f32>> = serde_json::from_value(answer["hidden"].clone()).unwrap();
        assert_eq!(hidden.iter().map(Vec::len).collect::<Vec<_>>(), [256, 128]);
        assert!(
            answer["reference_difference"].as_f64().unwrap() < 1e-5,
            "{answer}"
        );
        assert!(answer["backend"].as_str().unwrap().starts_with("cpu"));
        right += usize::from(answer["digit"] == json!(label));
    }
    assert!(right >= 18, "{right} of 20 test digits read right");

    let (seven, label) = &digits[0];
    assert_eq!(*label, 7);
    let url = format!("{}/api/predict", served.url);
    let (status, answer) = request(
        &agent,
        "POST",
        &url,
        Some("image/png"),
        Some(&png_of(seven)),
    );
    assert_eq!((status, &answer["digit"]), (200, &json!(7)), "{answer}");
    // Dark ink on white paper, four times the size, as a JPEG: made MNIST-like first.
    let paper: Vec<u8> = (0..112 * 112)
        .map(|i| 255 - seven[(i / 112 / 4) * 28 + (i % 112) / 4])
        .collect();
    let jpeg = encode(&paper, 112, image::ImageFormat::Jpeg);
    let (status, answer) = request(&agent, "POST", &url, Some("image/jpeg"), Some(&jpeg));
    assert_eq!((status, &answer["digit"]), (200, &json!(7)), "{answer}");
    let ink: u64 = serde_json::from_value::<Vec<u64>>(answer["image"].clone())
        .unwrap()
        .iter()
        .sum();
    assert!(ink > 10_000, "the preprocessed image has little ink: {ink}");
}

/// Method, path, content type, body, the status expected and words of its error.
type BadRequest = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

#[test]
fn bad_input_gets_a_4xx_json_error_and_the_server_goes_on() {
    let mut served = Served::start(model(), &[]);
    let agent = client();
    let seven = png_of(&test_digits(1)[0].0);
    let json = Some("application/json");
    let png = Some("image/png");
    // 16.8 megapixels, over the server's limit of 16: refused from its header.
    let huge = encode(&vec![0; 4100 * 4100], 4100, image::ImageFormat::Png);
    let mut pixels_257 = vec![0u32; 784];
    pixels_257[5] = 256;
    let bad_pixel = json!({ "pixels": pixels_257 }).to_string().into_bytes();
    let cases: Vec<BadRequest> = vec![
        (
            "POST",
            "/api/predict",
            png,
            vec![],
            400,
            "the body is empty",
        ),
        (
            "POST",
            "/api/predict",
            png,
            b"hello".to_vec(),
            415,
            "not a PNG or JPEG",
        ),
        (
            "POST",
            "/api/predict",
            png,
            seven[..60].to_vec(),
            415,
            "not a PNG or JPEG",
        ),
        // A body over 5 MiB is answered 413 from its announced length, and the connection
        // closed without reading the rest: serve_hostile.rs sends it by hand, as a client
        // that reads the answer while sending must.
        ("POST", "/api/predict", png, huge, 413, "4100 x 4100 pixels"),
        (
            "POST",
            "/api/predict",
            png,
            png_of(&[255; 784]),
            422,
            "no digit in it",
        ),
        (
            "POST",
            "/api/predict",
            json,
            b"{\"pixels\": [1, 2".to_vec(),
            400,
            "not JSON",
        ),
        (
            "POST",
            "/api/predict",
            json,
            b"{\"grey\": []}".to_vec(),
            400,
            "no \"pixels\" array",
        ),
        (
            "POST",
            "/api/predict",
            json,
            pixels_json(&[0; 783]),
            400,
            "783 pixels, not 784",
        ),
        (
            "POST",
            "/api/predict",
            json,
            bad_pixel,
            400,
            "pixel 5 is 256",
        ),
        (
            "GET",
            "/api/predict",
            None,
            vec![],
            405,
            "answers POST only",
        ),
        (
            "POST",
            "/api/model",
            json,
            b"{}".to_vec(),
            405,
            "answers GET only",
        ),
        ("GET", "/../etc/passwd", None, vec![], 404, "nothing at"),
        (
            "GET",
            "/api/nothing",
            None,
            vec![],
            404,
            "nothing at /api/nothing",
        ),
    ];
    for (method, path, content_type, body, status, words) in cases {
        let url = format!("{}{path}", served.url);
        let sent = (!body.is_empty() || method == "POST").then_some(&body[..]);
        let (got, answer) = request(&agent, method, &url, content_type, sent);
        let message = answer["error"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{method} {path}: {answer}");
        assert!(
            message.contains(words),
            "{method} {path}: {message:?} lacks {words:?}"
        );
        assert!(
            served.is_running(),
            "the server stopped after {method} {path}"
        );
    }
    let (status, answer) = post_pixels(&agent, &served.url, &test_digits(1)[0].0);
    assert_eq!((status, &answer["digit"]), (200, &json!(7)));
}

#[test]
fn concurrent_clients_each_get_the_answer_to_their_own_picture() {
    let served = Served::start(model(), &[]);
    let digits = test_digits(8);
    std::thread::scope(|scope| {
        for (pixels, _) in &digits {
            let url = &served.url;
            scope.spawn(move || {
                let agent = client();
                for _ in 0..25 {
                    let (status, answer) = post_pixels(&agent, url, pixels);
                    assert_eq!(status, 200, "{answer}");
                    assert_eq!(
                        answer["image"],
                        json!(pixels),
                        "an answer to another picture"
                    );
                }
            });
        }
    });
}

/// 2,000 requests from 8 clients at once, each a test digit as JSON: every one answered 200
/// with the right image, and the throughput and latencies printed (`--nocapture`).
#[test]
fn load_of_2000_requests_from_8_clients_finds_no_error() {
    let served = Served::start(model(), &[]);
    let digits = test_digits(8);
    let started = Instant::now();
    let mut latencies: Vec<f64> = std::thread::scope(|scope| {
        let clients: Vec<_> = digits
            .iter()
            .map(|(pixels, _)| {
                let url = &served.url;
                scope.spawn(move || {
                    let agent = client();
                    (0..250)
                        .map(|_| {
                            let sent = Instant::now();
                            let (status, answer) = post_pixels(&agent, url, pixels);
                            assert_eq!(status, 200, "{answer}");
                            assert_eq!(answer["image"], json!(pixels));
                            sent.elapsed().as_secs_f64() * 1e3
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    assert_eq!(latencies.len(), 2000);
    println!(
        "2000 requests from 8 clients in {seconds:.2} s: {:.0} requests/s; latency ms \
         p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2}",
        2000.0 / seconds,
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

#[test]
fn gpu_backend_serves_the_same_reading_as_the_reference() {
    let served = Served::start(model(), &["--backend", "gpu"]);
    let agent = client();
    for (pixels, _) in test_digits(3) {
        let (status, answer) = post_pixels(&agent, &served.url, &pixels);
        assert_eq!(status, 200, "{answer}");
        assert!(
            answer["backend"].as_str().unwrap().starts_with("gpu"),
            "{answer}"
        );
        // The GPU's outputs against the reference functions': the parity tolerance.
        assert!(
            answer["reference_difference"].as_f64().unwrap() < 1e-4,
            "{answer}"
        );
    }
}
