//! Firmware updates on the virtual clock: the happy path through reboot and confirmation,
//! every failure (hub gone mid-download, silent hub, wrong hash, short image, no space, an
//! image for another board, a failing flash write, a hub that ignores `Range`), and the
//! rollback of an image that cannot reach the hub.
//!
//! A test hub here serves an image from memory in answer to the core's `OtaFetch` outputs
//! and records what the camera says; a recording sink plays the flash.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use espcam_camera::{
    Camera, Config, ConnId, FetchId, Instant, Link, LinkStatus, OtaBoot, OtaSink, OtaSinkError,
    Output,
};
use espcam_proto::{CameraMsg, OtaOffer, Sha256Digest};
use sha2::{Digest, Sha256};
use support::{FakeSensor, hub_config};

const WELCOME: &str = r#"{"type":"welcome","camera":"cam-1"}"#;
const URL: &str = "http://127.0.0.1:6971/ota/0123456789abcdef/image";

/// A flash that records every call.
#[derive(Debug, Default)]
struct Flash {
    calls: Vec<String>,
    image: Vec<u8>,
    /// Largest image `begin` accepts.
    capacity: u32,
    /// `write` fails once this many bytes are in.
    fail_write_after: Option<usize>,
}

impl OtaSink for Flash {
    fn begin(&mut self, size: u32) -> Result<(), OtaSinkError> {
        self.calls.push(format!("begin {size}"));
        if size > self.capacity {
            return Err(OtaSinkError(format!(
                "partition ota_1 holds {} bytes",
                self.capacity
            )));
        }
        self.image.clear();
        Ok(())
    }
    fn write(&mut self, chunk: &[u8]) -> Result<(), OtaSinkError> {
        if self
            .fail_write_after
            .is_some_and(|n| self.image.len() + chunk.len() > n)
        {
            self.calls.push("write failed".into());
            return Err(OtaSinkError("ESP_ERR_FLASH_OP_FAIL".into()));
        }
        self.image.extend_from_slice(chunk);
        self.calls.push("write".into());
        Ok(())
    }
    fn finish(&mut self) -> Result<(), OtaSinkError> {
        self.calls.push("finish".into());
        Ok(())
    }
    fn abort(&mut self) {
        self.calls.push("abort".into());
        self.image.clear();
    }
}

/// How the test hub answers range requests.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Serve {
    /// Exactly the bytes asked for (fewer at the end of the served image).
    Range,
    /// Refuses every request (the hub is gone).
    Refuse,
    /// Never answers.
    Silent,
    /// The whole image, ignoring `Range` (a 200 answer).
    Whole,
}

struct Rig {
    cam: Camera<FakeSensor, Flash>,
    now: Instant,
    control: Option<ConnId>,
    /// What the hub serves at the URL.
    served: Vec<u8>,
    serve: Serve,
    /// Virtual time each range request takes.
    latency: Duration,
    /// Messages the camera sent on the control link after its welcome.
    said: Vec<(Instant, CameraMsg)>,
    /// The hello of this boot.
    hello: Option<CameraMsg>,
    /// Non-text outputs, in order.
    outputs: Vec<(Instant, Output)>,
    /// Range requests waiting for an answer.
    fetches: Vec<(FetchId, u32, u32)>,
    /// The `Range` asked for, in order.
    ranges: Vec<(u32, u32)>,
}

fn config(boot: OtaBoot, firmware: &str) -> Config {
    let mut c = hub_config(7);
    c.board = Some("virtual".into());
    c.firmware = firmware.into();
    c.ota_boot = boot;
    c
}

fn image(len: usize) -> Vec<u8> {
    let mut v = b"espcam-image board=virtual version=test-fw 2\n".to_vec();
    v.extend((0..len - v.len()).map(|i| (i * 31 % 251) as u8));
    v
}

fn sha(bytes: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(bytes).into())
}

fn offer(img: &[u8]) -> OtaOffer {
    OtaOffer {
        url: URL.into(),
        version: "test-fw 2".into(),
        size: img.len() as u32,
        sha256: sha(img),
        board: "virtual".into(),
    }
}

impl Rig {
    fn boot(config: Config, flash: Flash) -> Self {
        let now = Instant::from_millis(1000);
        let sensor = FakeSensor {
            settings: config.settings,
            ..FakeSensor::default()
        };
        Self {
            cam: Camera::with_ota(config, sensor, flash, now),
            now,
            control: None,
            served: Vec::new(),
            serve: Serve::Range,
            latency: Duration::from_millis(50),
            said: Vec::new(),
            hello: None,
            outputs: Vec::new(),
            fetches: Vec::new(),
            ranges: Vec::new(),
        }
    }

