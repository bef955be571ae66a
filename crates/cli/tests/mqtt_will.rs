//! `espcam serve --mqtt` as the real binary, killed with SIGKILL: the broker publishes the
//! hub's last will, so Home Assistant shows the hub (and through `availability_mode: all`
//! every camera) unavailable. Needs mosquitto (skipped with a message when absent, required
//! when `ESPCAM_REQUIRE_TOOLS=1`). Also: the `--mqtt-ca-file` flag reaches the TLS setup.
#![allow(clippy::unwrap_used)]

#[path = "../../hub/tests/common/broker.rs"]
mod broker;
mod common;

use broker::{Broker, Client};
use common::{Hub, free_port, serve};
use std::process::Stdio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_hub_publishes_its_last_will() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let ha = Client::connect(broker.port, "test-ha", &["espcam/#", "homeassistant/#"]).await;
    let data = tempfile::tempdir().unwrap();
    let mut hub = Hub(serve(data.path(), data.path(), free_port(), free_port())
        .args(["--demo", "1", "--bind", "127.0.0.1"])
        .env("ESPCAM_MQTT", format!("mqtt://127.0.0.1:{}", broker.port))
        .env("ESPCAM_MQTT_CLIENT_ID", "will-test")
        .spawn()
        .unwrap());
    ha.seen.wait_value(60, "espcam/hub/status", "online").await;
    ha.seen
        .wait_value(30, "espcam/camera/demo-1/online", "online")
        .await;
    let cfg = ha
        .seen
        .last("homeassistant/camera/will-test_demo-1/image/config")
        .expect("the demo camera's discovery config");
    assert!(!cfg.is_empty());

    // SIGKILL: no goodbye from the hub; only the broker's last will can say it is gone.
    hub.0.kill().unwrap();
    hub.0.wait().unwrap();
    ha.seen.wait_value(30, "espcam/hub/status", "offline").await;
    // Retained: a client that connects later (Home Assistant restarting) sees it too.
    let late = Client::connect(broker.port, "test-late", &["espcam/hub/status"]).await;
    late.seen
        .wait_value(10, "espcam/hub/status", "offline")
        .await;
}

/// `--mqtt mqtts://… --mqtt-ca-file FILE` reaches the TLS setup: a CA file that is not one
/// stops the hub at start with a message naming it (no broker needed).
#[test]
fn a_bad_mqtt_ca_file_stops_the_hub_at_start() {
    let data = tempfile::tempdir().unwrap();
    let ca = data.path().join("not-a-ca.pem");
    std::fs::write(&ca, "hello").unwrap();
    let out = serve(data.path(), data.path(), free_port(), free_port())
        .args(["--bind", "127.0.0.1"])
        .args(["--mqtt", "mqtts://127.0.0.1:8883"])
        .arg("--mqtt-ca-file")
        .arg(&ca)
        .env_remove("ESPCAM_MQTT")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mqtt.ca_file")
            && err.contains("not-a-ca.pem")
            && err.contains("expected PEM"),
        "{err}"
    );
}
