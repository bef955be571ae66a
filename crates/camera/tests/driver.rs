//! The blocking shell's loop (`Driver`) against a recording fake of the firmware's I/O:
//! standalone clients each get the newest frame at their own pace from one shared copy, a
//! failed send closes that connection only, health is read once a second, a hub session
//! streams in place, and a reboot closes everything before it restarts.

#![allow(clippy::unwrap_used)]

mod support;

use std::rc::Rc;
use std::time::Duration;

use espcam_camera::blocking::{BoardEvent, BoardIo, step};
use espcam_camera::{
    CLOSE_INTERNAL_ERROR, CLOSE_RESTART, Camera, CapturedFrame, Config, ConnId, Driver, FetchId,
    Health, Instant, Link, SendFailed, ShellEvent, ShellIo,
};
use support::{FakeSensor, hub_config};

/// Everything the driver asked for, in order.
#[derive(Debug, Clone, PartialEq)]
enum Did {
    Connect(ConnId, Link),
    Text(ConnId, String),
    Close(ConnId, u16),
    Forget(ConnId),
    CloseAll(u16),
    /// Hub frame: connection and header length.
    Frame(ConnId, usize),
    /// Standalone copy handed to a client: which capture (numbered from 1) it is.
    Jpeg(ConnId, u32),
    Restart(bool),
    Health,
    /// Standalone client (its handle) admitted as the connection.
    Adopt(ConnId, u32),
    /// Standalone client (its handle) refused with the close code.
    Refuse(u32, u16),
}

#[derive(Default)]
struct FakeIo {
    now: u64,
    did: Vec<Did>,
    captures: u32,
    shares: u32,
    /// Sends to this connection fail.
    broken: Option<ConnId>,
    /// Admitted standalone clients: socket key, connection.
    clients: Vec<(i32, ConnId)>,
}

impl FakeIo {
    fn take(&mut self) -> Vec<Did> {
        std::mem::take(&mut self.did)
    }
    fn fail(&self, conn: ConnId) -> Result<(), SendFailed> {
        if self.broken == Some(conn) {
            Err(SendFailed)
        } else {
            Ok(())
        }
    }
}

impl ShellIo for FakeIo {
    type Frame = u32;
    type Jpeg = Rc<u32>;
    fn now(&self) -> Instant {
        Instant::from_millis(self.now)
    }
    fn connect(&mut self, conn: ConnId, link: Link) {
        self.did.push(Did::Connect(conn, link));
    }
    fn send_text(&mut self, conn: ConnId, text: String) -> Result<(), SendFailed> {
        self.did.push(Did::Text(conn, text));
        self.fail(conn)
    }
    fn close(&mut self, conn: ConnId, code: u16, _reason: &str) {
        self.did.push(Did::Close(conn, code));
    }
    fn forget(&mut self, conn: ConnId) {
        self.did.push(Did::Forget(conn));
    }
    fn close_all(&mut self, code: u16, _reason: &str) {
        self.did.push(Did::CloseAll(code));
    }
    fn capture(&mut self) -> Option<(CapturedFrame, u32)> {
        self.captures += 1;
        let info = CapturedFrame {
            captured_at: self.now(),
            width: 640,
            height: 480,
            len: 20_000,
        };
        Some((info, self.captures))
    }
    fn send_frame(&mut self, conn: ConnId, header: &[u8], _frame: &u32) -> Result<(), SendFailed> {
        self.did.push(Did::Frame(conn, header.len()));
        self.fail(conn)
    }
    fn share(&mut self, frame: u32) -> Rc<u32> {
        self.shares += 1;
        Rc::new(frame)
    }
    fn send_jpeg(&mut self, conn: ConnId, jpeg: Rc<u32>) -> Result<(), SendFailed> {
        self.did.push(Did::Jpeg(conn, *jpeg));
        self.fail(conn)
    }
    fn restart(&mut self, rollback: bool, _reason: &str) {
        self.did.push(Did::Restart(rollback));
    }
    fn ota_fetch(&mut self, _: FetchId, _: &str, _: u32, _: u32) {}
    fn confirm_image(&mut self) {}
    fn health(&mut self) -> Health {
        self.did.push(Did::Health);
        Health {
            heap_free: 100_000,
            psram_free: 4_000_000,
            rssi: Some(-60),
        }
    }
    fn wall_clock(&mut self) -> Option<u64> {
        None
    }
}

