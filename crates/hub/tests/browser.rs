//! The dashboard, checked in a real browser (headless Chromium over WebDriver) as a user
//! would: a hub with virtual cameras on loopback, the page at `/`, and assertions on what the
//! page shows — live frames at the right size, acknowledged settings, saved snapshots on disk,
//! offline cameras, the narrow phone layout, and no errors in the browser console.
//!
//! One browser runs the scenarios in sequence (two cores, a CI time budget); each scenario
//! saves a screenshot to `target/browser-screenshots/<scenario>.png`. Without Chromium the test
//! says so and passes, unless `ESPCAM_REQUIRE_BROWSER=1` (CI) makes that a failure.

// Test code, helpers included: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

#[path = "browser/cameras.rs"]
mod cameras;
#[path = "browser/driver.rs"]
mod driver;
#[path = "browser/harness.rs"]
mod harness;

use driver::Browser;
use fantoccini::Locator;
use fantoccini::key::Key;
use harness::Harness;
use serde_json::Value;

fn int(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {v}"))
}

/// The live canvas' `data-*` attribute `name` as an integer (0 when absent).
async fn live_attr(b: &Browser, name: &str) -> i64 {
    let v = b
        .js(&format!(
            "return document.querySelector('#live').dataset.{name} ?? '0';"
        ))
        .await;
    int(&v)
}

async fn toasts(b: &Browser) -> Vec<String> {
    let v = b
        .js("return [...document.querySelectorAll('[data-testid=toast]')].map(t => t.dataset.kind + ': ' + t.querySelector('p').textContent);")
        .await;
    serde_json::from_value(v).unwrap()
}

/// Closes every notification with its × button, so a screenshot shows what is under them.
async fn dismiss_toasts(b: &Browser) {
    b.js("document.querySelectorAll('[data-testid=toast] button').forEach(x => x.click()); return null;")
        .await;
}

async fn assert_no_console_errors(b: &Browser, scenario: &str) {
    assert_no_console_errors_but(b, scenario, &[]).await;
}