    fn flash() -> Flash {
        Flash {
            capacity: 4 << 20,
            ..Flash::default()
        }
    }

    /// Boots and brings the control link up (the stream link is left to time out).
    fn online(config: Config, flash: Flash) -> Self {
        let mut rig = Self::boot(config, flash);
        rig.cam.handle_timeout(rig.now);
        rig.drain();
        rig.welcome();
        rig
    }

    fn welcome(&mut self) {
        let conn = self.control.expect("a control connect");
        self.cam.handle_connected(self.now, conn);
        self.drain();
        self.cam.handle_text(self.now, conn, WELCOME);
        self.drain();
        assert_eq!(self.cam.link_status(Link::Control), LinkStatus::Ready);
    }

    fn drain(&mut self) {
        while let Some(o) = self.cam.poll_output() {
            match o {
                Output::Connect {
                    conn,
                    link: Link::Control,
                } => self.control = Some(conn),
                Output::Connect { .. } | Output::Capture | Output::Close { .. } => {}
                Output::Text { conn, text } if Some(conn) == self.control => {
                    let msg = CameraMsg::from_json(&text).unwrap();
                    if matches!(msg, CameraMsg::Hello(_)) {
                        self.hello = Some(msg);
                    } else if !matches!(msg, CameraMsg::Telemetry(_)) {
                        self.said.push((self.now, msg));
                    }
                }
                Output::Text { .. } => {}
                Output::OtaFetch {
                    fetch,
                    url,
                    offset,
                    len,
                } => {
                    assert_eq!(url, URL);
                    self.ranges.push((offset, len));
                    self.fetches.push((fetch, offset, len));
                }
                other => self.outputs.push((self.now, other)),
            }
        }
    }

    fn offer(&mut self, offer: &OtaOffer) {
        let text = espcam_proto::HubMsg::Ota(offer.clone()).to_json();
        let conn = self.control.unwrap();
        self.cam.handle_text(self.now, conn, &text);
        self.drain();
    }

    /// Answers range requests as `serve` says, moving the clock on by `latency` per
    /// request and firing timeouts, until nothing is left to do or `max` has passed.
    fn run(&mut self, max: Duration) {
        let end = self.now + max;
        loop {
            self.drain();
            if let Some((fetch, offset, len)) = self.fetches.first().copied()
                && self.serve != Serve::Silent
            {
                self.fetches.remove(0);
                self.step_to(self.now + self.latency);
                let (o, l) = (offset as usize, len as usize);
                match self.serve {
                    Serve::Range => {
                        let body = self.served.get(o..(o + l).min(self.served.len()));
                        let body = body.unwrap_or(&[]).to_vec();
                        self.cam.handle_ota_data(self.now, fetch, &body);
                    }
                    Serve::Whole => {
                        let body = self.served.clone();
                        self.cam.handle_ota_data(self.now, fetch, &body);
                    }
                    Serve::Refuse => {
                        self.cam
                            .handle_ota_failed(self.now, fetch, "connection refused");
                    }
                    Serve::Silent => unreachable!(),
                }
                continue;
            }
            match self.cam.poll_timeout() {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.cam.handle_timeout(self.now);
                }
                _ => {
                    self.now = end;
                    return;
                }
            }
        }
    }

    /// Moves the clock to `t`, firing the timeouts on the way.
    fn step_to(&mut self, t: Instant) {
        while let Some(d) = self.cam.poll_timeout() {
            if d > t {
                break;
            }
            self.now = self.now.max(d);
            self.cam.handle_timeout(self.now);
            self.drain();
        }
        self.now = self.now.max(t);
    }

    fn results(&self) -> Vec<(bool, String, Option<String>)> {
        self.said
            .iter()
            .filter_map(|(_, m)| match m {
                CameraMsg::OtaResult(r) => Some((r.ok, r.version.clone(), r.error.clone())),
                _ => None,
            })
            .collect()
    }

    fn progress(&self) -> Vec<(u32, u32)> {
        self.said
            .iter()
            .filter_map(|(_, m)| match m {
                CameraMsg::OtaProgress(p) => Some((p.bytes, p.total)),
                _ => None,
            })
            .collect()
    }

    fn error(&self) -> String {
        let results = self.results();
        assert_eq!(results.len(), 1, "one result: {results:?}");
        assert!(!results[0].0, "a failure: {results:?}");
        results[0].2.clone().unwrap()
    }

    fn installed(&self) -> bool {
        self.outputs
            .iter()
            .any(|(_, o)| *o == Output::SetBootAndReboot)
    }

    /// Failure invariants: the sink was aborted after it began, nothing was installed, the
    /// camera keeps running and streaming.
    fn assert_kept_running(&self) {
        let calls = &self.cam.ota_sink().calls;
        assert_eq!(calls.last().map(String::as_str), Some("abort"), "{calls:?}");
        assert!(!calls.iter().any(|c| c == "finish"), "{calls:?}");
        assert!(!self.installed());
        assert!(!self.cam.is_rebooting());
        assert!(!self.cam.ota_busy());
        assert_eq!(self.cam.link_status(Link::Control), LinkStatus::Ready);
    }
}