impl BoardIo for FakeIo {
    type Client = u32;
    fn adopt(&mut self, conn: ConnId, client: u32) {
        self.did.push(Did::Adopt(conn, client));
        self.clients.push((client as i32, conn));
    }
    fn refuse(&mut self, client: u32, code: u16, _reason: &str) {
        self.did.push(Did::Refuse(client, code));
    }
    fn conn_of(&self, key: i32) -> Option<ConnId> {
        self.clients
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| *c)
    }
}

type D = Driver<FakeSensor, espcam_camera::NoOta, Rc<u32>>;

/// Runs passes until `until` ms of virtual time, with no events.
fn run(d: &mut D, io: &mut FakeIo, until: u64) {
    while io.now < until {
        let wait = d.poll(io, Duration::from_millis(500));
        io.now += (wait.as_millis() as u64).max(1);
        d.handle(io, None);
    }
    d.poll(io, Duration::from_millis(500));
}

fn standalone() -> (D, FakeIo) {
    let io = FakeIo::default();
    let cam = Camera::new(Config::standalone(), FakeSensor::default(), io.now());
    (Driver::new(cam), io)
}

#[test]
fn each_client_gets_the_newest_frame_at_its_own_pace_from_one_copy() {
    let (mut d, mut io) = standalone();
    let a = d.client_open(&io).unwrap();
    let b = d.client_open(&io).unwrap();
    d.poll(&mut io, Duration::ZERO);
    io.take();
    // First capture: both clients are free, one copy, two sends.
    run(&mut d, &mut io, 40);
    let did = io.take();
    assert_eq!(io.shares, 1, "{did:?}");
    assert!(
        did.contains(&Did::Jpeg(a, 1)) && did.contains(&Did::Jpeg(b, 1)),
        "{did:?}"
    );
    // `a` finishes; `b` never does. The next frames go to `a` only.
    d.handle(&mut io, Some(ShellEvent::FrameSent(a)));
    run(&mut d, &mut io, 200);
    let jpegs: Vec<Did> = io
        .take()
        .into_iter()
        .filter(|x| matches!(x, Did::Jpeg(..)))
        .collect();
    assert_eq!(
        jpegs.len(),
        1,
        "a is busy again until it reports: {jpegs:?}"
    );
    assert!(matches!(jpegs[0], Did::Jpeg(c, _) if c == a));
    // Reporting `a` keeps it going, one frame at a time, while `b` stays stuck.
    for _ in 0..10 {
        d.handle(&mut io, Some(ShellEvent::FrameSent(a)));
        let t = io.now + 40;
        run(&mut d, &mut io, t);
    }
    let did = io.take();
    let to_a = did
        .iter()
        .filter(|x| matches!(x, Did::Jpeg(c, _) if *c == a))
        .count();
    let to_b = did
        .iter()
        .filter(|x| matches!(x, Did::Jpeg(c, _) if *c == b))
        .count();
    assert!(to_a >= 9, "a kept its rate: {to_a} frames, {did:?}");
    assert_eq!(to_b, 0);
    // `b` finally reports: it gets the newest frame at once, not the ones it missed.
    d.handle(&mut io, Some(ShellEvent::FrameSent(b)));
    let did = io.take();
    let newest = io.shares;
    assert_eq!(did, [Did::Jpeg(b, newest)], "b skips to the newest copy");
}

#[test]
fn a_failed_send_closes_only_that_connection() {
    let (mut d, mut io) = standalone();
    let a = d.client_open(&io).unwrap();
    let b = d.client_open(&io).unwrap();
    io.broken = Some(b);
    d.poll(&mut io, Duration::ZERO);
    let did = io.take();
    assert!(
        did.contains(&Did::Close(b, CLOSE_INTERNAL_ERROR)),
        "{did:?}"
    );
    assert!(
        !did.iter().any(|x| matches!(x, Did::Close(c, _) if *c == a)),
        "{did:?}"
    );
    assert_eq!(d.camera().stats(io.now()).clients, 1);
    // A client that ends by itself is forgotten by the shell and the camera.
    d.handle(&mut io, Some(ShellEvent::Closed(a)));
    assert!(io.take().contains(&Did::Forget(a)));
    assert_eq!(d.camera().stats(io.now()).clients, 0);
}

