//! Recording end to end: a manual recording of a camera, its spans after a restart,
//! playback of frames whose size and times match, export that ffprobe reads with the expected
//! frame count, and the API's refusals.

use std::time::Duration;

use crate::common::*;
use crate::support::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub(crate) use crate::common::ffprobe;

#[tokio::test]
async fn a_manual_recording_survives_a_restart_plays_back_and_exports() {
    let dir = tmp();
    let hub = TestHub::start_in(dir.path()).await;
    let cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    hub.wait_camera("cam-1", |c| c["width"] == 160).await;

    let r = hub.get("/api/cameras/cam-1/recordings").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["state"]["mode"], "off");
    assert!(r.json()["spans"].as_array().unwrap().is_empty());

    let on = hub
        .post("/api/cameras/cam-1/record", r#"{"recording":true}"#)
        .await;
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(on.json()["state"]["manual"], true);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let off = hub
        .post("/api/cameras/cam-1/record", r#"{"recording":false}"#)
        .await;
    assert_eq!(off.status, 200);
    // The last group commit lands within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(cam);
    hub.stop().await;

    // After a restart the recording is still there.
    let hub = TestHub::start_in(dir.path()).await;
    let list = hub.get("/api/cameras/cam-1/recordings").await.json();
    let spans = list["spans"].as_array().unwrap().clone();
    assert_eq!(spans.len(), 1, "{list}");
    let frames = spans[0]["frames"].as_u64().unwrap();
    assert!(
        frames >= 40,
        "2.5 s at 30 fps recorded only {frames} frames: {list}"
    );
    let (start, end) = (
        spans[0]["start_us"].as_u64().unwrap(),
        spans[0]["end_us"].as_u64().unwrap(),
    );
    assert!(end > start + 1_500_000, "{list}");
    let overview = hub.get("/api/recordings").await.json();
    assert!(overview["bytes"].as_u64().unwrap() > 0, "{overview}");

    // Playback, as fast as we read, from the start: every frame, in order, the right size.
    let from_ms = start / 1000;
    let mut ws = ws(&hub.ws_url(&format!(
        "/ws/playback/cam-1?from={from_ms}&speed=max&meta=1"
    )))
    .await;
    let mut got = 0u64;
    let mut last = 0u64;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "end" {
                    break;
                }
                assert_eq!(v["type"], "frame");
                let rx = v["received_us"].as_u64().unwrap();
                assert!(rx >= last && rx >= start && rx <= end, "{v}");
                assert!(v["captured_us"].as_u64().is_some(), "{v}");
                last = rx;
            }
            Message::Binary(b) => {
                assert_eq!(decode(&b), (160, 120));
                got += 1;
            }
            _ => {}
        }
    }
    assert_eq!(got, frames, "playback returns every recorded frame");
    // Seek back to the start and get the first frame again.
    ws.send(Message::Text(format!(r#"{{"seek":{from_ms}}}"#).into()))
        .await
        .unwrap();
    let again = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Text(t) if t.as_str().contains("\"frame\"") => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                break v["received_us"].as_u64().unwrap();
            }
            _ => {}
        }
    };
    assert_eq!(again, start);

    // Export both formats; ffprobe reads the expected frame count and size.
    for format in ["mkv", "avi"] {
        let q = format!(
            "/api/cameras/cam-1/export?from={}&to={}&format={format}",
            start / 1000,
            end / 1000 + 1
        );
        let r = hub.get(&q).await;
        assert_eq!(r.status, 200, "{format}: {}", r.text());
        assert_eq!(
            r.headers.get("content-length").map(String::as_str),
            Some(r.body.len().to_string().as_str())
        );
        let file = dir.path().join(format!("export.{format}"));
        std::fs::write(&file, &r.body).unwrap();
        if let Some((n, w, h)) = ffprobe(&file) {
            assert_eq!((n, w, h), (frames, 160, 120), "{format}");
        }
    }

    // Refusals name what was wrong.
    for (path, needle) in [
        (
            "/api/cameras/cam-1/export?from=soon",
            "from \"soon\" is not a time",
        ),
        (
            "/api/cameras/cam-1/export?format=mp4",
            "format \"mp4\" is invalid",
        ),
        (
            "/api/cameras/cam-1/recordings?from=2&to=1",
            "must be before",
        ),
    ] {
        let r = hub.get(path).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.error().contains(needle), "{path}: {}", r.error());
    }
    let r = hub.get("/api/cameras/cam-1/export?from=1000&to=2000").await;
    assert_eq!(r.status, 404, "nothing recorded then: {}", r.text());
    let _cam = TestCamera::connect(&hub, CamOpts::new("cam-1")).await;
    let r = hub
        .post("/api/cameras/cam-1/record", r#"{"mode":"sometimes"}"#)
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().contains("expected off, continuous or events"),
        "{}",
        r.error()
    );
    let r = hub
        .post("/api/cameras/cam-1/record", r#"{"mode":"continuous"}"#)
        .await;
    assert_eq!(r.json()["state"]["mode"], "continuous");
    hub.stop().await;
}