/// Like [`assert_no_console_errors`], allowing messages that contain one of `expected`.
async fn assert_no_console_errors_but(b: &Browser, scenario: &str, expected: &[&str]) {
    let mut errors = b.console_errors().await;
    errors.retain(|e| !expected.iter().any(|x| e.contains(x)));
    assert!(
        errors.is_empty(),
        "{scenario}: browser console errors:\n{}",
        errors.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_a_real_browser() {
    let Some(b) = Browser::launch("dashboard_in_a_real_browser").await else {
        return;
    };
    let mut hub = Harness::start(&["cam-1", "cam-2"]).await;

    grid_shows_every_camera_live(&b, &hub).await;
    assert_no_console_errors(&b, "grid").await;
    new_camera_appears_without_reload(&b, &mut hub).await;
    live_view_shows_frames_at_the_camera_resolution(&b, &hub).await;
    resolution_change_resizes_the_image_and_shows_the_ack(&b, &hub).await;
    other_controls_show_acknowledged_values(&b).await;
    assert_no_console_errors(&b, "controls").await;
    timed_out_command_shows_why(&b, &hub).await;
    // The browser logs the 504 answer itself; the page showed it to the user.
    assert_no_console_errors_but(
        &b,
        "timed-out command",
        &["/settings - Failed to load resource: the server responded with a status of 504"],
    )
    .await;
    snapshot_is_saved_listed_opened_and_deleted(&b, &hub).await;
    live_view_with_controls_and_charts(&b).await;
    assert_no_console_errors(&b, "camera view").await;
    stopped_camera_shows_offline_with_a_notification(&b, &mut hub).await;
    phone_layout_fits_375_px(&b).await;
    assert_no_console_errors(&b, "offline and phone layout").await;
    // Last: stopping the hub makes the browser log failed reconnects, which are expected.
    lost_hub_connection_is_reported_and_recovered(&b, hub).await;
}

async fn grid_shows_every_camera_live(b: &Browser, hub: &Harness) {
    b.client.goto(&hub.url("/")).await.unwrap();
    b.wait_for(
        "hub connection in the header",
        "document.querySelector('[data-testid=hub-status]').dataset.state === 'connected'",
    )
    .await;
    b.wait_for(
        "two online tiles",
        "document.querySelectorAll('[data-testid=tile][data-online=true]').length === 2",
    )
    .await;
    // Each tile's picture is live: its frame counter rises.
    for cam in ["cam-1", "cam-2"] {
        let sel =
            format!("document.querySelector('[data-camera={cam}] canvas').dataset.frameCount");
        let first = int(&b
            .wait_for(
                &format!("{cam} tile frames"),
                &format!("+({sel} ?? 0) >= 2 && {sel}"),
            )
            .await);
        b.wait_for(
            &format!("{cam} tile frame counter rising"),
            &format!("+({sel}) > {first}"),
        )
        .await;
    }
    let count = b
        .js("return document.querySelector('#camera-count').textContent;")
        .await;
    assert_eq!(count, "2 cameras · 2 online");
    b.screenshot("grid").await;
}

async fn new_camera_appears_without_reload(b: &Browser, hub: &mut Harness) {
    hub.start_camera("cam-3").await;
    b.wait_for(
        "cam-3 tile appears without a reload",
        "document.querySelector('[data-testid=tile][data-camera=cam-3][data-online=true]')",
    )
    .await;
    b.wait_for(
        "online notification for cam-3",
        "[...document.querySelectorAll('[data-testid=toast]')].some(t => t.textContent.includes('cam-3 is online'))",
    )
    .await;
    b.screenshot("grid-new-camera").await;
}

async fn live_view_shows_frames_at_the_camera_resolution(b: &Browser, hub: &Harness) {
    // Open the camera from the keyboard: focus its tile and press Enter.
    b.js("document.querySelector('[data-camera=cam-1] a').focus(); return null;")
        .await;
    b.client
        .active_element()
        .await
        .unwrap()
        .send_keys(&Key::Enter.to_string())
        .await
        .unwrap();
    b.wait_for(
        "camera view",
        "location.hash === '#/camera/cam-1' && !document.querySelector('#camera-view').hidden",
    )
    .await;
    b.wait_for(
        "first frames",
        "+document.querySelector('#live').dataset.frameCount >= 3",
    )
    .await;
    let first = live_attr(b, "frameCount").await;
    b.wait_for(
        "frame counter rising",
        &format!("+document.querySelector('#live').dataset.frameCount > {first} + 3"),
    )
    .await;

    let info = hub.camera_info("cam-1").await;
    let (w, h) = (int(&info["width"]), int(&info["height"]));
    assert!(w > 0 && h > 0, "{info}");
    assert_eq!(
        (live_attr(b, "width").await, live_attr(b, "height").await),
        (w, h)
    );
    // The visible stats: resolution, fps and a latency figure from the frame metadata.
    b.wait_for(
        "stats line",
        "document.querySelector('#stat-fps').textContent !== '–'",
    )
    .await;
    let res = b
        .js("return document.querySelector('#stat-res').textContent;")
        .await;
    assert_eq!(res, format!("{w}×{h}"));
    let latency = b
        .wait_for(
            "latency shown",
            "/^-?\\d+ ms$/.test(document.querySelector('#stat-latency').textContent) && document.querySelector('#stat-latency').textContent",
        )
        .await;
    let ms: i64 = latency
        .as_str()
        .unwrap()
        .trim_end_matches(" ms")
        .parse()
        .unwrap();
    assert!(
        (0..5000).contains(&ms),
        "capture-to-display latency {ms} ms"
    );
    b.screenshot("live-view").await;
}

async fn resolution_change_resizes_the_image_and_shows_the_ack(b: &Browser, hub: &Harness) {
    let select = b.client.find(Locator::Id("ctl-resolution")).await.unwrap();
    let acked = b
        .wait_for(
            "resolution control shows the camera's value",
            "document.querySelector('#ctl-resolution').dataset.acked",
        )
        .await;
    assert_eq!(acked, "6", "the virtual camera starts at VGA");
    // QVGA, 320×240: picked by name, as a user sees it.
    let label = b
        .js("return document.querySelector('#ctl-resolution option[value=\"3\"]').textContent;")
        .await;
    assert_eq!(label, "QVGA — 320×240");
    select.select_by_value("3").await.unwrap();
    b.wait_for(
        "resolution acknowledged",
        "document.querySelector('#ctl-resolution').dataset.acked === '3' && document.querySelector('#ctl-resolution').dataset.state === 'ok'",
    )
    .await;
    b.wait_for(
        "image resized to 320×240",
        "document.querySelector('#live').dataset.width === '320' && document.querySelector('#live').dataset.height === '240'",
    )
    .await;
    let info = hub.camera_info("cam-1").await;
    assert_eq!(info["settings"]["resolution"], 3, "{info}");
    assert!(
        toasts(b)
            .await
            .iter()
            .any(|t| t == "success: cam-1: resolution set to QVGA"),
        "{:?}",
        toasts(b).await
    );
    b.screenshot("resolution-changed").await;
}

async fn other_controls_show_acknowledged_values(b: &Browser) {
    // Quality: keyboard on the slider (one step down), sent once the user settles.
    let before = int(&b
        .js("return document.querySelector('#ctl-quality').dataset.acked;")
        .await);
    let slider = b.client.find(Locator::Id("ctl-quality")).await.unwrap();
    slider.send_keys(&Key::Left.to_string()).await.unwrap();
    b.wait_for(
        "quality acknowledged one lower",
        &format!(
            "document.querySelector('#ctl-quality').dataset.acked === '{}'",
            before - 1
        ),
    )
    .await;
    // vflip: a switch; the ack turns it on.
    b.click(Locator::Css("label[for=ctl-vflip]")).await;
    b.wait_for(
        "vflip acknowledged",
        "document.querySelector('#ctl-vflip').dataset.acked === '1' && document.querySelector('#ctl-vflip').checked",
    )
    .await;
    b.click(Locator::Id("ctl-vflip")).await;
    b.wait_for(
        "vflip off again",
        "document.querySelector('#ctl-vflip').dataset.acked === '0'",
    )
    .await;
}

async fn timed_out_command_shows_why(b: &Browser, hub: &Harness) {
    let acked = b
        .js("return document.querySelector('#ctl-brightness').dataset.acked;")
        .await;
    assert_eq!(acked, "0");
    // A camera that stops answering (busy, bad Wi-Fi): the hub gives up after its ack timeout.
    hub.stall_camera("cam-1", harness::ACK_TIMEOUT * 3);
    let slider = b.client.find(Locator::Id("ctl-brightness")).await.unwrap();
    slider.send_keys(&Key::Right.to_string()).await.unwrap();
    b.wait_for(
        "brightness marked failed",
        "document.querySelector('#ctl-brightness').dataset.state === 'error'",
    )
    .await;
    // The control went back to what the camera last acknowledged, and a toast says why.
    let shown = b.js("return [document.querySelector('#ctl-brightness').value, document.querySelector('#out-brightness').value];").await;
    assert_eq!(shown, serde_json::json!(["0", "0"]));
    let toast = b
        .wait_for(
            "error notification",
            "[...document.querySelectorAll('[data-testid=toast][data-kind=error] p')].map(p => p.textContent).find(t => t.includes('could not set brightness'))",
        )
        .await;
    assert!(
        toast
            .as_str()
            .unwrap()
            .contains("did not acknowledge brightness 1 within 1500 ms"),
        "{toast}"
    );
    b.screenshot("command-timed-out").await;
    // When the camera wakes up it applies the late command; the control follows the camera.
    b.wait_for(
        "late ack shown",
        "document.querySelector('#ctl-brightness').dataset.acked === '1' && document.querySelector('#out-brightness').value === '+1'",
    )
    .await;
}

async fn snapshot_is_saved_listed_opened_and_deleted(b: &Browser, hub: &Harness) {
    let count = "document.querySelectorAll('[data-testid=snapshot]').length";
    let before = int(&b.js(&format!("return {count};")).await);
    // The keyboard shortcut, with focus on the page rather than a control.
    b.js("document.activeElement.blur(); return null;").await;
    b.client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("s")
        .await
        .unwrap();
    b.wait_for(
        "snapshot in the gallery",
        &format!("{count} === {}", before + 1),
    )
    .await;
    let id = int(&b
        .js("return document.querySelector('[data-testid=snapshot]').dataset.snapshotId;")
        .await);

    // The file exists on disk and is the JPEG the hub serves, at the current resolution.
    let served = hub.get_bytes(&format!("/api/snapshots/{id}.jpg")).await;
    let on_disk = hub.find_file_with(&served);
    assert!(
        on_disk.is_some(),
        "snapshot {id} not found under the data directory"
    );
    let mut dec = jpeg_decoder::Decoder::new(&served[..]);
    dec.decode().unwrap();
    let info = dec.info().unwrap();
    assert_eq!((info.width, info.height), (320, 240));

    // Open it full size.
    b.click(Locator::Css("[data-testid=snapshot] button")).await;
    b.wait_for(
        "full-size snapshot",
        "document.querySelector('#snapshot-dialog').open && document.querySelector('#snapshot-full').naturalWidth === 320",
    )
    .await;
    let href = b
        .js("return document.querySelector('#snapshot-download').getAttribute('href');")
        .await;
    assert_eq!(href, format!("/api/snapshots/{id}.jpg"));
    b.screenshot("snapshot-open").await;
    // Delete it: gone from the gallery and from the hub.
    b.click(Locator::Id("snapshot-delete")).await;
    b.wait_for(
        "snapshot removed",
        &format!("{count} === {before} && !document.querySelector('#snapshot-dialog').open"),
    )
    .await;
    assert_eq!(hub.status(&format!("/api/snapshots/{id}.jpg")).await, 404);
    assert!(
        hub.find_file_with(&served).is_none(),
        "deleted snapshot still on disk"
    );

    // Keep one in the gallery for the screenshots.
    b.click(Locator::Id("snapshot-btn")).await;
    b.wait_for("second snapshot", &format!("{count} === {}", before + 1))
        .await;

    // A snapshot taken by another client (here a bare REST call, as curl would) shows up in
    // the open gallery without a reload.
    // (State changes from a browser must say JSON: the hub refuses form-like posts.)
    b.js("fetch(`/api/cameras/${location.hash.split('/')[2]}/snapshots`, { method: 'POST', headers: { 'content-type': 'application/json' } });")
        .await;
    b.wait_for(
        "snapshot from another client",
        &format!("{count} === {}", before + 2),
    )
    .await;
}

async fn live_view_with_controls_and_charts(b: &Browser) {
    // A few telemetry samples so the charts have lines.
    b.wait_for(
        "telemetry values",
        "document.querySelector('[data-metric=fps] .metric-value').textContent !== '–' && document.querySelector('[data-metric=heap] .metric-value').textContent !== '–'",
    )
    .await;
    b.wait_for(
        "charts drawn",
        "(() => { const c = document.querySelector('[data-metric=fps] canvas'); const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; })()",
    )
    .await;
    // The whole page in one picture: live view, controls, charts and gallery.
    dismiss_toasts(b).await;
    // The picture's height follows the viewport's, so measure again after growing it.
    for _ in 0..3 {
        let height = int(&b.js("return document.documentElement.scrollHeight;").await);
        b.emulate_viewport(Some((1440, height as u32, false))).await;
        b.wait_for("tall viewport", &format!("window.innerHeight >= {height}"))
            .await;
    }
    // Live figures, not the tail of the stall scenario: frames flowing and latency known.
    b.wait_for(
        "stats line",
        "Number(document.querySelector('#stat-fps').textContent) >= 5 && document.querySelector('#stat-latency').textContent !== '–'",
    )
    .await;
    b.screenshot("dashboard").await;
    b.emulate_viewport(None).await;
}

async fn stopped_camera_shows_offline_with_a_notification(b: &Browser, hub: &mut Harness) {
    b.js("location.hash = '#/'; return null;").await;
    b.wait_for("grid", "!document.querySelector('#grid-view').hidden")
        .await;
    hub.stop_camera("cam-2").await;
    b.wait_for(
        "cam-2 tile offline",
        "document.querySelector('[data-testid=tile][data-camera=cam-2]').dataset.online === 'false'",
    )
    .await;
    b.wait_for(
        "offline notification",
        "[...document.querySelectorAll('[data-testid=toast]')].some(t => t.dataset.kind === 'warn' && t.textContent.includes('cam-2 went offline'))",
    )
    .await;
    let badge = b
        .js("return document.querySelector('[data-camera=cam-2] .badge').textContent;")
        .await;
    assert_eq!(badge, "Offline");
    b.screenshot("camera-offline").await;

    // The camera view says so too, and its controls are disabled.
    b.js("location.hash = '#/camera/cam-2'; return null;").await;
    b.wait_for(
        "offline camera view",
        "document.querySelector('[data-testid=camera-state]').textContent === 'Offline' && document.querySelector('#controls-fieldset').disabled",
    )
    .await;
}

async fn phone_layout_fits_375_px(b: &Browser) {
    b.emulate_viewport(Some((375, 812, true))).await;
    b.js("location.hash = '#/camera/cam-1'; return null;").await;
    b.wait_for("narrow viewport", "window.innerWidth <= 375")
        .await;
    b.wait_for(
        "frames in narrow layout",
        "+document.querySelector('#live').dataset.frameCount > 2",
    )
    .await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    assert!(
        int(&overflow) <= 0,
        "page is {overflow} px wider than a 375 px phone"
    );
    // The controls come right after the picture, at full width.
    let rect = b
        .js("const r = document.querySelector('.area-controls').getBoundingClientRect(); return [r.left, r.right];")
        .await;
    let (left, right) = (rect[0].as_f64().unwrap(), rect[1].as_f64().unwrap());
    assert!(
        left >= 0.0 && right <= 375.0 && right - left > 300.0,
        "controls at {left}..{right}"
    );
    b.wait_for(
        "stats in narrow layout",
        "document.querySelector('#stat-fps').textContent !== '–'",
    )
    .await;
    dismiss_toasts(b).await;
    b.js("window.scrollTo(0, 0); return null;").await;
    b.screenshot("phone-375").await;
    b.emulate_viewport(None).await;
}

async fn lost_hub_connection_is_reported_and_recovered(b: &Browser, hub: Harness) {
    let stopped = hub.stop_for_restart().await;
    b.wait_for(
        "header shows the lost hub",
        "document.querySelector('[data-testid=hub-status]').dataset.state !== 'connected' && /retrying|Reconnecting/.test(document.querySelector('[data-testid=hub-status]').textContent)",
    )
    .await;
    b.wait_for(
        "lost-connection notification",
        "[...document.querySelectorAll('[data-testid=toast]')].some(t => t.textContent.includes('Lost the connection to the hub'))",
    )
    .await;
    b.screenshot("hub-lost").await;

    // The hub comes back on the same address: the page reconnects by itself, says so, and
    // the camera is live again — no reload.
    let hub = stopped.start_again(&["cam-1", "cam-2"]).await;
    b.wait_for(
        "header shows the hub again",
        "document.querySelector('[data-testid=hub-status]').dataset.state === 'connected'",
    )
    .await;
    b.wait_for(
        "reconnected notification",
        "[...document.querySelectorAll('[data-testid=toast]')].some(t => t.textContent.includes('Reconnected to the hub'))",
    )
    .await;
    b.wait_for(
        "camera online again",
        "document.querySelector('[data-testid=camera-state]')?.dataset.online === 'true'",
    )
    .await;
    b.screenshot("hub-reconnected").await;
    hub.stop().await;
}
