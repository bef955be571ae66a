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
use espcam_sim::{Fault, HubCamera, HubCameraConfig, Scene};
use futures_util::StreamExt;
use serde_json::Value;

const CAM: &str = "cam-1";

/// One test at a time: each runs a hub, a broker and a 30 fps camera and compares frame
/// rates, which tests running side by side on a small machine would distort.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
    let _serial = SERIAL.lock().await;
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
    // Applied from MQTT: audited with actor `mqtt`; the refused one is not.
    // (Written after the ack, so it may lag the state topic.)
    let t0 = Instant::now();
    let audit = loop {
        let audit = hub.get("/api/audit?limit=50").await.json();
        let n = audit
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "camera.settings")
            .count();
        if n >= 2 || t0.elapsed() > Duration::from_secs(10) {
            break audit;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let from_mqtt: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "camera.settings" && e["target"] == CAM)
        .collect();
    assert_eq!(from_mqtt.len(), 2, "resolution and quality: {audit}");
    for e in &from_mqtt {
        assert_eq!(e["actor"], "mqtt", "{e}");
    }
    assert_eq!(from_mqtt[0]["detail"], "quality 20", "{audit}");

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

/// Milliseconds a quality command over REST takes (the camera's ack included).
async fn timed_command(hub: &TestHub, quality: u8) -> u128 {
    let t0 = Instant::now();
    let r = hub
        .post(
            &format!("/api/cameras/{CAM}/settings"),
            &format!(r#"{{"quality":{quality}}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    t0.elapsed().as_millis()
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
    let _serial = SERIAL.lock().await;
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

    // (A new setting makes the virtual camera encode its frame loop anew, a pause in its
    // frames on a busy machine: not inside a count.)
    let before_ms = timed_command(&hub, 14).await;
    let mut view = ws(&hub.ws_url(&format!("/ws/view/{CAM}"))).await;
    count(2, &mut view).await;
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
        "viewer frames/s: {:.1} normal, {:.1} with the broker frozen; a command took {before_ms} ms before, {command_ms} ms while frozen",
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

/// The hub's motion analysis drives the camera's motion binary sensor: a still scene keeps
/// it OFF, a moving one turns it ON (with an image at once), stillness for `end_after_ms`
/// turns it OFF again; both retained, and the discovery config says `device_class: motion`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn motion_binary_sensor_follows_the_scene() {
    let _serial = SERIAL.lock().await;
    let Some(broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path(), broker.port);
    config.motion.default.detector.end_after_ms = 1_000;
    // Images only on motion within this test's time (the ticker would send one anyway).
    config.mqtt.as_mut().unwrap().image_interval = Duration::from_secs(3600);
    let hub = TestHub::start(config).await;
    let ha = Client::connect(broker.port, "test-ha", &["homeassistant/#", "espcam/#"]).await;
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        hub.http.port(),
        hub.stream.port(),
        CameraId::new(CAM).unwrap(),
        "",
    );
    cfg.fps = 10;
    cfg.scene = Scene::Still;
    let cam = HubCamera::spawn(cfg);
    hub.wait_camera(CAM, |v| {
        v["online"] == true && v["frames_in"].as_u64() > Some(0)
    })
    .await;

    let topic = "homeassistant/binary_sensor/espcam-hub_cam-1/motion/config";
    ha.seen
        .wait(10, "the motion sensor's config", |s| {
            s.last(topic).is_some()
        })
        .await;
    let v: Value = serde_json::from_slice(&ha.seen.last(topic).unwrap()).unwrap();
    check_config(topic, &v);
    assert_eq!(v["device_class"], "motion", "{v}");
    assert_eq!(v["state_topic"], t("motion"), "{v}");
    assert_eq!(
        (&v["payload_on"], &v["payload_off"]),
        (&"ON".into(), &"OFF".into())
    );

    // Still: analysed, and the sensor stays OFF.
    ha.seen.wait_value(10, &t("motion"), "OFF").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = hub.get(&format!("/api/cameras/{CAM}/motion")).await.json();
    assert!(m["status"]["analysed"].as_u64().unwrap() >= 4, "{m}");
    assert!(
        ha.seen.all(&t("motion")).iter().all(|p| &p[..] == b"OFF"),
        "motion ON with a still scene"
    );
    let images = ha.seen.count(&t("image"));

    // Moving: ON, and the newest image at once.
    cam.inject(Fault::Scene(Scene::Moving));
    ha.seen.wait_value(5, &t("motion"), "ON").await;
    ha.seen
        .wait(5, "an image on motion start", |s| {
            s.count(&t("image")) > images
        })
        .await;
    assert_eq!(decode(&ha.seen.last(&t("image")).unwrap()), (640, 480));
    // Retained: Home Assistant connecting now sees ON.
    let late = Client::connect(broker.port, "test-late", &[&t("motion")]).await;
    late.seen.wait_value(5, &t("motion"), "ON").await;
    drop(late);

    // Still again: OFF once still for end_after_ms, retained too.
    tokio::time::sleep(Duration::from_secs(1)).await;
    cam.inject(Fault::Scene(Scene::Still));
    ha.seen.wait_value(10, &t("motion"), "OFF").await;
    let late = Client::connect(broker.port, "test-late2", &[&t("motion")]).await;
    late.seen.wait_value(5, &t("motion"), "OFF").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ha.seen.wait_value(10, &t("motion"), "OFF").await;
    // One ON per motion event the hub recorded (a loaded machine may make the detector
    // see the square twice; the sensor must agree with the events either way).
    let ons = ha
        .seen
        .all(&t("motion"))
        .iter()
        .filter(|p| &p[..] == b"ON")
        .count();
    let events = hub.get(&format!("/api/events?camera={CAM}")).await.json();
    let n = events["events"].as_array().unwrap().len();
    assert!(n >= 1, "{events}");
    assert_eq!(
        ons,
        n,
        "{n} motion events, states {:?}",
        ha.seen.all(&t("motion"))
    );
    cam.kill();
    hub.stop().await;
}

/// The broker stops (its pid is terminated) while the hub runs and comes back empty on the
/// same port: live view goes on meanwhile, and the hub reconnects by itself, publishes
/// every discovery config, its availability and the current states again (including a
/// setting changed during the outage), and takes commands from Home Assistant again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_restart_is_repaired_by_the_hub() {
    let _serial = SERIAL.lock().await;
    let Some(mut broker) = Broker::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(config(dir.path(), broker.port)).await;
    let ha = Client::connect(broker.port, "test-ha", &["homeassistant/#", "espcam/#"]).await;
    let mut cfg = HubCameraConfig::new(
        "127.0.0.1",
        hub.http.port(),
        hub.stream.port(),
        CameraId::new(CAM).unwrap(),
        "",
    );
    cfg.scene = Scene::Still;
    let cam = HubCamera::spawn(cfg);
    hub.wait_camera(CAM, |v| {
        v["online"] == true && v["frames_in"].as_u64() > Some(0)
    })
    .await;
    ha.seen
        .wait(10, "21 discovery configs", |_| configs(&ha).len() >= 21)
        .await;
    ha.seen.wait_value(10, &t("resolution"), "VGA").await;
    // Motion that goes on through the outage is still ON afterwards.
    cam.inject(Fault::Scene(Scene::Moving));
    ha.seen.wait_value(10, &t("motion"), "ON").await;

    // (A new setting makes the virtual camera encode its frame loop anew, a pause in its
    // frames on a busy machine: both loops are encoded now, outside the counts, so the
    // change during the outage below finds its frames ready.)
    timed_command(&hub, 17).await;
    let before_ms = timed_command(&hub, 14).await;
    ha.seen.wait_value(10, &t("quality"), "14").await;
    drop(ha);
    let mut view = ws(&hub.ws_url(&format!("/ws/view/{CAM}"))).await;
    count(2, &mut view).await;
    let normal = count(2, &mut view).await;
    broker.stop();
    let down = count(3, &mut view).await;
    // A setting changed while the broker is away goes through.
    let down_ms = timed_command(&hub, 17).await;
    println!(
        "viewer frames/s: {:.1} normal, {:.1} with the broker down; a command took {before_ms} ms before, {down_ms} ms during the outage",
        normal as f64 / 2.0,
        down as f64 / 3.0,
    );
    assert!(
        down as f64 / 3.0 >= normal as f64 / 2.0 * 0.8,
        "frames dropped while the broker was down: {normal} in 2 s, then {down} in 3 s"
    );
    broker.restart();
    let back = Instant::now();

    // A broker without persistence lost every retained message: what a new subscriber
    // sees is what the hub published again.
    let ha = Client::connect(broker.port, "test-ha-2", &["homeassistant/#", "espcam/#"]).await;
    ha.seen.wait_value(40, "espcam/hub/status", "online").await;
    ha.seen
        .wait(10, "21 discovery configs again", |_| {
            configs(&ha).len() >= 21
        })
        .await;
    println!(
        "hub back on the broker {} ms after it restarted",
        back.elapsed().as_millis()
    );
    for (topic, v) in configs(&ha) {
        check_config(&topic, &v);
    }
    ha.seen.wait_value(10, &t("online"), "online").await;
    ha.seen.wait_value(10, &t("resolution"), "VGA").await;
    ha.seen.wait_value(10, &t("quality"), "17").await;
    ha.seen
        .wait_value(10, "espcam/hub/cameras_online", "1")
        .await;
    ha.seen
        .wait(10, "telemetry", |s| s.last(&t("telemetry")).is_some())
        .await;
    assert_eq!(next_image(&ha).await, (640, 480));
    assert_eq!(
        ha.seen.last(&t("motion")).as_deref(),
        Some(&b"ON"[..]),
        "motion in progress, but the state after the reconnection is {:?}",
        ha.seen.all(&t("motion"))
    );
    // (Its end is not waited for: after seconds of motion the background needs about its
    // adapt_ms to forget the moving square; the first test checks OFF.)

    // Commands after the restart reach the camera.
    ha.publish(&t("resolution/set"), "QVGA").await;
    ha.seen.wait_value(10, &t("resolution"), "QVGA").await;
    let mut size = next_image(&ha).await;
    if size != (320, 240) {
        size = next_image(&ha).await;
    }
    assert_eq!(size, (320, 240));
    hub.stop().await;
    ha.seen.wait_value(10, "espcam/hub/status", "offline").await;
}

