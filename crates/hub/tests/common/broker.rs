//! A real MQTT broker for tests: Debian's `mosquitto` on a free loopback port with a
//! generated config file, stopped by its pid; and a recording test client (rumqttc).
//! Without mosquitto the tests skip with a message, unless `ESPCAM_REQUIRE_TOOLS=1` (CI).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

/// A mosquitto process; killed (by its pid) when dropped.
pub struct Broker {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn mosquitto() -> Option<std::path::PathBuf> {
    for p in [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ] {
        if std::path::Path::new(p).exists() {
            return Some(p.into());
        }
    }
    None
}

impl Broker {
    /// Starts mosquitto, or `None` (after saying so) when it is not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = mosquitto() else {
            if std::env::var("ESPCAM_REQUIRE_TOOLS").as_deref() == Ok("1") {
                panic!("mosquitto is required (ESPCAM_REQUIRE_TOOLS=1) but not installed");
            }
            eprintln!("SKIPPED: mosquitto is not installed (apt install mosquitto)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
            )
            .unwrap();
            let mut child = Command::new(&bin)
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // port taken meanwhile: try another
                }
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Self {
                        child,
                        port,
                        _dir: dir,
                    });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("mosquitto did not start");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(sig)
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// Freezes the broker (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused broker.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-CONT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every message a subscriber received, per topic, in order.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<String, Vec<Bytes>>>>);

impl Seen {
    pub fn all(&self, topic: &str) -> Vec<Bytes> {
        self.0
            .lock()
            .unwrap()
            .get(topic)
            .cloned()
            .unwrap_or_default()
    }

    pub fn last(&self, topic: &str) -> Option<Bytes> {
        self.all(topic).last().cloned()
    }

    pub fn count(&self, topic: &str) -> usize {
        self.0.lock().unwrap().get(topic).map_or(0, Vec::len)
    }

    /// Topics and their newest payload.
    pub fn latest(&self) -> HashMap<String, Bytes> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(t, v)| Some((t.clone(), v.last()?.clone())))
            .collect()
    }

    /// Waits (at most `secs`) until `pred` holds over the newest payloads.
    pub async fn wait(&self, secs: u64, what: &str, pred: impl Fn(&Self) -> bool) {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(secs) {
            if pred(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// Waits until `topic`'s newest payload is `want`.
    pub async fn wait_value(&self, secs: u64, topic: &str, want: &str) {
        self.wait(secs, &format!("{topic} = {want:?}"), |s| {
            s.last(topic).as_deref() == Some(want.as_bytes())
        })
        .await;
    }
}

/// A test client subscribed to `filters`, recording what it receives.
pub struct Client {
    pub client: AsyncClient,
    pub seen: Seen,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    pub async fn connect(port: u16, id: &str, filters: &[&str]) -> Self {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_max_packet_size(8 << 20, 64 << 10);
        o.set_keep_alive(Duration::from_secs(30));
        let (client, mut el) = AsyncClient::new(o, 64);
        for f in filters {
            client.subscribe(*f, QoS::AtLeastOnce).await.unwrap();
        }
        let seen = Seen::default();
        let s = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        s.0.lock()
                            .unwrap()
                            .entry(p.topic.clone())
                            .or_default()
                            .push(p.payload.clone());
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Self { client, seen, task }
    }

    pub async fn publish(&self, topic: &str, payload: &str) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.as_bytes().to_vec())
            .await
            .unwrap();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}