#[test]
fn health_is_read_once_a_second() {
    let (mut d, mut io) = standalone();
    run(&mut d, &mut io, 10_500);
    let reads = io.take().iter().filter(|x| **x == Did::Health).count();
    assert_eq!(reads, 11, "at 0 s, 1 s, … 10 s");
}

#[test]
fn a_hub_session_streams_in_place_and_a_reboot_closes_everything_first() {
    let mut io = FakeIo::default();
    let cam = Camera::new(hub_config(1), FakeSensor::default(), io.now());
    let mut d: D = Driver::new(cam);
    d.poll(&mut io, Duration::ZERO);
    d.handle(&mut io, None);
    d.poll(&mut io, Duration::ZERO);
    let Some(&Did::Connect(control, Link::Control)) = io.did.last() else {
        panic!("{:?}", io.did)
    };
    let welcome = r#"{"type":"welcome","camera":"cam-1"}"#;
    d.handle(&mut io, Some(ShellEvent::Connected(control)));
    d.handle(&mut io, Some(ShellEvent::Text(control, welcome.into())));
    d.poll(&mut io, Duration::ZERO);
    let stream = io
        .take()
        .iter()
        .find_map(|x| match x {
            Did::Connect(c, Link::Stream) => Some(*c),
            _ => None,
        })
        .unwrap();
    d.handle(&mut io, Some(ShellEvent::Connected(stream)));
    d.handle(&mut io, Some(ShellEvent::Text(stream, welcome.into())));
    run(&mut d, &mut io, 1_000);
    let frames = io
        .take()
        .iter()
        .filter(|x| **x == Did::Frame(stream, 28))
        .count();
    assert!(
        frames >= 25,
        "about 30 frames in a second, in place: {frames}"
    );
    assert_eq!(io.shares, 0, "the hub link never copies a frame");

    d.handle(
        &mut io,
        Some(ShellEvent::Text(
            control,
            r#"{"cmd":"reboot","id":9}"#.into(),
        )),
    );
    d.poll(&mut io, Duration::ZERO);
    let did = io.take();
    let ack = did
        .iter()
        .position(|x| matches!(x, Did::Text(c, t) if *c == control && t.contains("\"ack\"")));
    let close_all = did.iter().position(|x| *x == Did::CloseAll(CLOSE_RESTART));
    let restart = did.iter().position(|x| *x == Did::Restart(false));
    assert!(
        ack < close_all && close_all < restart && ack.is_some(),
        "{did:?}"
    );
}

/// The board's main loop (`blocking::step`): a client connecting is admitted or refused by
/// the core, and a client's text or close reaches the core under the id it was admitted as;
/// events for sockets the core never admitted are ignored.
#[test]
fn the_main_loop_admits_clients_and_maps_their_sockets_to_connections() {
    let (mut d, mut io) = standalone();
    let (tx, rx) = std::sync::mpsc::channel();
    let max = Duration::from_millis(1);
    for client in 1..=6 {
        tx.send(BoardEvent::ClientOpen(client)).unwrap();
        step(&mut d, &mut io, &rx, max);
    }
    let did = io.take();
    let adopted: Vec<_> = did
        .iter()
        .filter_map(|d| match d {
            Did::Adopt(c, client) => Some((*c, *client)),
            _ => None,
        })
        .collect();
    assert_eq!(adopted.len(), 5, "{did:?}");
    assert!(
        did.contains(&Did::Refuse(6, espcam_camera::CLOSE_TRY_AGAIN)),
        "{did:?}"
    );
    let first = adopted[0].0;
    tx.send(BoardEvent::ClientText(1, "ping".into())).unwrap();
    step(&mut d, &mut io, &rx, max);
    d.poll(&mut io, max);
    let did = io.take();
    assert!(
        did.iter()
            .any(|d| matches!(d, Did::Text(c, t) if *c == first && t.contains("pong"))),
        "{did:?}"
    );
    tx.send(BoardEvent::ClientText(99, "ping".into())).unwrap();
    step(&mut d, &mut io, &rx, max);
    assert!(
        !io.take()
            .iter()
            .any(|d| matches!(d, Did::Text(_, t) if t.contains("pong")))
    );
    tx.send(BoardEvent::ClientClosed(1)).unwrap();
    step(&mut d, &mut io, &rx, max);
    assert!(io.take().contains(&Did::Forget(first)));
}
