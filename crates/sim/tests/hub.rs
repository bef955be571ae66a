//! Hub-mode virtual cameras against a minimal fake hub on loopback: the seed-000 connection
//! (hello → welcome on control, stream hello → welcome, framed JPEGs), commands and acks,
//! telemetry, rejection, link loss and reconnection, and an abrupt kill.

// Helpers outside #[test] fns too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]
// tungstenite's handshake callback fixes its error type.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use espcam_proto::{
    CameraId, CameraMsg, FrameFlags, FrameLimits, Quality, Resolution, Settings, StreamHello,
    decode_frame,
};
use espcam_sim::{
    AdaptiveQuality, BackoffConfig, CameraHandle, Fault, HubCamera, HubCameraConfig, LinkStatus,
};
use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = WebSocketStream<TcpStream>;
mod support;

const T: Duration = Duration::from_secs(10);

/// The two hub listeners; tests accept and drive each connection by hand.
struct FakeHub {
    control: TcpListener,
    stream: TcpListener,
}

impl FakeHub {
    async fn new() -> Self {
        Self {
            control: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            stream: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn camera(&self, id: &str, token: &str) -> HubCameraConfig {
        let mut cfg = HubCameraConfig::new(
            "127.0.0.1",
            self.control.local_addr().unwrap().port(),
            self.stream.local_addr().unwrap().port(),
            CameraId::new(id).unwrap(),
            token,
        );
        cfg.settings = Settings {
            resolution: Resolution::Qvga,
            ..Settings::default()
        };
        cfg.backoff = BackoffConfig {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
            ..BackoffConfig::default()
        };
        cfg.reboot_delay = Duration::from_millis(50);
        cfg
    }

    async fn accept(listener: &TcpListener, path: &str) -> Ws {
        let (tcp, _) = timeout(T, listener.accept())
            .await
            .expect("camera connects")
            .unwrap();
        let expected = path.to_string();
        tokio_tungstenite::accept_hdr_async(
            tcp,
            move |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                assert_eq!(req.uri().path(), expected);
                Ok(resp)
            },
        )
        .await
        .unwrap()
    }

    /// Accepts the control link, checks the hello and welcomes it.
    async fn control(&self) -> (Ws, espcam_proto::Hello) {
        let mut ws = Self::accept(&self.control, "/ws/camera").await;
        let CameraMsg::Hello(hello) = CameraMsg::from_json(&next_text(&mut ws).await).unwrap()
        else {
            panic!("first message is a hello")
        };
        ws.send(Message::text(format!(
            r#"{{"type":"welcome","camera":"{}"}}"#,
            hello.camera
        )))
        .await
        .unwrap();
        (ws, hello)
    }

    async fn stream(&self) -> (Ws, StreamHello) {
        let mut ws = Self::accept(&self.stream, "/ws/stream").await;
        let hello = StreamHello::from_json(&next_text(&mut ws).await).unwrap();
        ws.send(Message::text(format!(
            r#"{{"type":"welcome","camera":"{}"}}"#,
            hello.camera
        )))
        .await
        .unwrap();
        (ws, hello)
    }
}

async fn next_text(ws: &mut Ws) -> String {
    timeout(T, async {
        loop {
            match ws.next().await.expect("open").expect("ok") {
                Message::Text(t) => return t.to_string(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("text within 10 s")
}

async fn next_msg(ws: &mut Ws, ty: &str) -> serde_json::Value {
    loop {
        let v: serde_json::Value = serde_json::from_str(&next_text(ws).await).unwrap();
        if v["type"] == ty {
            return v;
        }
    }
}

/// Next stream frame, checked with the hub's own decoder: (header, width, height).
async fn next_frame(ws: &mut Ws) -> (espcam_proto::FrameHeader, u16, u16) {
    timeout(T, async {
        loop {
            match ws.next().await.expect("open").expect("ok") {
                Message::Binary(b) => {
                    let f = decode_frame(&b, &FrameLimits::default()).expect("valid frame");
                    let mut d = jpeg_decoder::Decoder::new(f.jpeg);
                    d.decode().expect("decodable JPEG");
                    return (f.header.expect("framed"), f.width, f.height);
                }
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    })
    .await
    .expect("frame within 10 s")
}

async fn online(hub: &FakeHub, cam: &CameraHandle) -> (Ws, Ws) {
    let (control, hello) = hub.control().await;
    assert_eq!(hello.camera.as_str(), cam.id());
    let (stream, _) = hub.stream().await;
    timeout(T, cam.wait_for(|s| s.stream == LinkStatus::Ready))
        .await
        .unwrap();
    (control, stream)
}

#[tokio::test]
async fn hello_frames_command_ack_telemetry() {
    let hub = FakeHub::new().await;
    let cam = HubCamera::spawn(hub.camera("cam-7", "sesame"));
    let (mut control, hello) = hub.control().await;
    assert_eq!(hello.camera.as_str(), "cam-7");
    assert_eq!(hello.token, "sesame");
    assert_eq!(hello.sensor, "virtual");
    assert_eq!(hello.settings.resolution, Resolution::Qvga);
    let (mut stream, shello) = hub.stream().await;
    assert_eq!(
        (shello.camera.as_str(), shello.token.as_str()),
        ("cam-7", "sesame")
    );

    let mut last_seq = None;
    for _ in 0..10 {
        let (h, w, hh) = next_frame(&mut stream).await;
        assert_eq!((w, hh), (320, 240));
        assert!(h.flags.has(FrameFlags::SYNTHETIC));
        assert!(!h.flags.has(FrameFlags::CLOCK_UNSYNCED));
        let now_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        assert!(
            now_us.abs_diff(h.timestamp_us) < 5_000_000,
            "wall-clock capture time"
        );
        if let Some(prev) = last_seq {
            assert_eq!(h.sequence, prev + 1, "consecutive sequence numbers");
        }
        last_seq = Some(h.sequence);
    }

    control
        .send(Message::text(
            r#"{"cmd":"resolution","value":"VGA","id":42}"#,
        ))
        .await
        .unwrap();
    let ack = next_msg(&mut control, "ack").await;
    assert_eq!(ack["id"], 42);
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["settings"]["resolution"], 6);
    let mut switched = false;
    for _ in 0..5 {
        if next_frame(&mut stream).await.1 == 640 {
            switched = true;
            break;
        }
    }
    assert!(switched, "frames switch to 640x480 after the ack");

    let tel = next_msg(&mut control, "telemetry").await;
    assert!(tel["frames_sent"].as_u64().unwrap() >= 10, "{tel}");
    assert_eq!(tel["settings"]["resolution"], 6);
    assert!(tel["uptime_ms"].as_u64().unwrap() >= 500);
    cam.stop().await;
}

#[tokio::test]
async fn dropped_links_reconnect_with_backoff() {
    let hub = FakeHub::new().await;
    let cam = HubCamera::spawn(hub.camera("cam-2", ""));
    let (_control, _stream) = online(&hub, &cam).await;
    cam.inject(Fault::DropLinks);
    let (mut control, hello) = hub.control().await;
    assert_eq!(hello.camera.as_str(), "cam-2");
    let (mut stream, _) = hub.stream().await;
    next_frame(&mut stream).await;

    // The hub side closes: the camera comes back on its own as well.
    control.close(None).await.unwrap();
    drop(stream);
    let (_control, _) = hub.control().await;
    let (mut stream, _) = hub.stream().await;
    next_frame(&mut stream).await;
    assert_eq!(cam.status().boots, 1);
}

#[tokio::test]
async fn rejected_camera_retries_later() {
    let hub = FakeHub::new().await;
    let cam = HubCamera::spawn(hub.camera("cam-3", "wrong"));
    let mut ws = FakeHub::accept(&hub.control, "/ws/camera").await;
    next_text(&mut ws).await;
    ws.send(Message::text(
        r#"{"type":"rejected","reason":"wrong token for camera cam-3"}"#,
    ))
    .await
    .unwrap();
    let close = support::next_close(&mut ws).await;
    assert!(close.reason.contains("wrong token"), "{close:?}");
    // It tries again after its backoff.
    let (_control, hello) = hub.control().await;
    assert_eq!(hello.camera.as_str(), "cam-3");
    drop(cam);
}

#[tokio::test]
async fn reboot_command_reconnects_with_new_uptime() {
    let hub = FakeHub::new().await;
    let cam = HubCamera::spawn(hub.camera("cam-4", ""));
    let (mut control, _stream) = online(&hub, &cam).await;
    control
        .send(Message::text(r#"{"cmd":"reboot","id":1}"#))
        .await
        .unwrap();
    let ack = next_msg(&mut control, "ack").await;
    assert_eq!(
        (ack["id"].clone(), ack["ok"].clone()),
        (1.into(), true.into())
    );
    let (mut control, _) = hub.control().await;
    let (_stream, _) = hub.stream().await;
    let tel = next_msg(&mut control, "telemetry").await;
    assert!(
        tel["uptime_ms"].as_u64().unwrap() < 3000,
        "fresh uptime: {tel}"
    );
    assert_eq!(cam.status().boots, 2);
}

#[tokio::test]
async fn killed_camera_vanishes_without_close_frame() {
    let hub = FakeHub::new().await;
    let cam = HubCamera::spawn(hub.camera("cam-5", ""));
    let (mut control, mut stream) = online(&hub, &cam).await;
    next_frame(&mut stream).await;
    cam.kill();
    for ws in [&mut control, &mut stream] {
        let end = timeout(T, async {
            loop {
                match ws.next().await {
                    None | Some(Err(_)) => return true,
                    Some(Ok(Message::Close(_))) => return false,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await
        .unwrap();
        assert!(end, "connection dropped without a close frame");
    }
}

/// Mean JPEG length of the next `n` stream frames.
async fn mean_len(stream: &mut Ws, n: usize) -> usize {
    let mut total = 0;
    for _ in 0..n {
        total += next_frame(stream).await.0.jpeg_len as usize;
    }
    total / n
}

#[tokio::test]
async fn a_throttled_link_shrinks_frames_and_they_grow_back_when_it_clears() {
    let hub = FakeHub::new().await;
    let mut cfg = hub.camera("cam-slow", "");
    cfg.adaptive_quality = Some(AdaptiveQuality {
        limit: Quality::new(40).unwrap(),
        step: 7,
        hold: Duration::from_secs(1),
        settle: Duration::from_secs(1),
    });
    let cam = HubCamera::spawn(cfg);
    let (_control, mut stream) = online(&hub, &cam).await;
    let full = mean_len(&mut stream, 30).await;

    // The link now carries 40 % of what the camera sends at full rate and quality.
    let rate = u32::try_from(full * 30 * 4 / 10).unwrap();
    cam.inject(Fault::Throttle(Some(rate)));
    let shrunk = timeout(Duration::from_secs(30), async {
        loop {
            let len = mean_len(&mut stream, 5).await;
            if len * 4 <= full * 3 {
                return len;
            }
        }
    })
    .await
    .expect("frames shrink within 30 s");
    let status = cam.status();
    assert!(status.quality_in_force > 12, "{status:?}");
    assert_eq!(status.settings.quality.get(), 12, "the user's choice stays");

    cam.inject(Fault::Throttle(None));
    let back = timeout(Duration::from_secs(30), async {
        loop {
            let len = mean_len(&mut stream, 10).await;
            if len * 100 >= full * 95 {
                return len;
            }
        }
    })
    .await
    .expect("frames grow back within 30 s");
    timeout(T, cam.wait_for(|s| s.quality_in_force == 12))
        .await
        .expect("the chosen quality is back in force");
    println!(
        "mean JPEG: {full} B at full rate, {shrunk} B throttled to {rate} B/s, {back} B after"
    );
}
