//! Cluster mode in the dashboard, in a real browser (headless Chromium over WebDriver): two
//! hubs on a real `nats-server -js` (tests/common/nats.rs), a virtual camera on hub A, the
//! camera's page opened on hub B. Snapshots taken and kept on A are listed in B's snapshots
//! strip — those taken before the page was opened, one announced while it is open, all of
//! them again after a reload — marked with A's name, and open as JPEGs served through B.
//! Without Chromium (or `nats-server`) the test says so and passes, unless
//! `ESPCAM_REQUIRE_BROWSER=1` (or `ESPCAM_REQUIRE_TOOLS=1`) makes that a failure.

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

use std::net::SocketAddr;
use std::time::Duration;

use espcam_hub::cluster::ClusterConfig;
use fantoccini::Locator;
use harness::Harness;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `POST path` with an empty JSON body; (status, body).
async fn post(addr: SocketAddr, path: &str) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A snapshot of cam-1 taken on hub `a`; its id there.
async fn snapshot_on(a: &Harness) -> i64 {
    let (status, snap) = post(a.http_addr(), "/api/cameras/cam-1/snapshots").await;
    assert_eq!(status, 201, "{snap}");
    snap["id"].as_i64().unwrap()
}

/// The ids (as strings) of hub-a's snapshots in the strip, in page order.
const REMOTE_TILES: &str = "[...document.querySelectorAll('[data-testid=snapshot][data-node=hub-a]')].map(t => t.dataset.snapshotId)";

fn cluster(url: &str, node: &str) -> ClusterConfig {
    let mut c = ClusterConfig::new(url, node);
    c.ttl = Duration::from_secs(3);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_snapshots_are_listed_on_another_hubs_camera_page() {
    let Some(bin) = nats::require_nats() else {
        return;
    };
    let Some(b) =
        driver::Browser::launch("remote_snapshots_are_listed_on_another_hubs_camera_page").await
    else {
        return;
    };
    let store = tempfile::tempdir().unwrap();
    let nats = nats::Nats::start(&bin, store.path());
    let url = nats.url();
    let mut a = Harness::start_with(|c| c.cluster = Some(cluster(&url, "hub-a"))).await;
    a.start_camera("cam-1").await;
    let hub_b = Harness::start_with(|c| c.cluster = Some(cluster(&url, "hub-b"))).await;
    // B lists A's camera as remote.
    let deadline = tokio::time::Instant::now() + driver::WAIT;
    while hub_b.status("/api/cameras/cam-1").await != 200
        || hub_b.camera_info("cam-1").await["node"] != "hub-a"
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "hub B never listed cam-1"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two snapshots kept on A before anyone looks at B.
    let older = [snapshot_on(&a).await, snapshot_on(&a).await];
    b.client.goto(&hub_b.url("/#/camera/cam-1")).await.unwrap();
    let want = format!("'{},{}'", older[1], older[0]);
    b.wait_for(
        "A's older snapshots listed on B, newest first",
        &format!("String({REMOTE_TILES}) === {want}"),
    )
    .await;
    // B itself keeps none.
    assert_eq!(hub_b.get_bytes("/api/snapshots").await, b"[]");

    // One taken on A while the page is open arrives live; after a reload, all three are
    // listed (the older ones again from A's list, the new one too).
    let newer = snapshot_on(&a).await;
    let all = format!("'{newer},{},{}'", older[1], older[0]);
    b.wait_for(
        "the new snapshot announced live",
        &format!("String({REMOTE_TILES}) === {all}"),
    )
    .await;
    b.client.refresh().await.unwrap();
    b.wait_for(
        "the three snapshots of A listed after a reload",
        &format!("String({REMOTE_TILES}) === {all}"),
    )
    .await;
    b.wait_for(
        "the tiles' images loaded through B",
        "[...document.querySelectorAll('[data-testid=snapshot][data-node=hub-a] img')].every(i => i.complete && i.naturalWidth > 0)",
    )
    .await;
    let node_caption = b
        .js("return document.querySelector('[data-testid=snapshot][data-node=hub-a] [data-testid=snapshot-node]').textContent;")
        .await;
    assert_eq!(node_caption, "hub-a");

    // Opened: the full JPEG through B, as A keeps it.
    b.click(Locator::Css(&format!(
        "[data-testid=snapshot][data-node=hub-a][data-snapshot-id='{}'] button",
        older[0]
    )))
    .await;
    let jpeg_url = format!("/api/nodes/hub-a/snapshots/{}.jpg", older[0]);
    b.wait_for(
        "the snapshot of A open full size",
        &format!(
            "document.querySelector('#snapshot-dialog').open && document.querySelector('#snapshot-full').getAttribute('src') === '{jpeg_url}' && document.querySelector('#snapshot-full').complete && document.querySelector('#snapshot-full').naturalWidth > 0"
        ),
    )
    .await;
    let delete_hidden = b
        .js("return document.querySelector('#snapshot-delete').hidden;")
        .await;
    assert_eq!(
        delete_hidden, true,
        "another node's snapshot is not deletable here"
    );
    let fetched = b
        .js(&format!(
            "return fetch('{jpeg_url}').then(r => r.arrayBuffer().then(buf => {{ const b = new Uint8Array(buf); return [r.status, r.headers.get('content-type'), b[0], b[1], b.length]; }}));"
        ))
        .await;
    assert_eq!(fetched[0], 200, "{fetched}");
    assert_eq!(fetched[1], "image/jpeg", "{fetched}");
    assert_eq!(
        (fetched[2].as_u64(), fetched[3].as_u64()),
        (Some(0xFF), Some(0xD8))
    );
    let on_a = a
        .get_bytes(&format!("/api/snapshots/{}.jpg", older[0]))
        .await;
    assert_eq!(fetched[4].as_u64(), Some(on_a.len() as u64), "not A's JPEG");
    b.screenshot("cluster-remote-snapshots").await;

    let errors = b.console_errors().await;
    assert!(errors.is_empty(), "console errors: {errors:?}");
    hub_b.stop().await;
    a.stop().await;
    drop(nats);
}
