//! Virtual cameras for the browser tests: `espcam-sim` hub-mode cameras (the real camera core
//! and real JPEGs) pointed at the test hub.

use std::net::SocketAddr;
use std::time::Duration;

use espcam_proto::CameraId;
use espcam_sim::{
    ApCamera, ApCameraConfig, CameraHandle, Fault, HubCamera, HubCameraConfig, Scene,
};

/// Frames per second of each test camera: smooth enough to see motion, light on two cores.
const FPS: u16 = 15;

pub struct VirtualCamera(CameraHandle);

impl VirtualCamera {
    pub fn start(id: &str, http: SocketAddr, stream: SocketAddr) -> VirtualCamera {
        Self::spawn(id, http, stream, "", Scene::default())
    }

    /// Like [`VirtualCamera::start`], looking at `scene` from the first frame.
    #[allow(dead_code)] // only the motion scenarios (browser_motion.rs) use it
    pub fn start_in(id: &str, http: SocketAddr, stream: SocketAddr, scene: Scene) -> VirtualCamera {
        Self::spawn(id, http, stream, "", scene)
    }

    /// Like [`VirtualCamera::start`], presenting camera token `token` (a hub with
    /// `[[camera]]` entries, as when login is on).
    #[allow(dead_code)] // only the login scenarios (browser_login.rs) use it
    pub fn start_with_token(
        id: &str,
        http: SocketAddr,
        stream: SocketAddr,
        token: &str,
    ) -> VirtualCamera {
        Self::spawn(id, http, stream, token, Scene::default())
    }

    fn spawn(
        id: &str,
        http: SocketAddr,
        stream: SocketAddr,
        token: &str,
        scene: Scene,
    ) -> VirtualCamera {
        let mut config = HubCameraConfig::new(
            &http.ip().to_string(),
            http.port(),
            stream.port(),
            CameraId::new(id).unwrap(),
            token,
        );
        config.fps = FPS;
        config.scene = scene;
        VirtualCamera(HubCamera::spawn(config))
    }

    /// Changes what the camera looks at (its scene clock restarts).
    #[allow(dead_code)] // only the motion scenarios (browser_motion.rs) use it
    pub fn set_scene(&self, scene: Scene) {
        self.0.inject(Fault::Scene(scene));
    }

    /// Freezes the camera (sockets open, nothing read or answered) for `d`.
    pub fn stall(&self, d: Duration) {
        self.0.inject(Fault::Stall(d));
    }

    /// Stops the camera: its connections close, as when it is switched off.
    pub async fn stop(self) {
        self.0.stop().await;
    }
}

/// A standalone (seed-002) virtual camera serving `ws://127.0.0.1:PORT/ws`.
pub struct StandaloneCamera(CameraHandle);

impl StandaloneCamera {
    pub async fn start(id: &str) -> StandaloneCamera {
        let config = ApCameraConfig {
            id: CameraId::new(id).unwrap(),
            fps: FPS,
            ..ApCameraConfig::default()
        };
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        StandaloneCamera(ApCamera::bind(addr, config).await.unwrap())
    }

    /// Its WebSocket URL.
    pub fn url(&self) -> String {
        self.0.url().unwrap()
    }

    pub async fn stop(self) {
        self.0.stop().await;
    }
}
