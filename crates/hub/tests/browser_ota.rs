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

/// The firmware page: an image uploaded through the page's file input is listed with its
/// version, board, size and SHA-256; "Update all cameras of board virtual" updates both
/// virtual cameras, each row's progress bar fills to done, and the rows show the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firmware_page_uploads_an_image_and_rolls_it_out_to_a_board() {
    use sha2::Digest as _;

    const ROLLED: &str = "espcam-sim 8.8.8";
    let Some(b) =
        Browser::launch("firmware_page_uploads_an_image_and_rolls_it_out_to_a_board").await
    else {
        return;
    };
    let hub = Harness::start(&["cam-1", "cam-2"]).await;
    let mut image = espcam_sim::ota::image_header("virtual", ROLLED).into_bytes();
    image.extend((0..2_000_000u32).map(|i| (i % 241) as u8));
    let sha: String = sha2::Sha256::digest(&image)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("espcam-sim-8.8.8.bin");
    std::fs::write(&file, &image).unwrap();

    b.client.goto(&hub.url("/#/firmware")).await.unwrap();
    let running = |id: &str, version: &str| {
        format!(
            "document.querySelector('[data-testid=fw-camera][data-camera={id}] [data-testid=fw-running]')?.textContent === {version:?}"
        )
    };
    b.wait_for(
        "both cameras with their running version",
        &format!(
            "{} && {}",
            running("cam-1", espcam_sim::FIRMWARE),
            running("cam-2", espcam_sim::FIRMWARE)
        ),
    )
    .await;
    b.wait_for(
        "the admin's link to the page",
        "!document.querySelector('[data-testid=nav-firmware]').hasAttribute('data-denied')",
    )
    .await;

    // Upload through the file input; version and board come from the image itself.
    b.client
        .find(Locator::Css("[data-testid=fw-file]"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    b.click(Locator::Css("[data-testid=fw-upload]")).await;
    b.wait_for(
        "the upload's confirmation",
        "document.querySelector('[data-testid=fw-upload-status]').textContent.startsWith('Added espcam-sim 8.8.8 for board virtual')",
    )
    .await;
    let row = b
        .wait_for(
            "the image in the library",
            "(() => { const r = document.querySelector('[data-testid=fw-image]'); return r && [...r.cells].map((c) => c.textContent); })()",
        )
        .await;
    assert_eq!(row[0], ROLLED);
    assert_eq!(row[1], "virtual");
    assert_eq!(row[2], "1.9 MiB", "{row:?}");
    assert_eq!(row[3], sha.as_str(), "the SHA-256 of the bytes uploaded");
    let library: serde_json::Value =
        serde_json::from_slice(&hub.get_bytes("/api/firmware").await).unwrap();
    assert_eq!(
        library[0]["sha256"],
        sha.as_str(),
        "the hub stored what was uploaded"
    );
    assert_eq!(library[0]["size"], image.len());

    // Record what the progress cells show while the rollout runs.
    b.js("window.__fw = [];
         const body = document.querySelector('[data-testid=fw-cameras]');
         new MutationObserver(() => {
           for (const p of body.querySelectorAll('[data-testid=fw-progress]')) {
             window.__fw.push([p.closest('tr').dataset.camera, p.closest('tr').dataset.phase, p.hidden, p.value, p.max]);
           }
         }).observe(body, { childList: true, subtree: true, attributes: true });
         return null;")
        .await;
    b.click(Locator::Css("[data-testid=fw-rollout]")).await;
    b.wait_for(
        "the rollout's answer",
        "document.querySelector('[data-testid=fw-rollout-status]').textContent.includes('2 started')",
    )
    .await;
    b.screenshot("firmware-rollout").await;
    let done = |id: &str| {
        format!(
            "document.querySelector('[data-testid=fw-camera][data-camera={id}]')?.dataset.phase === 'done' && {}",
            running(id, ROLLED)
        )
    };
    b.wait_for(
        "both cameras updated and showing the new version",
        &format!("{} && {}", done("cam-1"), done("cam-2")),
    )
    .await;
    b.screenshot("firmware-done").await;
    let seen = b.js("return window.__fw;").await;
    let seen = seen.as_array().unwrap();
    for cam in ["cam-1", "cam-2"] {
        assert!(
            seen.iter().any(|s| s[0] == cam
                && s[1] != "done"
                && s[2] == false
                && s[4].as_f64() == Some(image.len() as f64)),
            "{cam}'s bar was shown during the update: {seen:?}"
        );
    }
    let bars = b
        .js("return [...document.querySelectorAll('[data-testid=fw-progress]')].map((p) => [p.hidden, p.value === p.max, p.dataset.percent]);")
        .await;
    assert_eq!(
        bars,
        serde_json::json!([[false, true, "100"], [false, true, "100"]])
    );
    for cam in ["cam-1", "cam-2"] {
        assert_eq!(hub.camera_info(cam).await["firmware"], ROLLED);
    }
    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    hub.stop().await;
}

/// A viewer (login on) sees neither the Firmware link nor the page, even when opening
/// `#/firmware` directly, and the page never asks the hub for the library (whose routes
/// refuse viewers anyway: tests/security.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_no_firmware_page() {
    use espcam_auth::{Auth, AuthMode, AuthOptions, Password, Role, UserName};

    let Some(b) = Browser::launch("a_viewer_sees_no_firmware_page").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    Auth::open_with(dir.path(), AuthOptions::for_tests())
        .unwrap()
        .add_user(
            &UserName::new("vic").unwrap(),
            Role::Viewer,
            &Password::new("viewer-password").unwrap(),
            now,
        )
        .unwrap();
    let mut config = espcam_hub::Config::for_tests(dir.path());
    config.auth = AuthMode::On;
    let listeners = espcam_hub::Listeners::bind(&config).await.unwrap();
    let (http, _) = listeners.local_addrs().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(espcam_hub::run(config, listeners, async {
        let _ = stopped.await;
    }));

    b.client
        .goto(&format!("http://{http}/#/firmware"))
        .await
        .unwrap();
    b.wait_for(
        "the login form",
        "document.querySelector('[data-testid=login-user]')",
    )
    .await;
    for (field, value) in [("login-user", "vic"), ("login-password", "viewer-password")] {
        b.client
            .find(Locator::Css(&format!("[data-testid={field}]")))
            .await
            .unwrap()
            .send_keys(value)
            .await
            .unwrap();
    }
    b.click(Locator::Css("[data-testid=login-submit]")).await;
    b.wait_for(
        "the dashboard, as a viewer",
        "document.documentElement.dataset.role === 'viewer'",
    )
    .await;
    let seen = b
        .js("const nav = document.querySelector('[data-testid=nav-firmware]');
             const page = document.querySelector('[data-testid=firmware-view]');
             const asked = performance.getEntriesByType('resource').some((e) => e.name.includes('/api/firmware'));
             return [location.hash, nav.hasAttribute('data-denied'), getComputedStyle(nav).display,
                     page.hasAttribute('data-denied'), getComputedStyle(page).display, asked];")
        .await;
    assert_eq!(
        seen,
        serde_json::json!(["#/firmware", true, "none", true, "none", false])
    );
    b.screenshot("firmware-viewer").await;
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
