//! A virtual-clock harness around the camera core: a fake sensor, and a recorder that plays
//! the shell's part (draining outputs, answering captures) so tests read like a timeline.
#![allow(dead_code)]
// Test support: a failed unwrap here is a failed test.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use espcam_camera::{
    Camera, CapturedFrame, Config, ConnId, FrameDecision, FrameSend, Instant, Link, Output, Sensor,
    SensorError, Setting,
};
use espcam_proto::{CameraId, Resolution, Settings};

/// A sensor that records what it was told and can be made to refuse a resolution.
#[derive(Debug, Default)]
pub struct FakeSensor {
    pub settings: Settings,
    pub applied: Vec<Settings>,
    pub refuse: Option<Resolution>,
}

impl Sensor for FakeSensor {
    fn set(&mut self, s: Setting) -> Result<(), SensorError> {
        if let Setting::Resolution(r) = s
            && Some(r) == self.refuse
        {
            return Err(SensorError {
                setting: "resolution",
                reason: "not supported by this sensor",
            });
        }
        s.apply_to(&mut self.settings);
        self.applied.push(self.settings);
        Ok(())
    }
}

/// Something the shell saw, with the virtual time it saw it.
#[derive(Debug, Clone)]
pub enum Seen {
    Connect(ConnId, Link),
    Text(ConnId, String),
    Close(ConnId, u16, String),
    Frame(FrameSend),
    Dropped,
    Reboot,
    /// A firmware-update output.
    Ota(Output),
}

pub struct Harness {
    pub cam: Camera<FakeSensor>,
    pub now: Instant,
    pub log: Vec<(Instant, Seen)>,
    /// Answer `Capture` at once with a frame of the sensor's size.
    pub auto_capture: bool,
    /// Report every frame sent at once (no backpressure).
    pub auto_sent: bool,
    pub jpeg_len: usize,
}

pub fn hub_config(seed: u64) -> Config {
    let mut c = Config::hub(CameraId::new("cam-1").unwrap(), "secret");
    c.seed = seed;
    c.sensor = "fake".into();
    c.firmware = "test-fw 1".into();
    c
}

impl Harness {
    pub fn new(config: Config) -> Self {
        let sensor = FakeSensor {
            settings: config.settings,
            ..FakeSensor::default()
        };
        let now = Instant::from_millis(1000);
        Self {
            cam: Camera::new(config, sensor, now),
            now,
            log: Vec::new(),
            auto_capture: true,
            auto_sent: true,
            jpeg_len: 20_000,
        }
    }

    /// Drains outputs, playing the shell: captures are answered at once, frames reported
    /// sent at once unless `auto_sent` is off.
    pub fn drain(&mut self) {
        while let Some(o) = self.cam.poll_output() {
            let now = self.now;
            match o {
                Output::Connect { conn, link } => self.log.push((now, Seen::Connect(conn, link))),
                Output::Text { conn, text } => self.log.push((now, Seen::Text(conn, text))),
                Output::Close { conn, code, reason } => {
                    self.log.push((now, Seen::Close(conn, code, reason)))
                }
                Output::Reboot => self.log.push((now, Seen::Reboot)),
                // Firmware updates have their own harness (tests/ota.rs).
                o @ (Output::OtaFetch { .. }
                | Output::SetBootAndReboot
                | Output::ConfirmImage
                | Output::RollbackAndReboot) => self.log.push((now, Seen::Ota(o))),
                Output::Capture => {
                    if !self.auto_capture {
                        continue;
                    }
                    let s = self.cam.sensor().settings;
                    let frame = CapturedFrame {
                        captured_at: now,
                        width: s.resolution.width(),
                        height: s.resolution.height(),
                        len: self.jpeg_len,
                    };
                    match self.cam.handle_frame(now, &frame) {
                        FrameDecision::Send(f) => {
                            self.log.push((now, Seen::Frame(f)));
                            if self.auto_sent {
                                for c in f.targets.as_slice() {
                                    self.sent(*c);
                                }
                            }
                        }
                        FrameDecision::Drop(_) => self.log.push((now, Seen::Dropped)),
                    }
                }
            }
        }
    }

    /// Runs the camera until `now + d`, firing every timeout on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        self.drain();
        while let Some(t) = self.cam.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.cam.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
        self.drain();
    }

    /// Fires timeouts one at a time until a new log entry satisfies `pred` (at most `max`
    /// of virtual time); returns its index.
    pub fn run_until(&mut self, max: Duration, pred: impl Fn(&Seen) -> bool) -> Option<usize> {
        let end = self.now + max;
        let mut checked = self.log.len();
        self.drain();
        loop {
            if let Some(i) = (checked..self.log.len()).find(|i| pred(&self.log[*i].1)) {
                return Some(i);
            }
            checked = self.log.len();
            match self.cam.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.cam.handle_timeout(self.now);
                    self.drain();
                }
                _ => return None,
            }
        }
    }

    pub fn connected(&mut self, conn: ConnId) {
        self.cam.handle_connected(self.now, conn);
        self.drain();
    }

    pub fn closed(&mut self, conn: ConnId) {
        self.cam.handle_closed(self.now, conn);
        self.drain();
    }

    /// Reports `conn`'s send complete; a newest frame the core hands back is logged as
    /// `Seen::Frame` and, with `auto_sent`, reported sent too.
    pub fn sent(&mut self, conn: ConnId) {
        let mut next = self.cam.handle_frame_sent(self.now, conn);
        while let Some(f) = next {
            self.log.push((self.now, Seen::Frame(f)));
            next = if self.auto_sent {
                self.cam.handle_frame_sent(self.now, conn)
            } else {
                None
            };
        }
    }

    pub fn text(&mut self, conn: ConnId, text: &str) {
        self.cam.handle_text(self.now, conn, text);
        self.drain();
    }

    /// Log entries since index `from`.
    pub fn since(&self, from: usize) -> &[(Instant, Seen)] {
        &self.log[from..]
    }

    pub fn last_connect(&self, link: Link) -> Option<(Instant, ConnId)> {
        self.log.iter().rev().find_map(|(t, s)| match s {
            Seen::Connect(c, l) if *l == link => Some((*t, *c)),
            _ => None,
        })
    }

    pub fn texts_to(&self, conn: ConnId, from: usize) -> Vec<serde_json::Value> {
        self.since(from)
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Text(c, t) if *c == conn => {
                    Some(serde_json::from_str(t).unwrap_or(serde_json::Value::String(t.clone())))
                }
                _ => None,
            })
            .collect()
    }

    pub fn frames(&self, from: usize) -> Vec<(Instant, FrameSend)> {
        self.since(from)
            .iter()
            .filter_map(|(t, s)| match s {
                Seen::Frame(f) => Some((*t, *f)),
                _ => None,
            })
            .collect()
    }

    /// Boots a hub-mode camera through both handshakes; returns (control, stream).
    pub fn online(&mut self) -> (ConnId, ConnId) {
        self.advance(Duration::ZERO);
        let (_, control) = self.last_connect(Link::Control).expect("control connect");
        self.connected(control);
        self.text(control, r#"{"type":"welcome","camera":"cam-1"}"#);
        self.advance(Duration::ZERO);
        let (_, stream) = self.last_connect(Link::Stream).expect("stream connect");
        self.connected(stream);
        self.text(stream, r#"{"type":"welcome","camera":"cam-1"}"#);
        (control, stream)
    }
}
