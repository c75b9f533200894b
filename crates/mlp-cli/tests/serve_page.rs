//! The page of `mlp-cli serve` in a real browser: headless Chromium, driven by Playwright
//! (`tests/browser/draw.mjs`), draws a "1" and a "7" with mouse strokes and drops a PNG of an
//! MNIST test digit; the page must read each and show the 28 x 28 image it read. The
//! screenshots stay in the target directory (`serve-page/`) as the test's artefacts.
//!
//! It needs Node.js, Debian's Chromium (or `CHROMIUM`) and `npm ci` run in `tests/browser`;
//! `scripts/test` sets all three up. It fails, never skips, where one is missing.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;
mod common_serve;

use std::path::{Path, PathBuf};
use std::process::Command;

use common_serve::{Served, model, png_of, test_digits};
use serde_json::Value;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Fails with what to install when the browser, Node.js or Playwright is missing.
fn check_browser_tools() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let setup = "run ./scripts/test, which installs them (apt-get install chromium; npm ci in \
                 crates/mlp-cli/tests/browser)";
    assert!(
        Path::new(&chromium).is_file(),
        "no Chromium at {chromium}: {setup}"
    );
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.is_ok_and(|out| out.status.success()),
        "no Node.js (node) on the PATH: {setup}"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").is_dir(),
        "Playwright is not installed in {}: {setup}",
        browser_dir().display()
    );
}

#[test]
fn page_reads_digits_drawn_with_the_mouse_and_a_dropped_picture() {
    check_browser_tools();
    let served = Served::start(model(), &[]);
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-page");
    std::fs::create_dir_all(&shots).unwrap();
    let (pixels, label) = &test_digits(1)[0];
    let dropped = shots.join("dropped-digit.png");
    std::fs::write(&dropped, png_of(pixels)).unwrap();
    let out = Command::new("node")
        .arg(browser_dir().join("draw.mjs"))
        .arg(format!("{}/", served.url))
        .arg(&shots)
        .arg(&dropped)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_str(stdout.trim()).expect("draw.mjs prints JSON");
    println!("{result:#}\nscreenshots in {}", shots.display());
    assert!(
        result["model"].as_str().unwrap().contains("784-256-128-10"),
        "{result}"
    );
    assert!(
        result["options"]
            .as_str()
            .unwrap()
            .contains("preset modern"),
        "{result}"
    );
    for (reading, digit) in [
        ("one", "1"),
        ("seven", "7"),
        ("dropped", &label.to_string()),
    ] {
        let shown = &result[reading];
        assert_eq!(shown["digit"], digit, "{reading}: {shown}");
        assert_eq!(shown["bars"], 10, "{reading}: {shown}");
        assert_eq!(shown["hiddenUnits"], 256 + 128, "{reading}: {shown}");
        // The preview is the 28 x 28 image the network read: ink there, not a blank square.
        assert!(
            shown["previewInk"].as_u64().unwrap() > 5_000,
            "{reading}: {shown}"
        );
        assert!(
            shown["status"]
                .as_str()
                .unwrap()
                .starts_with("computed by cpu")
        );
        assert!(shots.join(format!("{}.png", screenshot(reading))).is_file());
    }
    // The first layer's 256 units, each as a picture of its weights.
    assert_eq!(result["tiles"], 256, "{result}");
    assert_eq!(result["problems"], Value::Array(vec![]), "{result}");
}

fn screenshot(reading: &str) -> String {
    match reading {
        "dropped" => "dropped".into(),
        drawn => format!("drawn-{drawn}"),
    }
}
