//! A real hub on loopback (ports 0, a temporary data directory) with virtual cameras from
//! `espcam-sim`, plus the few plain HTTP requests the browser tests use to check the hub's
//! side of what the page shows. Binds only 127.0.0.1: port 0, or the same ports again when
//! the test restarts the hub. [`Harness::start_locked`] starts one with login required,
//! users created beforehand and configured camera tokens; its own requests then carry an
//! admin API token.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use espcam_hub::{Config, Listeners, RunError};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cameras::VirtualCamera;

/// How long the hub waits for a camera's ack in these tests.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(1500);

pub struct Harness {
    http: SocketAddr,
    stream: SocketAddr,
    data: tempfile::TempDir,
    /// Resolving it stops the hub (graceful shutdown of every connection).
    shutdown: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), RunError>>,
    cameras: HashMap<String, VirtualCamera>,
    /// With login on ([`Harness::start_locked`]): the admin token the harness's own requests
    /// carry, and cameras present [`camera_token`].
    admin_token: Option<String>,
}

/// The camera token a locked harness configures for camera `id`.
fn camera_token(id: &str) -> String {
    format!("{id}-camera-token")
}

/// What [`Harness::start_locked`] hands [`Harness::start_in`].
struct Locked {
    admin_token: String,
    cameras: Vec<espcam_hub::config::CameraAuth>,
}

/// A hub that was stopped for a restart.
pub struct Stopped {
    data: tempfile::TempDir,
    addrs: (SocketAddr, SocketAddr),
}

impl Stopped {
    /// Starts a hub on the same ports and data directory, with cameras `ids`.
    pub async fn start_again(self, ids: &[&str]) -> Harness {
        Harness::start_in(self.data, Some(self.addrs), ids, Vec::new(), None).await
    }
}

impl Harness {
    /// Starts a hub and one virtual camera per id, and waits until all are online.
    pub async fn start(ids: &[&str]) -> Harness {
        Self::start_in(tempfile::tempdir().unwrap(), None, ids, Vec::new(), None).await
    }

    /// Starts a hub with login required (`auth = "on"`, so also on loopback) and users
    /// `users` (name, role, password; written as `espcam user add` writes them), plus one
    /// virtual camera per id, each configured in `[[camera]]` with its own token so no
    /// pairing is needed; waits until all are online. The harness's own requests carry an
    /// admin API token.
    #[allow(dead_code)]
    pub async fn start_locked(ids: &[&str], users: &[(&str, espcam_auth::Role, &str)]) -> Harness {
        use espcam_auth::{Auth, AuthOptions, Password, Role, TokenName, UserName};
        let data = tempfile::tempdir().unwrap();
        let auth = Auth::open_with(data.path(), AuthOptions::for_tests()).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        for (name, role, password) in users {
            auth.add_user(
                &UserName::new(name).unwrap(),
                *role,
                &Password::new(password).unwrap(),
                now,
            )
            .unwrap();
        }
        let token = auth
            .add_token(
                &TokenName::new("browser-harness").unwrap(),
                Role::Admin,
                now,
            )
            .unwrap();
        drop(auth);
        let locked = Locked {
            admin_token: token.secret.expose().to_owned(),
            cameras: ids
                .iter()
                .map(|id| espcam_hub::config::CameraAuth {
                    id: espcam_proto::CameraId::new(id).unwrap(),
                    token: camera_token(id),
                    record: None,
                })
                .collect(),
        };
        Self::start_in(data, None, ids, Vec::new(), Some(locked)).await
    }

    /// Starts a hub that pulls from the standalone (seed-002) camera at `url` as `id`, and
    /// waits until it is online with a frame.
    pub async fn start_pulling(id: &str, url: &str) -> Harness {
        let target = espcam_hub::config::PullTarget {
            id: espcam_proto::CameraId::new(id).unwrap(),
            url: url.to_owned(),
        };
        let h = Self::start_in(tempfile::tempdir().unwrap(), None, &[], vec![target], None).await;
        h.wait_online(id).await;
        h
    }

    /// Starts a hub whose configuration `configure` adjusts (no cameras: see
    /// [`Harness::start_camera_in`]).
    #[allow(dead_code)] // only the motion scenarios (browser_motion.rs) use it
    pub async fn start_with(configure: impl FnOnce(&mut Config)) -> Harness {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config::for_tests(data.path());
        config.ack_timeout = ACK_TIMEOUT;
        configure(&mut config);
        Self::launch(data, config, &[], None).await
    }

    /// Starts a hub on `addrs` (ports 0 when `None`) with data directory `data`.
    async fn start_in(
        data: tempfile::TempDir,
        addrs: Option<(SocketAddr, SocketAddr)>,
        ids: &[&str],
        pull: Vec<espcam_hub::config::PullTarget>,
        locked: Option<Locked>,
    ) -> Harness {
        let mut config = Config::for_tests(data.path());
        config.pull = pull;
        let admin_token = locked.map(|l| {
            config.auth = espcam_auth::AuthMode::On;
            config.cameras = l.cameras;
            l.admin_token
        });
        // Short, so the timed-out command scenario does not wait long.
        config.ack_timeout = ACK_TIMEOUT;
        if let Some((http, stream)) = addrs {
            (config.port, config.stream_port) = (http.port(), stream.port());
        }
        Self::launch(data, config, ids, admin_token).await
    }

