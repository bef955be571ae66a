//! `espcam serve --mqtt` as the real binary, killed with SIGKILL: the broker publishes the
//! hub's last will, so Home Assistant shows the hub (and through `availability_mode: all`
//! every camera) unavailable. Needs mosquitto (skipped with a message when absent, required
//! when `ESPCAM_REQUIRE_TOOLS=1`).
#![allow(clippy::unwrap_used)]

#[path = "../../hub/tests/common/broker.rs"]
mod broker;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use broker::{Broker, Client};

/// Kills the hub when the test ends, however it ends.
struct Hub(Child);

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_hub_publishes_its_last_will() {
    let Some(broker) = Broker::start() else {
        return;
    };
    let ha = Client::connect(broker.port, "test-ha", &["espcam/#", "homeassistant/#"]).await;
    let data = tempfile::tempdir().unwrap();
    let mut hub = Hub(Command::new(env!("CARGO_BIN_EXE_espcam"))
        .args(["serve", "--demo", "1", "--bind", "127.0.0.1"])
        .args(["--port", &free_port().to_string()])
        .args(["--stream-port", &free_port().to_string()])
        .arg("--data-dir")
        .arg(data.path())
        .env("ESPCAM_MQTT", format!("mqtt://127.0.0.1:{}", broker.port))
        .env("ESPCAM_MQTT_CLIENT_ID", "will-test")
        .env_remove("ESPCAM_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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
