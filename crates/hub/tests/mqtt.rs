//! The MQTT / Home Assistant service against a real broker (mosquitto on a free loopback
//! port; skipped with a message when it is not installed, required when
//! `ESPCAM_REQUIRE_TOOLS=1`). A test client subscribes to `homeassistant/#` and `espcam/#`
//! and checks what Home Assistant would see and do.
#![allow(clippy::unwrap_used)]

#[path = "common/broker.rs"]
mod broker;
#[path = "common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use broker::{Broker, Client};
use common::{TestHub, decode, ws};
use espcam_hub::Config;
use espcam_hub::mqtt::config::MqttConfig;
use espcam_proto::{CameraId, Resolution};
use espcam_sim::{HubCamera, HubCameraConfig};
use futures_util::StreamExt;
use serde_json::Value;

const CAM: &str = "cam-1";

fn config(dir: &std::path::Path, port: u16) -> Config {
    let mut c = Config::for_tests(dir);
    let mut m = MqttConfig::new("127.0.0.1", port);
    m.image_interval = Duration::from_millis(300);
    c.mqtt = Some(m);
    c
}

fn sim(hub: &TestHub, id: &str, res: Resolution) -> espcam_sim::CameraHandle {
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        hub.http.port(),
        hub.stream.port(),
        CameraId::new(id).unwrap(),
        "",
    );
    cfg.settings.resolution = res;
    HubCamera::spawn(cfg)
}

fn t(leaf: &str) -> String {
    format!("espcam/camera/{CAM}/{leaf}")
}

/// The keys Home Assistant's MQTT discovery requires (or we promise) per component.
fn check_config(topic: &str, v: &Value) {
    let component = topic.split('/').nth(1).unwrap();
    for key in [
        "name",
        "unique_id",
        "device",
        "availability",
        "availability_mode",
    ] {
        assert!(v.get(key).is_some(), "{topic}: no {key}: {v}");
    }
    assert_eq!(v["availability_mode"], "all", "{topic}");
    let avail = v["availability"].as_array().unwrap();
    assert!(!avail.is_empty(), "{topic}");
    assert!(
        avail.iter().any(|a| a["topic"] == "espcam/hub/status"),
        "{topic}: the hub's last will is not an availability topic"
    );
    assert!(
        !v["device"]["identifiers"].as_array().unwrap().is_empty(),
        "{topic}"
    );
    let need: &[&str] = match component {
        "camera" => &["topic"],
        "sensor" | "binary_sensor" => &["state_topic"],
        "select" => &["command_topic", "state_topic", "options"],
        "number" => &["command_topic", "state_topic", "min", "max"],
        "switch" => &["command_topic", "state_topic"],
        "button" => &["command_topic"],
        other => panic!("{topic}: unexpected component {other}"),
    };
    for key in need {
        assert!(
            v.get(*key).is_some(),
            "{topic}: {component} needs {key}: {v}"
        );
    }
    for key in ["topic", "state_topic", "command_topic"] {
        if let Some(s) = v.get(key) {
            assert!(s.as_str().unwrap().starts_with("espcam/"), "{topic}: {key}");
        }
    }
}

fn configs(c: &Client) -> Vec<(String, Value)> {
    c.seen
        .latest()
        .into_iter()
        .filter(|(t, p)| t.starts_with("homeassistant/") && t.ends_with("/config") && !p.is_empty())
        .map(|(t, p)| (t, serde_json::from_slice(&p).unwrap()))
        .collect()
}