    /// Runs a hub with `config` and starts virtual cameras `ids`; the harness's own requests
    /// carry `admin_token` when there is one.
    async fn launch(
        data: tempfile::TempDir,
        config: Config,
        ids: &[&str],
        admin_token: Option<String>,
    ) -> Harness {
        let listeners = Listeners::bind(&config).await.unwrap();
        let (http, stream) = listeners.local_addrs().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(espcam_hub::run(config, listeners, async {
            let _ = rx.await;
        }));
        let mut h = Harness {
            http,
            stream,
            data,
            shutdown: Some(tx),
            server,
            cameras: HashMap::new(),
            admin_token,
        };
        for id in ids {
            h.start_camera(id).await;
        }
        h
    }

    /// Stops the hub but keeps its ports and data directory, so that
    /// [`Stopped::start_again`] can bring it back (an operator restarting the hub).
    pub async fn stop_for_restart(self) -> Stopped {
        let addrs = (self.http, self.stream);
        let data = self.shut_down().await;
        Stopped { data, addrs }
    }

    /// The address of port 6971 (for raw requests).
    #[allow(dead_code)]
    pub fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The address of port 6972 (for cameras the test starts itself).
    #[allow(dead_code)]
    pub fn stream_addr(&self) -> SocketAddr {
        self.stream
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Starts virtual camera `id` and waits until the hub lists it online with a frame.
    pub async fn start_camera(&mut self, id: &str) {
        let cam = if self.admin_token.is_some() {
            VirtualCamera::start_with_token(id, self.http, self.stream, &camera_token(id))
        } else {
            VirtualCamera::start(id, self.http, self.stream)
        };
        self.cameras.insert(id.to_owned(), cam);
        self.wait_online(id).await;
    }

    /// Like [`Harness::start_camera`], the camera looking at `scene` from its first frame.
    #[allow(dead_code)] // only the motion scenarios (browser_motion.rs) use it
    pub async fn start_camera_in(&mut self, id: &str, scene: espcam_sim::Scene) {
        let cam = VirtualCamera::start_in(id, self.http, self.stream, scene);
        self.cameras.insert(id.to_owned(), cam);
        self.wait_online(id).await;
    }

    /// Changes what virtual camera `id` looks at.
    #[allow(dead_code)] // only the motion scenarios (browser_motion.rs) use it
    pub fn set_scene(&self, id: &str, scene: espcam_sim::Scene) {
        self.cameras[id].set_scene(scene);
    }

    /// Waits until the hub lists camera `id` online with a frame.
    async fn wait_online(&self, id: &str) {
        let deadline = tokio::time::Instant::now() + crate::driver::WAIT;
        loop {
            let (status, body) = self.get(&format!("/api/cameras/{id}")).await;
            if status == 200 {
                let v: Value = serde_json::from_slice(&body).unwrap();
                if v["online"] == true && v["frames_in"].as_u64().unwrap_or(0) > 0 {
                    return;
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "camera {id} did not come online"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Freezes virtual camera `id` for `d`: connected, but deaf and mute.
    pub fn stall_camera(&self, id: &str, d: Duration) {
        self.cameras[id].stall(d);
    }

    /// Stops virtual camera `id` (its connections close, as when a board loses power).
    pub async fn stop_camera(&mut self, id: &str) {
        let cam = self.cameras.remove(id).expect("no such virtual camera");
        cam.stop().await;
    }

    /// Stops the hub and waits for it to finish.
    pub async fn stop(self) {
        self.shut_down().await;
    }

    /// Stops the cameras and the hub; hands back the data directory.
    async fn shut_down(mut self) -> tempfile::TempDir {
        for (_, cam) in self.cameras.drain() {
            cam.stop().await;
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.server).await.unwrap().unwrap();
        self.data
    }

    /// `GET /api/cameras/{id}` as JSON.
    pub async fn camera_info(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/cameras/{id}")).await;
        assert_eq!(status, 200);
        serde_json::from_slice(&body).unwrap()
    }

    /// The body of a `GET` that must answer 200.
    pub async fn get_bytes(&self, path: &str) -> Vec<u8> {
        let (status, body) = self.get(path).await;
        assert_eq!(
            status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&body)
        );
        body
    }

    /// The status of a `GET`.
    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.0
    }

    /// A file under the data directory whose bytes are exactly `bytes`.
    pub fn find_file_with(&self, bytes: &[u8]) -> Option<std::path::PathBuf> {
        fn walk(dir: &Path, bytes: &[u8]) -> Option<std::path::PathBuf> {
            for entry in std::fs::read_dir(dir).ok()?.flatten() {
                let p = entry.path();
                if p.is_dir() {
                    if let Some(found) = walk(&p, bytes) {
                        return Some(found);
                    }
                } else if std::fs::read(&p).is_ok_and(|b| b == bytes) {
                    return Some(p);
                }
            }
            None
        }
        walk(self.data.path(), bytes)
    }

    /// A minimal HTTP/1.1 GET (the hub answers with Content-Length bodies).
    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let mut s = tokio::net::TcpStream::connect(self.http).await.unwrap();
        let auth = self
            .admin_token
            .as_ref()
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.http
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.unwrap();
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("HTTP response without header end");
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("HTTP status line");
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "unexpected chunked response to {path}"
        );
        (status, raw[split + 4..].to_vec())
    }
}
