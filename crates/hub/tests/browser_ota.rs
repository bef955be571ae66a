//! The dashboard's firmware update in a real browser (headless Chromium over WebDriver): the
//! camera view shows the running version, offers the images for the camera's board, and
//! after "Update" shows a progress bar that fills, then the new version once the virtual
//! camera has rebooted into it. Without Chromium the test says so and passes, unless
//! `ESPCAM_REQUIRE_BROWSER=1` (CI) makes that a failure. Reuses the `browser/` harness.

// Test code, helpers included: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "browser/cameras.rs"]
mod cameras;
#[path = "browser/driver.rs"]
mod driver;
#[path = "browser/harness.rs"]
mod harness;

use std::time::Duration;

use driver::Browser;
use fantoccini::Locator;
use harness::Harness;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NEW: &str = "espcam-sim 7.7.7";

/// Uploads `image` with `POST /api/firmware`; returns the image's id.
async fn upload(hub: &Harness, image: &[u8]) -> String {
    let url = hub.url("/");
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/firmware HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        image.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(image).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    v["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_shows_progress_and_the_new_version() {
    let Some(b) = Browser::launch("update_shows_progress_and_the_new_version").await else {
        return;
    };
    let hub = Harness::start(&["cam-1"]).await;
    // Large enough that the download takes a few progress reports.
    let mut image = espcam_sim::ota::image_header("virtual", NEW).into_bytes();
    image.extend((0..3_500_000u32).map(|i| (i % 251) as u8));
    let id = upload(&hub, &image).await;

    b.client.goto(&hub.url("/#/camera/cam-1")).await.unwrap();
    b.wait_for(
        "the running version",
        &format!(
            "document.querySelector('[data-testid=ota-version]').textContent === {:?}",
            espcam_sim::FIRMWARE
        ),
    )
    .await;
    b.wait_for(
        "the image in the list",
        &format!("document.querySelector('[data-testid=ota-image]').value === {id:?}"),
    )
    .await;
    // Record every state the progress bar goes through.
    b.js("window.__ota = [];
         const bar = document.querySelector('[data-testid=ota-progress]');
         const root = document.querySelector('#ota');
         const note = () => window.__ota.push([root.dataset.phase, bar.hidden, bar.value, bar.max]);
         new MutationObserver(note).observe(bar, { attributes: true });
         new MutationObserver(note).observe(root, { attributes: true });
         return null;")
        .await;
    b.click(Locator::Css("[data-testid=ota-update]")).await;
    b.wait_for(
        "a visible progress bar",
        "!document.querySelector('[data-testid=ota-progress]').hidden",
    )
    .await;
    b.screenshot("ota-progress").await;
    b.wait_for(
        "the new version after the reboot",
        &format!(
            "document.querySelector('#ota').dataset.phase === 'done' && document.querySelector('[data-testid=ota-version]').textContent === {NEW:?}"
        ),
    )
    .await;
    b.screenshot("ota-done").await;
    let seen = b.js("return window.__ota;").await;
    let seen = seen.as_array().unwrap();
    let visible: Vec<_> = seen.iter().filter(|s| s[1] == false).collect();
    assert!(!visible.is_empty(), "the bar was shown: {seen:?}");
    // Shown while the update was under way, not only at the end.
    assert!(
        visible
            .iter()
            .any(|s| s[0] != "done" && s[3].as_f64() == Some(image.len() as f64)),
        "progress before the end: {seen:?}"
    );
    let bar_done = b
        .js("const p = document.querySelector('[data-testid=ota-progress]'); return [p.hidden, p.value === p.max, p.dataset.percent];")
        .await;
    assert_eq!(bar_done, serde_json::json!([false, true, "100"]));
    let status = b
        .js("return document.querySelector('[data-testid=ota-status]').textContent;")
        .await;
    assert_eq!(status, format!("Updated {NEW}"));
    let info = hub.camera_info("cam-1").await;
    assert_eq!(info["firmware"], NEW);
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    hub.stop().await;
}
