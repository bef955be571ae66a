//! Cluster mode end to end: three hubs in this process on one Debian `nats-server -js`
//! (started here on a free loopback port with a temporary store, stopped by pid), a virtual
//! camera on hub A, viewers and commands on the others. Skipped with a message when
//! `nats-server` is not installed, unless `ESPCAM_REQUIRE_TOOLS=1` (CI) makes that a failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::nats::{Nats, require_nats};
use common::{TestHub, decode, next_binary, ws};
use espcam_hub::Config;
use espcam_hub::cluster::ClusterConfig;
use espcam_proto::{CameraId, Resolution};
use espcam_sim::{HubCamera, HubCameraConfig};
use serde_json::Value;

/// The tests of this file run one at a time: each starts a NATS server and several hubs,
/// and two at once on a loaded machine starve each other's deadlines.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn hub_config(dir: &Path, nats: &Nats, node: &str) -> Config {
    let mut c = Config::for_tests(dir);
    let mut cluster = ClusterConfig::new(nats.url(), node);
    cluster.ttl = Duration::from_secs(3);
    c.cluster = Some(cluster);
    c
}

/// Waits until a hub has created the cluster's directory bucket (bounded: 20 s).
async fn wait_for_directory(nats: &Nats) {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    for _ in 0..400 {
        if js
            .get_stream(format!("KV_{}", espcam_hub::cluster::BUCKET))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no hub created the directory bucket within 20 s");
}

/// Polls `GET /api/cameras` until the camera's entry satisfies `pred` (bounded: 20 s).
async fn wait_listed(hub: &TestHub, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    wait_listed_or(hub, id, pred, String::new).await
}

/// [`wait_listed`], with `why()` added to the failure message (the virtual camera's own
/// view of its links, so that a camera that never arrived says why).
async fn wait_listed_or(
    hub: &TestHub,
    id: &str,
    pred: impl Fn(&Value) -> bool,
    why: impl Fn() -> String,
) -> Value {
    for _ in 0..400 {
        let r = hub.get("/api/cameras").await;
        if r.status == 200
            && let Some(c) = r
                .json()
                .as_array()
                .and_then(|a| a.iter().find(|c| c["id"] == id).cloned())
            && pred(&c)
        {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = hub.get("/api/cameras").await;
    panic!(
        "camera {id} never reached the expected state: {}{}",
        r.text(),
        why()
    );
}

/// The next frame on a viewer socket with these dimensions (bounded: 20 s).
async fn frame_of_size(view: &mut common::Ws, dims: (u16, u16)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let f = tokio::time::timeout(left, next_binary(view))
            .await
            .unwrap_or_else(|_| panic!("no {dims:?} frame within 20 s"));
        if decode(&f) == dims {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hubs_share_a_camera_and_survive_nats_restarts() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let store = tmp();
    let mut nats = Nats::start(&bin, store.path());
    let (da, db, dc) = (tmp(), tmp(), tmp());
    let a = TestHub::start(hub_config(da.path(), &nats, "hub-a")).await;
    let b = TestHub::start(hub_config(db.path(), &nats, "hub-b")).await;
    let c = TestHub::start(hub_config(dc.path(), &nats, "hub-c")).await;

    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        a.http.port(),
        a.stream.port(),
        CameraId::new("cam-1").unwrap(),
        "",
    );
    cfg.settings.resolution = Resolution::Qqvga;
    cfg.fps = 10;
    // Given hubs A and B: it moves to B when A disappears.
    cfg.more_hubs = vec![espcam_sim::HubEndpoint::plain(
        "127.0.0.1",
        b.http.port(),
        b.stream.port(),
    )];
    cfg.backoff.initial = Duration::from_millis(200);
    let _cam = HubCamera::spawn(cfg);

    // Every hub lists the camera with the node that holds it.
    let on_a = wait_listed(&a, "cam-1", |v| v["online"] == true).await;
    assert_eq!(on_a["node"], "hub-a");
    assert_eq!(on_a["source"], "push");
    for hub in [&b, &c] {
        let v = wait_listed(hub, "cam-1", |v| v["online"] == true).await;
        assert_eq!(v["node"], "hub-a", "{v}");
        assert_eq!(v["source"], "remote", "{v}");
    }

    // A viewer on B gets decodable frames of the camera on A.
    let mut view_b = ws(&b.ws_url("/ws/view/cam-1")).await;
    frame_of_size(&mut view_b, (160, 120)).await;

    // A settings change sent to C is acknowledged, and changes what B's viewer gets.
    let r = c
        .post("/api/cameras/cam-1/settings", r#"{"resolution":"QVGA"}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // The camera's ack: the settings in force on the camera, as hub A reports them.
    let acked = r.json()["settings"].clone();
    assert_ne!(
        acked["resolution"], on_a["settings"]["resolution"],
        "{acked}"
    );
    let held = wait_listed(&a, "cam-1", |v| v["settings"] == acked).await;
    assert_eq!(held["node"], "hub-a");
    frame_of_size(&mut view_b, (320, 240)).await;
    // Refusals and unknown cameras come back with the local status codes.
    let r = c
        .post("/api/cameras/nope/settings", r#"{"quality":10}"#)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());

    // The frames cross NATS once for B, however many viewers it has: with two viewers on
    // B, B receives (frames_in of its entry) no more frames than A got from the camera.
    let mut view_b2 = ws(&b.ws_url("/ws/view/cam-1")).await;
    frame_of_size(&mut view_b2, (320, 240)).await;
    let count = |v: &Value| v["frames_in"].as_u64().unwrap();
    let (a0, b0) = (
        count(&a.get("/api/cameras/cam-1").await.json()),
        count(&b.get("/api/cameras/cam-1").await.json()),
    );
    for _ in 0..10 {
        frame_of_size(&mut view_b, (320, 240)).await;
        frame_of_size(&mut view_b2, (320, 240)).await;
    }
    let (a1, b1) = (
        count(&a.get("/api/cameras/cam-1").await.json()),
        count(&b.get("/api/cameras/cam-1").await.json()),
    );
    assert!(b1 - b0 >= 10, "B got {} frames", b1 - b0);
    assert!(
        b1 - b0 <= a1 - a0 + 3,
        "B received {} frames over NATS while A received {} from the camera",
        b1 - b0,
        a1 - a0
    );

    // Hub A stops: the camera moves to B, and B's open viewer sees it again without
    // reloading. A settings change sent to C then reaches it on B (the frames B's viewer
    // gets at 640x480 can only come from after the move).
    drop(view_b2);
    a.stop().await;
    let moved = wait_listed(&b, "cam-1", |v| v["online"] == true && v["node"] == "hub-b").await;
    assert_eq!(moved["source"], "push", "{moved}");
    wait_listed(&c, "cam-1", |v| v["online"] == true && v["node"] == "hub-b").await;
    let mut answered = None;
    for _ in 0..40 {
        let r = c
            .post("/api/cameras/cam-1/settings", r#"{"resolution":"VGA"}"#)
            .await;
        if r.status == 200 {
            answered = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let r = answered.expect("C's settings change reached the camera on B within 10 s");
    assert_ne!(r.json()["settings"], acked, "{}", r.text());
    frame_of_size(&mut view_b, (640, 480)).await;

    // NATS goes away: B keeps serving its own camera and viewers, and takes commands.
    nats.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for _ in 0..10 {
        assert_eq!(decode(&next_binary(&mut view_b).await), (640, 480));
    }
    let r = b
        .post("/api/cameras/cam-1/settings", r#"{"quality":20}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // C forgets the remote camera once its directory entry is too old.
    wait_listed(&c, "cam-1", |v| v["online"] == false).await;

    // NATS back: the hubs rejoin; C lists the camera again and a viewer there gets frames.
    nats.restart();
    wait_listed(&c, "cam-1", |v| v["online"] == true && v["node"] == "hub-b").await;
    let mut view_c = ws(&c.ws_url("/ws/view/cam-1")).await;
    frame_of_size(&mut view_c, (640, 480)).await;

    drop(view_b);
    drop(view_c);
    for hub in [b, c] {
        hub.stop().await;
    }
}

/// The next `/ws/ui` message of type `kind` for camera `camera` (other messages skipped),
/// within `within`.
async fn ui_event(ui: &mut common::Ws, kind: &str, camera: &str, within: Duration) -> Value {
    let wait = async {
        loop {
            let v: Value = serde_json::from_str(&common::next_text(ui).await).unwrap();
            let cam = v["camera"]
                .as_str()
                .or_else(|| v["camera"]["id"].as_str())
                .or_else(|| v["snapshot"]["camera"].as_str());
            if v["type"] == kind && cam == Some(camera) {
                return v;
            }
        }
    };
    tokio::time::timeout(within, wait)
        .await
        .unwrap_or_else(|_| panic!("no {kind} event of {camera} within {within:?}"))
}

/// Issue 13, events and snapshots across hubs: a browser on hub B sees hub A's camera events
/// (settings, motion start/end, snapshot saved, offline) on `/ws/ui`; a snapshot asked of
/// B for A's camera is taken and kept on A and served by B; B never analyses the relayed
/// frames itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_and_snapshots_cross_hubs() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let store = tmp();
    let nats = Nats::start(&bin, store.path());
    let (da, db) = (tmp(), tmp());
    let mut ca = hub_config(da.path(), &nats, "hub-a");
    ca.motion.default.detector.end_after_ms = 1_000;
    let a = TestHub::start(ca).await;
    // A creates the directory bucket, so its 3 s TTL is the bucket's. Starting B at the
    // same moment let either create it: with B's 30 s this test failed now and then.
    wait_for_directory(&nats).await;
    // A long TTL: an offline event that arrives before it must have crossed as an event.
    let mut cb = hub_config(db.path(), &nats, "hub-b");
    if let Some(c) = &mut cb.cluster {
        c.ttl = Duration::from_secs(30);
    }
    let b = TestHub::start(cb).await;

    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        a.http.port(),
        a.stream.port(),
        CameraId::new("cam-1").unwrap(),
        "",
    );
    // QVGA: at QQVGA the changing clock text alone is a large part of the picture.
    cfg.settings.resolution = Resolution::Qvga;
    cfg.fps = 10;
    cfg.scene = espcam_sim::Scene::Still;
    let cam = HubCamera::spawn(cfg);
    // This wait failed twice in full-suite runs (A listed no camera after 20 s) and never
    // alone; the camera's status says which link did not come up, and why.
    wait_listed_or(
        &a,
        "cam-1",
        |v| v["online"] == true,
        || format!("; the camera: {:?}", cam.status()),
    )
    .await;
    wait_listed(&b, "cam-1", |v| {
        v["online"] == true && v["source"] == "remote"
    })
    .await;
    let mut ui = ws(&b.ws_url("/ws/ui")).await;
    // A viewer on B, so that A's frames are relayed to B (B must still not analyse them).
    let mut view_b = ws(&b.ws_url("/ws/view/cam-1")).await;
    assert_eq!(decode(&next_binary(&mut view_b).await), (320, 240));

    // Motion detected on A: start and end reach B's browser with A's event id. First A
    // settles on the still scene (a camera coming up can look like motion for a while).
    let mut settled = 0;
    for _ in 0..300 {
        let m = a.get("/api/cameras/cam-1/motion").await.json();
        settled = if m["status"]["in_motion"] == false {
            settled + 1
        } else {
            0
        };
        if settled >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(settled >= 10, "camera A never settled on the still scene");
    cam.inject(espcam_sim::Fault::Scene(espcam_sim::Scene::Moving));
    let start = ui_event(&mut ui, "motion_start", "cam-1", Duration::from_secs(10)).await;
    let event_id = start["event"]["id"].as_i64().unwrap();
    assert!(event_id > 0, "{start}");
    // A's id and links name A's events database: B's browser gets the node and no links
    // (B's /api/events/{id}/thumb.jpg is not that event's; the dashboard asked for it and
    // got a 404).
    assert_eq!(start["event"]["node"], "hub-a", "{start}");
    assert_eq!(start["event"]["links"], serde_json::json!({}), "{start}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    cam.inject(espcam_sim::Fault::Scene(espcam_sim::Scene::Still));
    let end = ui_event(&mut ui, "motion_end", "cam-1", Duration::from_secs(30)).await;
    assert_eq!(end["event"]["id"].as_i64(), Some(event_id), "{end}");
    // The event is A's: stored on A, and B (which relayed the frames) stored none.
    let on_a = a.get("/api/events").await.json();
    assert!(
        on_a["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == event_id),
        "{on_a}"
    );
    assert_eq!(
        b.get("/api/events").await.json()["events"],
        serde_json::json!([])
    );

    // Settings changed through A reach B's browser.
    let r = a
        .post("/api/cameras/cam-1/settings", r#"{"quality":21}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = ui_event(&mut ui, "settings", "cam-1", Duration::from_secs(5)).await;
    assert_eq!(s["settings"]["quality"], 21, "{s}");

    // A snapshot saved on A: B's browser hears of it, and B serves its JPEG.
    let r = a.post("/api/cameras/cam-1/snapshots", "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let on_a_id = r.json()["id"].as_i64().unwrap();
    let ev = ui_event(&mut ui, "remote_snapshot", "cam-1", Duration::from_secs(5)).await;
    assert_eq!(ev["node"], "hub-a", "{ev}");
    assert_eq!(ev["snapshot"]["id"].as_i64(), Some(on_a_id), "{ev}");
    let url = ev["snapshot"]["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("/api/nodes/hub-a/snapshots/{on_a_id}.jpg"));
    let jpg = b.get(&url).await;
    assert_eq!(jpg.status, 200, "{}", jpg.text());
    assert_eq!(jpg.headers["content-type"], "image/jpeg");
    assert_eq!(decode(&jpg.body), (320, 240));

    // A snapshot asked of B for A's camera: taken and kept on A, answered and served by B.
    let r = b.post("/api/cameras/cam-1/snapshots", "").await;
    assert_eq!(r.status, 201, "{}", r.text());
    let snap = r.json();
    assert_eq!(snap["node"], "hub-a", "{snap}");
    assert_eq!(snap["camera"], "cam-1", "{snap}");
    let id = snap["id"].as_i64().unwrap();
    assert_eq!(
        snap["url"].as_str(),
        Some(format!("/api/nodes/hub-a/snapshots/{id}.jpg").as_str())
    );
    let listed_a = a.get("/api/snapshots?camera=cam-1").await.json();
    let ids_a: Vec<i64> = listed_a
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert!(
        ids_a.contains(&id) && ids_a.contains(&on_a_id),
        "{listed_a}"
    );
    assert_eq!(b.get("/api/snapshots").await.json(), serde_json::json!([]));
    let jpg = b.get(snap["url"].as_str().unwrap()).await;
    assert_eq!(jpg.status, 200, "{}", jpg.text());
    assert_eq!(decode(&jpg.body), (320, 240));
    // B lists A's snapshots, pointing through B.
    let listed = b.get("/api/nodes/hub-a/snapshots?camera=cam-1").await;
    assert_eq!(listed.status, 200, "{}", listed.text());
    let listed = listed.json();
    let items = listed.as_array().unwrap();
    assert_eq!(items.len(), 2, "{listed}");
    for s in items {
        assert_eq!(s["node"], "hub-a");
        assert!(
            s["url"]
                .as_str()
                .unwrap()
                .starts_with("/api/nodes/hub-a/snapshots/")
        );
    }
    // A's own errors come back as they are; nodes that do not exist are told apart.
    let r = b.get("/api/nodes/hub-a/snapshots/999.jpg").await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = b.get("/api/nodes/hub-a/snapshots?limit=0").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let r = b.get("/api/nodes/hub-z/snapshots").await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.error().contains("hub-z"), "{}", r.text());
    let r = b.get("/api/nodes/a.b/snapshots").await;
    assert_eq!(r.status, 404, "{}", r.text());
    // B's own node name serves B's own (empty) list.
    assert_eq!(
        b.get("/api/nodes/hub-b/snapshots").await.json(),
        serde_json::json!([])
    );

    // The camera goes away from A: B's browser hears it at once (B's TTL is 30 s), with
    // A's reason.
    let gone = std::time::Instant::now();
    cam.stop().await;
    let off = ui_event(&mut ui, "offline", "cam-1", Duration::from_secs(10)).await;
    assert!(gone.elapsed() < Duration::from_secs(10));
    let reason = off["reason"].as_str().unwrap();
    assert!(reason.contains("offline on node hub-a"), "{off}");
    let v = b.get("/api/cameras/cam-1").await.json();
    assert_eq!(v["online"], false, "{v}");
    drop(view_b);
}

/// The NATS credentials of `[cluster]` reach the server: with a server that requires a
/// user and password, hubs given them share a camera; a hub given a wrong password stops
/// at start with the NATS URL and the cause (the other options: tests/cluster_auth.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_user_and_password_are_used() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let store = tmp();
    let nats = Nats::start_with(
        &bin,
        store.path(),
        &["--user", "espcam", "--pass", "s3cret-pw"],
    );
    let with = |dir: &Path, node: &str, password: &str| {
        let mut c = hub_config(dir, &nats, node);
        if let Some(cl) = &mut c.cluster {
            cl.user_password = Some(("espcam".into(), password.into()));
        }
        c
    };
    let (da, db, dc) = (tmp(), tmp(), tmp());
    let a = TestHub::start(with(da.path(), "hub-a", "s3cret-pw")).await;
    let b = TestHub::start(with(db.path(), "hub-b", "s3cret-pw")).await;
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        a.http.port(),
        a.stream.port(),
        CameraId::new("cam-1").unwrap(),
        "",
    );
    cfg.settings.resolution = Resolution::Qqvga;
    cfg.fps = 5;
    let _cam = HubCamera::spawn(cfg);
    let v = wait_listed(&b, "cam-1", |v| v["online"] == true).await;
    assert_eq!(v["node"], "hub-a", "{v}");
    // Hub C, refused by the server, stops at start with one line saying why.
    let config = with(dc.path(), "hub-c", "wrong");
    let listeners = espcam_hub::Listeners::bind(&config).await.unwrap();
    let run = espcam_hub::run(config, listeners, std::future::pending());
    let err = tokio::time::timeout(Duration::from_secs(15), run)
        .await
        .expect("hub C neither joined nor failed within 15 s")
        .expect_err("hub C started with a wrong password")
        .to_string();
    assert!(
        err.contains(&nats.url()) && err.contains("wrong or missing credentials"),
        "{err}"
    );
    assert!(
        !err.contains("wrong\""),
        "the password is in the message: {err}"
    );
}

/// A playback socket's frames until its `end` message: (received µs, captured µs, size) of
/// each, the JPEG decoded (bounded: 20 s).
async fn play_to_end(view: &mut common::Ws) -> Vec<(u64, Option<u64>, (u16, u16))> {
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let mut out = Vec::new();
    let mut meta: Option<Value> = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let m = tokio::time::timeout(left, view.next())
            .await
            .expect("the playback reached its end within 20 s")
            .expect("the socket stayed open")
            .unwrap();
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                match v["type"].as_str() {
                    Some("end") => return out,
                    Some("frame") => meta = Some(v),
                    _ => panic!("unexpected playback message {v}"),
                }
            }
            Message::Binary(b) => {
                let m = meta.take().expect("a frame's metadata before its JPEG");
                assert_eq!(m["bytes"].as_u64(), Some(b.len() as u64), "{m}");
                out.push((
                    m["received_us"].as_u64().unwrap(),
                    m["captured_us"].as_u64(),
                    decode(&b),
                ));
            }
            _ => {}
        }
    }
}

/// The status of a refused WebSocket upgrade (panics if it was accepted).
async fn ws_refused(url: &str) -> (u16, String) {
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => panic!("{url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
            let body = r
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            (r.status().as_u16(), body)
        }
        Err(e) => panic!("{url}: {e}"),
    }
}

/// Issue 13, recordings stay on their node: a camera recorded on hub A is listed, exported
/// (byte for byte A's file, read by ffprobe) and played back (the same frames and capture
/// times as A's own playback) through hub B; A stopped, B answers 503 at once, naming A,
/// and a playback socket B had open over A's recordings ends with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_are_served_through_another_hub() {
    let Some(bin) = require_nats() else { return };
    let _serial = SERIAL.lock().await;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let store = tmp();
    let nats = Nats::start(&bin, store.path());
    let (da, db) = (tmp(), tmp());
    let a = TestHub::start(hub_config(da.path(), &nats, "hub-a")).await;
    let b = TestHub::start(hub_config(db.path(), &nats, "hub-b")).await;
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        a.http.port(),
        a.stream.port(),
        CameraId::new("cam-1").unwrap(),
        "",
    );
    // VGA: an export of a few seconds is several of the 256 KiB chunks that cross NATS,
    // and frames straddle their boundaries.
    cfg.settings.resolution = Resolution::Vga;
    cfg.fps = 10;
    let cam = HubCamera::spawn(cfg);
    wait_listed(&a, "cam-1", |v| v["online"] == true).await;
    wait_listed(&b, "cam-1", |v| {
        v["online"] == true && v["source"] == "remote"
    })
    .await;

    // Recorded on A for a while.
    let r = a
        .post("/api/cameras/cam-1/record", r#"{"recording":true}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = a
        .post("/api/cameras/cam-1/record", r#"{"recording":false}"#)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let local = a.get("/api/cameras/cam-1/recordings").await.json();
    let spans = local["spans"].clone();
    assert_eq!(spans.as_array().unwrap().len(), 1, "{local}");
    let frames = spans[0]["frames"].as_u64().unwrap();
    assert!(frames >= 10, "{local}");
    let (start, end) = (
        spans[0]["start_us"].as_u64().unwrap(),
        spans[0]["end_us"].as_u64().unwrap(),
    );
    // B keeps nothing of it.
    let own = b.get("/api/cameras/cam-1/recordings").await.json();
    assert_eq!(own["spans"], serde_json::json!([]), "{own}");

    // B lists A's spans through A.
    let range = format!("from={}&to={}", start / 1000, end / 1000 + 1);
    let r = b
        .get(&format!(
            "/api/nodes/hub-a/cameras/cam-1/recordings?{range}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = r.json();
    assert_eq!(listed["node"], "hub-a", "{listed}");
    assert_eq!(listed["camera"], "cam-1", "{listed}");
    assert_eq!(listed["spans"], spans, "{listed}");
    // B knows where recordings may be: every node of the directory.
    let r = b.get("/api/nodes").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"node": "hub-b", "nodes": ["hub-a", "hub-b"]})
    );
    // B's own node name is B's own (empty) recordings.
    let r = b.get("/api/nodes/hub-b/cameras/cam-1/recordings").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["spans"], serde_json::json!([]));

    // Exports through B are A's files byte for byte; ffprobe counts every frame.
    for format in ["mkv", "avi"] {
        let q = format!("{range}&format={format}");
        let here = a.get(&format!("/api/cameras/cam-1/export?{q}")).await;
        assert_eq!(here.status, 200, "{}", here.text());
        let r = b
            .get(&format!("/api/nodes/hub-a/cameras/cam-1/export?{q}"))
            .await;
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        for h in ["content-length", "content-type", "content-disposition"] {
            assert_eq!(r.headers.get(h), here.headers.get(h), "{format}: {h}");
        }
        assert_eq!(
            r.headers.get("content-length").map(String::as_str),
            Some(r.body.len().to_string().as_str())
        );
        assert!(r.body == here.body, "{format}: B's export differs from A's");
        assert!(
            r.body.len() > 2 * (256 << 10),
            "{format}: {} bytes cross in one chunk",
            r.body.len()
        );
        let file = db.path().join(format!("through-b.{format}"));
        std::fs::write(&file, &r.body).unwrap();
        if let Some((n, w, h)) = common::ffprobe(&file) {
            assert_eq!((n, w, h), (frames, 640, 480), "{format}");
        }
    }

    // Playback through B: A's frames, in order, with A's capture times.
    let path = |p: &str| format!("{p}?from={}&speed=max&meta=1", start / 1000);
    let mut on_a = ws(&a.ws_url(&path("/ws/playback/cam-1"))).await;
    let want = play_to_end(&mut on_a).await;
    drop(on_a);
    assert_eq!(want.len() as u64, frames);
    let mut on_b = ws(&b.ws_url(&path("/ws/nodes/hub-a/playback/cam-1"))).await;
    let got = play_to_end(&mut on_b).await;
    assert_eq!(got, want);
    assert!(got.iter().all(|(_, c, d)| c.is_some() && *d == (640, 480)));
    // Seek back to the start: the first frame again.
    {
        use futures_util::SinkExt as _;
        on_b.send(tokio_tungstenite::tungstenite::Message::Text(
            format!(r#"{{"seek":{}}}"#, start / 1000).into(),
        ))
        .await
        .unwrap();
    }
    let again = play_to_end(&mut on_b).await;
    assert_eq!(again.first(), want.first());
    assert_eq!(again.len(), want.len());

    // A's refusals come back as they are; unknown nodes and cameras are 404.
    let r = b
        .get("/api/nodes/hub-a/cameras/cam-1/export?from=soon")
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.error().contains("from \"soon\" is not a time"),
        "{}",
        r.text()
    );
    let r = b
        .get("/api/nodes/hub-a/cameras/cam-1/export?from=1000&to=2000")
        .await;
    assert_eq!(r.status, 404, "nothing recorded then: {}", r.text());
    for path in [
        "/api/nodes/hub-z/cameras/cam-1/recordings",
        "/api/nodes/a.b/cameras/cam-1/recordings",
        "/api/nodes/hub-a/cameras/no%20such/recordings",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let (status, _) = ws_refused(&b.ws_url("/ws/nodes/hub-z/playback/cam-1")).await;
    assert_eq!(status, 404);

    // A stops: B says at once that A's recordings are unavailable, and the playback socket
    // B had open over them ends with an error.
    cam.stop().await;
    a.stop().await;
    let stopped = std::time::Instant::now();
    let r = b
        .get(&format!(
            "/api/nodes/hub-a/cameras/cam-1/recordings?{range}"
        ))
        .await;
    assert!(matches!(r.status, 503 | 504), "{}", r.text());
    assert!(r.error().contains("hub-a"), "{}", r.text());
    assert!(r.error().contains("unavailable"), "{}", r.text());
    let r = b
        .get(&format!("/api/nodes/hub-a/cameras/cam-1/export?{range}"))
        .await;
    assert!(matches!(r.status, 503 | 504), "{}", r.text());
    let (status, body) = ws_refused(&b.ws_url(&path("/ws/nodes/hub-a/playback/cam-1"))).await;
    assert!(matches!(status, 503 | 504), "{status} {body}");
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "B took {:?} to answer for a stopped A",
        stopped.elapsed()
    );
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let t = common::next_text(&mut on_b).await;
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "error" {
                return v;
            }
        }
    })
    .await
    .expect("the open playback ended with an error within 10 s");
    assert!(
        ended["message"].as_str().unwrap().contains("hub-a"),
        "{ended}"
    );
    b.stop().await;
}
