//! `mlp-cli train --watch` in a real browser: headless Chromium, driven by Playwright
//! (`tests/browser/watch.mjs`), opens the page during a run of the modern preset and must see
//! the loss curve grow epoch by epoch, the first layer's 256 weight pictures drawn, the
//! confusion matrix, a drawn "1" read by the latest model, and Stop end the run (exit 130, as
//! Ctrl-C), with no page or console error. The screenshots stay in the target directory
//! (`watch-page/`). Like serve_page.rs, it needs Node.js, Chromium and Playwright
//! (`scripts/test` sets them up) and fails where one is missing.

#[path = "../../mlp-core/tests/common/mod.rs"]
mod common;
mod common_watch;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

#[test]
fn watch_page_shows_the_run_learning_and_stops_it() {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").is_dir(),
        "Playwright is not installed in {}: run ./scripts/test",
        browser.display()
    );
    let (mut run, address) = common_watch::start_run(&[]);
    let url = format!("http://{address}/");
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("watch-page");
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(browser.join("watch.mjs"))
        .arg(&url)
        .arg(&shots)
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let started = Instant::now();
    let code = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = run.kill();
            panic!("Stop did not end the run");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        out.status.success(),
        "the browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("watch.mjs prints JSON");
    println!("{seen:#}\nscreenshots in {}", shots.display());
    assert_eq!(code, Some(130), "the run ends as at Ctrl-C");
    let (before, after) = (&seen["first"], &seen["later"]);
    assert!(
        after["epochs"].as_u64() > before["epochs"].as_u64(),
        "{seen}"
    );
    assert!(
        after["lossPoints"].as_u64() > before["lossPoints"].as_u64(),
        "the loss curve did not grow: {seen}"
    );
    assert_eq!(seen["tiles"], 256, "{seen}");
    assert!(
        seen["tileInk"].as_u64().unwrap() > 16,
        "a weight picture is flat: {seen}"
    );
    assert_eq!(seen["confusionRows"], 11, "{seen}");
    assert_eq!(seen["read"], "1", "{seen}");
    assert!(
        seen["state"]
            .as_str()
            .unwrap()
            .contains("stopped from the page"),
        "{seen}"
    );
    assert!(seen["model"].as_str().unwrap().starts_with("cpu"), "{seen}");
    assert!(
        seen["options"].as_str().unwrap().contains("784-256-128-10"),
        "{seen}"
    );
    assert_eq!(seen["problems"], Value::Array(vec![]), "{seen}");
    assert!(shots.join("watch.png").is_file());
}