/// A CA, a broker certificate for 127.0.0.1 and a client certificate it signs, as PEM files.
struct Pki {
    ca: std::path::PathBuf,
    server_cert: std::path::PathBuf,
    server_key: std::path::PathBuf,
    client_cert: std::path::PathBuf,
    client_key: std::path::PathBuf,
    /// A CA that signed nothing here.
    other_ca: std::path::PathBuf,
}

impl Pki {
    fn new(dir: &std::path::Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let write = |name: &str, pem: String| {
            let p = dir.join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "espcam test CA");
        let ca = write("ca.pem", ca_params.self_signed(&ca_key).unwrap().pem());
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.distinguished_name.push(DnType::CommonName, cn);
            (
                p.signed_by(&key, &issuer).unwrap().pem(),
                key.serialize_pem(),
            )
        };
        let (sc, sk) = leaf(vec!["127.0.0.1".into()], "broker");
        let (cc, ck) = leaf(vec![], "espcam-hub");
        let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        Self {
            ca,
            server_cert: write("server.pem", sc),
            server_key: write("server.key", sk),
            client_cert: write("client.pem", cc),
            client_key: write("client.key", ck),
            other_ca: write("other-ca.pem", other.cert.pem()),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `mqtts://` end to end: mosquitto with a TLS listener that wants a client certificate
/// signed by the test CA and a user name and password (no anonymous access), configured
/// through `[mqtt]` as a user would. The hub connects, publishes its discovery and states
/// and takes commands over TLS; a client that trusts another CA is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_with_ca_client_certificate_and_password() {
    use espcam_hub::mqtt::config::{MqttFile, MqttOverrides};
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let passwd = dir.path().join("passwd");
    if !Broker::password_file(&passwd, "hub", "s3cret pass") {
        return;
    }
    let tls_port = free_port();
    // The plain listener (allow_anonymous) is the test's view; the TLS one is the hub's.
    let Some(broker) = Broker::start_with(|_| {
        format!(
            "listener {tls_port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n\
             cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate true\n",
            passwd.display(),
            pki.ca.display(),
            pki.server_cert.display(),
            pki.server_key.display()
        )
    }) else {
        return;
    };
    let file = MqttFile {
        url: Some(format!("mqtts://127.0.0.1:{tls_port}")),
        user: Some("hub".into()),
        password: Some("s3cret pass".into()),
        ca_file: Some(pki.ca.clone()),
        client_cert: Some(pki.client_cert.clone()),
        client_key: Some(pki.client_key.clone()),
        ..MqttFile::default()
    };
    let mut m = MqttConfig::resolve(Some(&file), &MqttOverrides::default())
        .unwrap()
        .unwrap();
    assert!(m.tls.is_some());
    m.image_interval = Duration::from_millis(300);
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path());
    config.mqtt = Some(m);
    let hub = TestHub::start(config).await;
    let ha = Client::connect(broker.port, "test-ha", &["homeassistant/#", "espcam/#"]).await;
    let _cam = sim(&hub, CAM, Resolution::Qvga);
    hub.wait_camera(CAM, |v| v["online"] == true).await;

