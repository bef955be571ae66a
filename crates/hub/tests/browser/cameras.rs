//! Virtual cameras for the browser tests: `espcam-sim` hub-mode cameras (the real camera core
//! and real JPEGs) pointed at the test hub.

use std::net::SocketAddr;
use std::time::Duration;

use espcam_proto::CameraId;
use espcam_sim::{ApCamera, ApCameraConfig, CameraHandle, Fault, HubCamera, HubCameraConfig};

/// Frames per second of each test camera: smooth enough to see motion, light on two cores.
const FPS: u16 = 15;

pub struct VirtualCamera(CameraHandle);

impl VirtualCamera {
    pub fn start(id: &str, http: SocketAddr, stream: SocketAddr) -> VirtualCamera {
        Self::start_with_token(id, http, stream, "")
    }

    /// Like [`VirtualCamera::start`], presenting camera token `token` (a hub with
    /// `[[camera]]` entries, as when login is on).
    pub fn start_with_token(
        id: &str,
        http: SocketAddr,
        stream: SocketAddr,
        token: &str,
    ) -> VirtualCamera {
        let mut config = HubCameraConfig::new(
            &http.ip().to_string(),
            http.port(),
            stream.port(),
            CameraId::new(id).unwrap(),
            token,
        );
        config.fps = FPS;
        VirtualCamera(HubCamera::spawn(config))
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
