//! Another cluster node's recordings in the dashboard, in a real browser (headless Chromium
//! over WebDriver): a camera recorded on hub A, opened on hub B's dashboard, shows A's spans
//! on its timeline ("Recorded on" hub-a), plays them through B (frames recorded on A drawn
//! in B's canvas), offers downloads through `/api/nodes/hub-a/…`, shows B's own (empty)
//! recordings when "this hub" is chosen, and says A's recordings are unavailable once A is
//! stopped. Needs `nats-server` and Chromium; without them the test says so and passes,
//! unless `ESPCAM_REQUIRE_BROWSER=1` / `ESPCAM_REQUIRE_TOOLS=1` make that a failure.

// Test code, helpers included: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used, dead_code)]

#[path = "browser/cameras.rs"]
mod cameras;
#[path = "browser/driver.rs"]
mod driver;
#[path = "browser/harness.rs"]
mod harness;
#[path = "common/nats.rs"]
mod nats;
#[path = "browser/recordings.rs"]
mod recordings;

use std::time::Duration;

use espcam_hub::cluster::ClusterConfig;
use espcam_hub::recorder::Mode;
use fantoccini::Locator;
use serde_json::Value;

fn num(v: &Value) -> f64 {
    v.as_f64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_cameras_recordings_play_and_download_through_this_hub() {
    let Some(bin) = nats::require_nats() else {
        return;
    };
    let Some(b) =
        driver::Browser::launch("a_remote_cameras_recordings_play_and_download_through_this_hub")
            .await
    else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let nats = nats::Nats::start(&bin, store.path());
    let cluster = |node: &str| {
        let mut c = ClusterConfig::new(nats.url(), node);
        // Long: a loaded machine must not expire the remote camera between two passes.
        c.ttl = Duration::from_secs(10);
        c
    };
    let mut a = harness::Harness::start_with(|c| {
        c.cluster = Some(cluster("hub-a"));
        c.recording.default_mode = Mode::Continuous;
    })
    .await;
    a.start_camera("cam-1").await;
    let hub_b = harness::Harness::start_with(|c| c.cluster = Some(cluster("hub-b"))).await;
    // B lists A's camera as remote.
    for _ in 0..400 {
        let list: Value = serde_json::from_slice(&hub_b.get_bytes("/api/cameras").await).unwrap();
        if list
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == "cam-1" && c["source"] == "remote" && c["online"] == true)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A few seconds recorded and committed on A.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rec: Value =
        serde_json::from_slice(&a.get_bytes("/api/cameras/cam-1/recordings").await).unwrap();
    let span = &rec["spans"][0];
    let (start, end) = (
        num(&span["start_us"]) / 1000.0,
        num(&span["end_us"]) / 1000.0,
    );
    assert!(end - start > 2000.0, "{rec}");

    // B's camera page: the timeline is A's.
    b.client.goto(&hub_b.url("/#/camera/cam-1")).await.unwrap();
    b.wait_for(
        "A's spans on B's timeline",
        "!document.querySelector('#rec-node-bar').hidden && document.querySelector('[data-testid=rec-node]').value === 'hub-a' && +document.querySelector('#timeline').dataset.spans > 0",
    )
    .await;
    let options = b
        .js("return [...document.querySelectorAll('[data-testid=rec-node] option')].map(o => o.value + '=' + o.textContent);")
        .await;
    assert_eq!(
        options,
        serde_json::json!(["=hub-b (this hub)", "hub-a=hub-a"]),
        "{options}"
    );

    // Click one second into the span: frames recorded on A are drawn in B's canvas.
    let before = num(&b
        .js("return +document.querySelector('#live').dataset.frameCount;")
        .await);
    recordings::press_on_timeline(&b, start + 1000.0, start + 1000.0).await;
    let shown = b
        .wait_for(
            "playback of A's frames",
            &format!("(() => {{ const d = document.querySelector('#live').dataset; return d.mode === 'playback' && +d.frameCount > {before} + 5 && +d.capturedUs; }})()"),
        )
        .await;
    let captured_ms = num(&shown) / 1000.0;
    assert!(
        captured_ms >= start - 1000.0 && captured_ms <= end + 5000.0,
        "playback shows a frame captured at {captured_ms}, recorded {start}..{end}"
    );
    b.screenshot("cluster-remote-playback").await;
    b.click(Locator::Id("back-live")).await;

    // A range dragged on the timeline downloads through B from A.
    recordings::press_on_timeline(&b, start + 200.0, start + 2000.0).await;
    let href = b
        .wait_for(
            "export links through the node route",
            "!document.querySelector('#export-mkv').hidden && document.querySelector('#export-mkv').getAttribute('href')",
        )
        .await;
    let href = href.as_str().unwrap().to_string();
    assert!(
        href.starts_with("/api/nodes/hub-a/cameras/cam-1/export?"),
        "{href}"
    );
    let file = hub_b.get_bytes(&href).await;
    assert_eq!(&file[..4], &[0x1A, 0x45, 0xDF, 0xA3], "an MKV (EBML) file");

    // "This hub": B recorded nothing of the camera.
    let select = b.client.find(Locator::Id("rec-node")).await.unwrap();
    select.select_by_value("").await.unwrap();
    b.wait_for(
        "B's own (empty) recordings",
        "document.querySelector('#timeline').dataset.spans === '0' && document.querySelector('[data-testid=rec-usage]').textContent.startsWith('This camera: nothing')",
    )
    .await;

    // A stopped: its recordings are said to be unavailable.
    select.select_by_value("hub-a").await.unwrap();
    a.stop().await;
    b.wait_for(
        "A's recordings unavailable",
        "document.querySelector('#recordings').dataset.unavailable === 'true' && document.querySelector('[data-testid=rec-state]').textContent.includes('hub-a') && document.querySelector('#timeline').dataset.spans === '0'",
    )
    .await;
    b.screenshot("cluster-node-down").await;
    let errors: Vec<String> = b
        .console_errors()
        .await
        .into_iter()
        .filter(|e| !e.contains("503") && !e.contains("504"))
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    hub_b.stop().await;
}