    ha.seen.wait_value(20, "espcam/hub/status", "online").await;
    ha.seen
        .wait(10, "21 discovery configs over TLS", |_| {
            configs(&ha).len() >= 21
        })
        .await;
    ha.seen.wait_value(10, &t("resolution"), "QVGA").await;
    assert_eq!(next_image(&ha).await, (320, 240));
    // Commands come back over the TLS connection's subscription.
    ha.publish(&t("resolution/set"), "VGA").await;
    ha.seen.wait_value(10, &t("resolution"), "VGA").await;

    // What the hub did is needed: the broker's certificate is verified (trusting another
    // CA, the handshake fails), and the broker wants the client certificate and password.
    use espcam_hub::mqtt::tls::{TlsFiles, client_config};
    let good = TlsFiles {
        ca_file: Some(pki.ca.clone()),
        client_cert: Some(pki.client_cert.clone()),
        client_key: Some(pki.client_key.clone()),
    };
    let cases = [
        (
            "another CA",
            TlsFiles {
                ca_file: Some(pki.other_ca.clone()),
                ..good.clone()
            },
            "s3cret pass",
            "UnknownIssuer",
        ),
        (
            "no client certificate",
            TlsFiles {
                client_cert: None,
                client_key: None,
                ..good.clone()
            },
            "s3cret pass",
            "",
        ),
        (
            "a wrong password",
            good.clone(),
            "wrong",
            "ConnectionRefused",
        ),
    ];
    for (what, files, password, want) in cases {
        let mut o = rumqttc::MqttOptions::new("test-refused", "127.0.0.1", tls_port);
        o.set_credentials("hub", password);
        o.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(client_config(&files).unwrap()),
        ));
        let (_c, mut el) = rumqttc::AsyncClient::new(o, 4);
        let got = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => {
                        break Ok(a);
                    }
                    Ok(_) => {}
                    Err(e) => break Err(format!("{e:?}")),
                }
            }
        })
        .await
        .unwrap();
        match got {
            Err(e) => assert!(e.contains(want), "{what}: expected {want}: {e}"),
            Ok(a) => panic!("{what}: the broker accepted the connection: {a:?}"),
        }
    }
    hub.stop().await;
    ha.seen.wait_value(10, "espcam/hub/status", "offline").await;
}