async fn next_image(c: &Client) -> (u16, u16) {
    let n = c.seen.count(&t("image"));
    c.seen
        .wait(10, "a new image", |s| s.count(&t("image")) > n)
        .await;
    decode(&c.seen.last(&t("image")).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_sees_controls_and_availability() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(config(dir.path(), broker.port)).await;
    let ha = Client::connect(broker.port, "test-ha", &["homeassistant/#", "espcam/#"]).await;
    let cam = sim(&hub, CAM, Resolution::Qvga);
    hub.wait_camera(CAM, |v| {
        v["online"] == true && v["frames_in"].as_u64() > Some(0)
    })
    .await;

    // Discovery: the hub's 3 entities and the camera's 18, each with the required keys.
    ha.seen
        .wait(10, "21 discovery configs", |_| configs(&ha).len() >= 21)
        .await;
    ha.seen.wait_value(10, "espcam/hub/status", "online").await;
    let all = configs(&ha);
    assert_eq!(
        all.len(),
        21,
        "{:?}",
        all.iter().map(|c| &c.0).collect::<Vec<_>>()
    );
    let mut ids = HashSet::new();
    for (topic, v) in &all {
        check_config(topic, v);
        assert!(
            ids.insert(v["unique_id"].as_str().unwrap().to_string()),
            "{topic}: duplicate unique_id"
        );
    }
    let select = &all
        .iter()
        .find(|(t, _)| t == "homeassistant/select/espcam-hub_cam-1/resolution/config")
        .unwrap()
        .1;
    assert_eq!(select["device"]["model"], "virtual");
    assert_eq!(select["device"]["sw_version"], espcam_sim::FIRMWARE);
    assert_eq!(select["device"]["via_device"], "espcam-hub");
    let names: Vec<&str> = Resolution::ALL.iter().map(|r| r.name()).collect();
    assert_eq!(select["options"], serde_json::json!(names));
    let avail: Vec<&str> = select["availability"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["topic"].as_str().unwrap())
        .collect();
    assert_eq!(avail, ["espcam/hub/status", "espcam/camera/cam-1/online"]);

    // States and telemetry.
    ha.seen.wait_value(10, &t("online"), "online").await;
    ha.seen.wait_value(10, &t("resolution"), "QVGA").await;
    ha.seen
        .wait_value(10, "espcam/hub/cameras_online", "1")
        .await;
    ha.seen
        .wait(10, "telemetry", |s| {
            s.last(&t("telemetry")).is_some_and(|p| {
                let v: Value = serde_json::from_slice(&p).unwrap();
                v["fps"].as_f64() > Some(0.0) && v["heap_free"].is_u64()
            })
        })
        .await;

    // The camera topic carries decodable JPEGs of the current resolution.
    assert_eq!(next_image(&ha).await, (320, 240));

    // The select's command topic changes the frames the hub receives; the state follows.
    ha.publish(&t("resolution/set"), "VGA").await;
    ha.seen.wait_value(10, &t("resolution"), "VGA").await;
    let mut view = ws(&hub.ws_url(&format!("/ws/view/{CAM}"))).await;
    let t0 = Instant::now();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), view.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if m.is_binary() && decode(&m.into_data()) == (640, 480) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "frames never became 640x480"
        );
    }
    let mut size = next_image(&ha).await;
    if size != (640, 480) {
        size = next_image(&ha).await; // one taken just before the change
    }
    assert_eq!(size, (640, 480));

    // A number: a valid quality is applied; a bad one is refused and the state republished.
    ha.publish(&t("quality/set"), "20").await;
    ha.seen.wait_value(10, &t("quality"), "20").await;
    let before = ha.seen.count(&t("quality"));
    ha.publish(&t("quality/set"), "70").await;
    ha.seen
        .wait(10, "the quality state republished", |s| {
            s.count(&t("quality")) > before
        })
        .await;
    assert_eq!(ha.seen.last(&t("quality")).as_deref(), Some(&b"20"[..]));
    let info = hub.get(&format!("/api/cameras/{CAM}")).await.json();
    assert_eq!(info["settings"]["quality"], 20);

    // Switches: a flip through the camera's ack; recording through the recorder.
    ha.publish(&t("vflip/set"), "ON").await;
    ha.seen.wait_value(10, &t("vflip"), "ON").await;
    ha.publish(&t("recording/set"), "ON").await;
    ha.seen.wait_value(10, &t("recording"), "ON").await;
    let rec = hub
        .get(&format!("/api/cameras/{CAM}/recordings"))
        .await
        .json();
    assert_eq!(rec["state"]["manual"], true, "{rec}");
    ha.publish(&t("recording/set"), "OFF").await;
    ha.seen.wait_value(10, &t("recording"), "OFF").await;

    // The snapshot button saves a snapshot.
    ha.publish(&t("snapshot/set"), "PRESS").await;
    let t0 = Instant::now();
    loop {
        let r = hub.get(&format!("/api/snapshots?camera={CAM}")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        if let Some(s) = r.json().as_array().and_then(|a| a.first().cloned()) {
            assert_eq!(
                (s["width"].as_u64(), s["height"].as_u64()),
                (Some(640), Some(480))
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no snapshot saved: {}",
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Killing the virtual camera flips its availability.
    cam.kill();
    ha.seen.wait_value(15, &t("online"), "offline").await;
    ha.seen
        .wait_value(10, "espcam/hub/cameras_online", "0")
        .await;

    // Removing it from the registry clears its discovery topics.
    let r = hub.delete(&format!("/api/cameras/{CAM}")).await;
    assert!(r.status < 300, "{} {}", r.status, r.text());
    ha.seen
        .wait(10, "empty retained configs", |s| {
            s.last("homeassistant/select/espcam-hub_cam-1/resolution/config")
                .is_some_and(|p| p.is_empty())
        })
        .await;
    assert_eq!(configs(&ha).len(), 3, "only the hub's entities remain");

    // A clean stop says offline (no last will needed).
    hub.stop().await;
    ha.seen.wait_value(10, "espcam/hub/status", "offline").await;
}

/// Frames a viewer receives in `secs` seconds.
async fn count(secs: u64, view: &mut common::Ws) -> u32 {
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut n = 0u32;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, view.next()).await {
        if m.is_binary() {
            n += 1;
        }
    }
    n
}

/// A broker that stops answering does not slow live view or commands, and the service
/// catches up when it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_broker_never_delays_frames_or_commands() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(config(dir.path(), broker.port)).await;
    let ha = Client::connect(broker.port, "test-ha", &["espcam/#"]).await;
    let _cam = sim(&hub, CAM, Resolution::Qvga);
    hub.wait_camera(CAM, |v| {
        v["online"] == true && v["frames_in"].as_u64() > Some(0)
    })
    .await;
    ha.seen.wait_value(10, &t("resolution"), "QVGA").await;

    let mut view = ws(&hub.ws_url(&format!("/ws/view/{CAM}"))).await;
    let normal = count(2, &mut view).await;
    broker.pause();
    let frozen = count(4, &mut view).await;
    let t0 = Instant::now();
    let r = hub
        .post(&format!("/api/cameras/{CAM}/settings"), r#"{"quality":15}"#)
        .await;
    let command_ms = t0.elapsed().as_millis();
    assert_eq!(r.status, 200, "{}", r.text());
    println!(
        "viewer frames/s: {:.1} normal, {:.1} with the broker frozen; a command took {command_ms} ms while frozen",
        normal as f64 / 2.0,
        frozen as f64 / 4.0
    );
    // Same camera, same pacing: the frozen broker costs no frames (generous for noise).
    assert!(
        frozen as f64 / 4.0 >= normal as f64 / 2.0 * 0.8,
        "frames dropped while the broker was frozen: {normal} in 2 s, then {frozen} in 4 s"
    );
    broker.resume();
    // The newest value arrives once the broker answers again.
    ha.seen.wait_value(60, &t("quality"), "15").await;
    hub.stop().await;
}