#[test]
fn update_downloads_verifies_installs_reboots_and_confirms() {
    let img = image(300_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    rig.served = img.clone();
    rig.latency = Duration::from_millis(100);
    let start = rig.now;
    rig.offer(&offer(&img));
    assert!(rig.cam.ota_busy());
    rig.run(Duration::from_secs(60));

    // Every range in order, 16 KiB each, the last one shorter.
    let chunks = img.len().div_ceil(16 * 1024);
    assert_eq!(rig.ranges.len(), chunks);
    for (i, (offset, len)) in rig.ranges.iter().enumerate() {
        assert_eq!(*offset as usize, i * 16 * 1024);
        assert_eq!(*len as usize, (img.len() - i * 16 * 1024).min(16 * 1024));
    }
    let flash = rig.cam.ota_sink();
    assert_eq!(flash.image, img, "the image reached the flash intact");
    assert_eq!(
        flash.calls.first().unwrap(),
        &format!("begin {}", img.len())
    );
    assert_eq!(flash.calls.last().unwrap(), "finish");
    assert!(rig.installed());
    assert!(rig.cam.is_rebooting());
    assert_eq!(rig.cam.reboot_reason(), Some("firmware update installed"));

    // Progress: at the start, then at most once a second, and the end.
    let progress = rig.progress();
    assert_eq!(progress.first(), Some(&(0, img.len() as u32)));
    assert_eq!(progress.last(), Some(&(img.len() as u32, img.len() as u32)));
    let took = rig.now.saturating_since(start).as_secs_f64();
    assert!(
        progress.len() >= 3 && progress.len() as f64 <= took + 3.0,
        "{} reports over {took} s: {progress:?}",
        progress.len()
    );
    assert!(
        rig.results().is_empty(),
        "success is reported by the new image"
    );

    // The new image boots pending, says so, and confirms once welcomed.
    let mut next = Rig::boot(config(OtaBoot::Pending, "test-fw 2"), Rig::flash());
    next.cam.handle_timeout(next.now);
    next.drain();
    next.cam.handle_connected(next.now, next.control.unwrap());
    next.drain();
    let Some(CameraMsg::Hello(hello)) = &next.hello else {
        panic!("no hello")
    };
    assert_eq!(hello.firmware, "test-fw 2");
    assert_eq!(hello.board.as_deref(), Some("virtual"));
    assert!(hello.ota_pending);
    assert!(next.cam.ota_pending());
    assert!(!next.outputs.iter().any(|(_, o)| *o == Output::ConfirmImage));
    next.cam
        .handle_text(next.now, next.control.unwrap(), WELCOME);
    next.drain();
    assert!(next.outputs.iter().any(|(_, o)| *o == Output::ConfirmImage));
    assert_eq!(next.results(), vec![(true, "test-fw 2".to_string(), None)]);
    assert!(!next.cam.ota_pending());
    // Confirmed: no rollback, ever.
    next.run(Duration::from_secs(600));
    assert!(
        !next
            .outputs
            .iter()
            .any(|(_, o)| *o == Output::RollbackAndReboot)
    );
}

#[test]
fn unconfirmed_image_rolls_back_when_the_hub_is_unreachable() {
    let mut cfg = config(OtaBoot::Pending, "test-fw 2");
    // The network watchdog must not restart first.
    if let espcam_camera::Mode::Hub(h) = &mut cfg.mode {
        h.network_watchdog = None;
    }
    let window = cfg.ota.confirm_window;
    let mut rig = Rig::boot(cfg, Rig::flash());
    let boot = rig.now;
    // Every control connect fails.
    let mut failed = 0;
    loop {
        rig.drain();
        if let Some(conn) = rig.control.take() {
            rig.cam.handle_closed(rig.now, conn);
            failed += 1;
            continue;
        }
        match rig.cam.poll_timeout() {
            Some(t) if t <= boot + window + Duration::from_secs(10) => {
                rig.now = t;
                rig.cam.handle_timeout(t);
            }
            _ => break,
        }
    }
    assert!(failed > 5, "it kept trying: {failed}");
    let rollbacks: Vec<_> = rig
        .outputs
        .iter()
        .filter(|(_, o)| *o == Output::RollbackAndReboot)
        .collect();
    assert_eq!(rollbacks.len(), 1, "{:?}", rig.outputs);
    assert_eq!(
        rollbacks[0].0,
        boot + window,
        "exactly at the end of the window"
    );
    assert!(!rig.outputs.iter().any(|(_, o)| *o == Output::ConfirmImage));
    assert!(rig.cam.is_rebooting());

    // The old image comes back and tells the hub why.
    let mut old = Rig::online(
        config(
            OtaBoot::RolledBack {
                version: "test-fw 2".into(),
                reason: "test-fw 2 did not reach the hub within 120 s".into(),
            },
            "test-fw 1",
        ),
        Rig::flash(),
    );
    old.drain();
    assert_eq!(
        old.error(),
        "rolled back: test-fw 2 did not reach the hub within 120 s"
    );
    let Some(CameraMsg::Hello(hello)) = &old.hello else {
        panic!("no hello")
    };
    assert_eq!(hello.firmware, "test-fw 1");
    assert!(!hello.ota_pending);
}

#[test]
fn wrong_hash_aborts_and_keeps_the_running_firmware() {
    let img = image(40_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    let mut served = img.clone();
    served[20_000] ^= 0xff;
    rig.served = served.clone();
    rig.offer(&offer(&img));
    rig.run(Duration::from_secs(30));
    assert_eq!(
        rig.error(),
        format!(
            "sha256 mismatch: expected {}, got {}",
            sha(&img),
            sha(&served)
        )
    );
    rig.assert_kept_running();
    assert!(
        rig.cam.ota_sink().image.is_empty(),
        "partial image discarded"
    );
}

#[test]
fn short_image_aborts() {
    let img = image(40_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    rig.served = img[..35_000].to_vec();
    rig.offer(&offer(&img));
    rig.run(Duration::from_secs(30));
    assert_eq!(
        rig.error(),
        "image too short: the hub sent 35000 of 40000 bytes"
    );
    rig.assert_kept_running();
}

#[test]
fn hub_gone_mid_download_retries_then_aborts() {
    let img = image(100_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    rig.served = img.clone();
    rig.latency = Duration::ZERO;
    rig.offer(&offer(&img));
    // Two chunks arrive, then the hub goes away.
    for _ in 0..2 {
        let (fetch, offset, len) = rig.fetches.remove(0);
        let body = img[offset as usize..(offset + len) as usize].to_vec();
        rig.cam.handle_ota_data(rig.now, fetch, &body);
        rig.drain();
    }
    rig.serve = Serve::Refuse;
    let gone = rig.now;
    rig.run(Duration::from_secs(60));
    assert_eq!(
        rig.error(),
        "download failed at byte 32768 of 100000 after 4 attempts: connection refused"
    );
    // Retried at the same offset after 1, 2 and 4 s.
    assert_eq!(&rig.ranges[2..], &[(32768, 16384); 4]);
    let (failed_at, _) = rig
        .said
        .iter()
        .find(|(_, m)| matches!(m, CameraMsg::OtaResult(_)))
        .unwrap();
    assert_eq!(failed_at.saturating_since(gone), Duration::from_secs(7));
    rig.assert_kept_running();
}

#[test]
fn silent_hub_times_out_each_request_then_aborts() {
    let img = image(50_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    rig.serve = Serve::Silent;
    let start = rig.now;
    rig.offer(&offer(&img));
    rig.run(Duration::from_secs(200));
    assert_eq!(
        rig.error(),
        "download failed at byte 0 of 50000 after 4 attempts: no answer within 15 s"
    );
    assert_eq!(rig.ranges.len(), 4);
    let (at, _) = rig.said.last().unwrap();
    // 4 × 15 s waiting, 1 + 2 + 4 s between attempts.
    assert_eq!(at.saturating_since(start), Duration::from_secs(67));
    rig.assert_kept_running();
}

#[test]
fn a_late_answer_to_a_timed_out_request_is_ignored_and_a_retry_recovers() {
    let img = image(20_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    rig.served = img.clone();
    rig.offer(&offer(&img));
    let (first, _, _) = rig.fetches.remove(0);
    rig.step_to(rig.now + Duration::from_secs(16));
    rig.drain();
    // The first request timed out and was retried after 1 s.
    rig.cam.handle_ota_data(rig.now, first, &img[..16384]);
    rig.drain();
    assert_eq!(
        rig.cam.ota_progress(),
        Some((0, 20_000)),
        "late answer ignored"
    );
    rig.run(Duration::from_secs(30));
    assert!(rig.installed());
    assert_eq!(rig.cam.ota_sink().image, img);
}

#[test]
fn no_space_refuses_before_fetching() {
    let img = image(50_000);
    let mut flash = Rig::flash();
    flash.capacity = 10_000;
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), flash);
    rig.offer(&offer(&img));
    assert_eq!(
        rig.error(),
        "no space for an image of 50000 bytes: partition ota_1 holds 10000 bytes"
    );
    assert!(rig.ranges.is_empty(), "nothing fetched");
    assert_eq!(rig.cam.ota_sink().calls, vec!["begin 50000"]);
    assert!(!rig.cam.ota_busy() && !rig.cam.is_rebooting());
}

#[test]
fn image_for_another_board_is_refused_untouched() {
    let img = image(50_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    let mut o = offer(&img);
    o.board = "esp32s3-eye".into();
    rig.offer(&o);
    assert_eq!(
        rig.error(),
        "image is for board esp32s3-eye, this camera is virtual"
    );
    assert!(
        rig.cam.ota_sink().calls.is_empty(),
        "the flash was not touched"
    );
    assert!(rig.ranges.is_empty());
}

#[test]
fn flash_write_failure_aborts() {
    let img = image(50_000);
    let mut flash = Rig::flash();
    flash.fail_write_after = Some(20_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), flash);
    rig.served = img.clone();
    rig.offer(&offer(&img));
    rig.run(Duration::from_secs(30));
    assert_eq!(
        rig.error(),
        "writing the image failed at byte 16384: ESP_ERR_FLASH_OP_FAIL"
    );
    rig.assert_kept_running();
}

#[test]
fn a_hub_that_ignores_range_is_refused() {
    let img = image(50_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    rig.served = img.clone();
    rig.serve = Serve::Whole;
    rig.offer(&offer(&img));
    rig.run(Duration::from_secs(30));
    assert_eq!(
        rig.error(),
        "the hub sent 50000 bytes for a range of 16384 at byte 0: expected a 206 answer to a Range request"
    );
    rig.assert_kept_running();
}

#[test]
fn a_second_offer_during_a_download_is_refused_and_the_first_goes_on() {
    let img = image(60_000);
    let mut rig = Rig::online(config(OtaBoot::Normal, "test-fw 1"), Rig::flash());
    rig.served = img.clone();
    rig.offer(&offer(&img));
    let mut other = offer(&img);
    other.version = "test-fw 3".into();
    rig.offer(&other);
    assert_eq!(
        rig.results(),
        vec![(
            false,
            "test-fw 3".to_string(),
            Some("another update is already running".to_string())
        )]
    );
    rig.run(Duration::from_secs(30));
    assert!(rig.installed());
    assert_eq!(rig.cam.ota_sink().image, img);
}

#[test]
fn a_camera_without_an_ota_sink_refuses_any_image() {
    let img = image(10_000);
    let mut plain = {
        let mut c = config(OtaBoot::Normal, "test-fw 1");
        c.board = Some("virtual".into());
        let sensor = FakeSensor::default();
        let now = Instant::from_millis(1);
        Camera::new(c, sensor, now)
    };
    let now = Instant::from_millis(1);
    plain.handle_timeout(now);
    let mut control = None;
    while let Some(o) = plain.poll_output() {
        if let Output::Connect { conn, .. } = o {
            control = Some(conn);
        }
    }
    let conn = control.unwrap();
    plain.handle_connected(now, conn);
    plain.handle_text(now, conn, WELCOME);
    while plain.poll_output().is_some() {}
    plain.handle_text(now, conn, &espcam_proto::HubMsg::Ota(offer(&img)).to_json());
    let mut said = Vec::new();
    while let Some(o) = plain.poll_output() {
        if let Output::Text { text, .. } = o {
            said.push(text);
        }
    }
    assert_eq!(said.len(), 1, "{said:?}");
    let CameraMsg::OtaResult(r) = CameraMsg::from_json(&said[0]).unwrap() else {
        panic!("{said:?}")
    };
    assert_eq!(
        r.error.as_deref(),
        Some(
            "no space for an image of 10000 bytes: this camera has no OTA partition for an image of 10000 bytes"
        )
    );
}
