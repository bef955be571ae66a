//! Unit tests of the blocking shell's threads (feature `std`, run by the firmware), with fakes of the
//! board: range fetches read at most one byte more than asked and only from a 206, the OTA
//! worker runs jobs in order and reports a failed write on the sink's next call, an aborted
//! update is dropped, and standalone clients' sender threads write whole WebSocket frames,
//! report them, and end their session after a close frame or a failed write.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use alloc::{format, vec};

use std::io::Write;
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{
    Board, BoardEvent, Clients, FlashUpdate, FlashWorker, Flasher, HttpGet, HubLink, Shell,
    client_message_fits, client_text, close_payload, fetch_range,
};
use crate::{
    CapturedFrame, ConnId, FetchId, Health, HubTarget, Instant, Link, OtaSink, SendFailed,
    ShellEvent, ShellIo,
};
use espcam_proto::control::MAX_CONTROL_MESSAGE;

/// Serves one answer: a status and a body read in pieces of at most `piece` bytes.
struct FakeHttp {
    status: u16,
    body: Vec<u8>,
    piece: usize,
    fail_read: bool,
    asked: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeHttp {
    fn new(status: u16, body: &[u8]) -> Self {
        Self {
            status,
            body: body.to_vec(),
            piece: 3,
            fail_read: false,
            asked: Arc::default(),
        }
    }
}

impl HttpGet for FakeHttp {
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
        let range = headers.iter().find(|(k, _)| *k == "Range").unwrap().1;
        self.asked.lock().unwrap().push((url.into(), range.into()));
        Ok(self.status)
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        if self.fail_read {
            return Err("connection reset".into());
        }
        let n = buf.len().min(self.piece).min(self.body.len());
        buf[..n].copy_from_slice(&self.body[..n]);
        self.body.drain(..n);
        Ok(n)
    }
}

#[test]
fn a_range_is_the_body_of_a_206_read_to_one_byte_more_than_asked() {
    let mut http = FakeHttp::new(206, b"0123456789");
    let body = fetch_range(&mut http, "http://hub/img", 100, 10).unwrap();
    assert_eq!(body, b"0123456789");
    assert_eq!(
        http.asked.lock().unwrap()[0],
        ("http://hub/img".to_string(), "bytes=100-109".to_string())
    );
    // A longer body is cut at len + 1, so the core sees it is too long.
    let mut http = FakeHttp::new(206, &[7u8; 100]);
    assert_eq!(fetch_range(&mut http, "u", 0, 10).unwrap().len(), 11);
    let mut http = FakeHttp::new(200, b"whole image");
    assert_eq!(
        fetch_range(&mut http, "u", 0, 10),
        Err("HTTP 200, expected 206 Partial Content".into())
    );
    let mut http = FakeHttp::new(206, b"x");
    http.fail_read = true;
    assert_eq!(
        fetch_range(&mut http, "u", 0, 10),
        Err("reading the body: connection reset".into())
    );
}

type Log = Arc<Mutex<Vec<String>>>;

struct FakeFlash {
    log: Log,
    fail_write_at: Option<usize>,
}

struct FakeUpdate<'a> {
    log: &'a Log,
    written: usize,
    fail_write_at: Option<usize>,
    done: bool,
}

impl Flasher for FakeFlash {
    type Update<'a> = FakeUpdate<'a>;
    fn begin(&mut self, size: u32) -> Result<FakeUpdate<'_>, String> {
        self.log.lock().unwrap().push(format!("begin {size}"));
        Ok(FakeUpdate {
            log: &self.log,
            written: 0,
            fail_write_at: self.fail_write_at,
            done: false,
        })
    }
    fn confirm(&mut self) {
        self.log.lock().unwrap().push("confirm".into());
    }
    fn rollback(&mut self) {
        self.log.lock().unwrap().push("rollback".into());
    }
}

impl FlashUpdate for FakeUpdate<'_> {
    fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        if self.fail_write_at == Some(self.written) {
            return Err("esp_ota_write: ESP_ERR_FLASH_OP_FAIL".into());
        }
        self.written += chunk.len();
        self.log
            .lock()
            .unwrap()
            .push(format!("write {}", chunk.len()));
        Ok(())
    }
    fn complete(mut self) -> Result<(), String> {
        self.done = true;
        self.log
            .lock()
            .unwrap()
            .push(format!("complete {}", self.written));
        Ok(())
    }
}

impl Drop for FakeUpdate<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.log.lock().unwrap().push("aborted".into());
        }
    }
}

fn worker(
    capacity: u32,
    fail_write_at: Option<usize>,
    http: FakeHttp,
) -> (FlashWorker, Log, Receiver<ShellEvent>) {
    let log = Log::default();
    let (tx, rx) = channel();
    let flash = FakeFlash {
        log: log.clone(),
        fail_write_at,
    };
    let w = FlashWorker::spawn(
        flash,
        move || http,
        capacity,
        64 * 1024,
        move |e| {
            let _ = tx.send(e);
        },
        || {},
    )
    .unwrap();
    (w, log, rx)
}

/// Waits until the worker logged `n` entries.
fn logged(log: &Log, n: usize) -> Vec<String> {
    for _ in 0..200 {
        if log.lock().unwrap().len() >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    log.lock().unwrap().clone()
}

#[test]
fn the_worker_runs_an_update_in_order_and_fetches_on_its_thread() {
    let (mut w, log, events) = worker(1000, None, FakeHttp::new(206, b"abcd"));
    w.begin(8).unwrap();
    w.fetch(FetchId(1), "http://hub/i".into(), 0, 4);
    let Ok(ShellEvent::OtaData(id, Ok(body))) = events.recv_timeout(Duration::from_secs(5)) else {
        panic!("no fetch result");
    };
    assert_eq!((id, body), (FetchId(1), b"abcd".to_vec()));
    w.write(b"abcd").unwrap();
    w.write(b"efgh").unwrap();
    w.finish().unwrap();
    w.confirm();
    w.rollback();
    assert_eq!(
        logged(&log, 6),
        [
            "begin 8",
            "write 4",
            "write 4",
            "complete 8",
            "confirm",
            "rollback"
        ]
    );
    // Too big for the slot: refused before the worker is asked.
    assert_eq!(
        w.begin(1001).unwrap_err().0,
        "image of 1001 bytes does not fit the 1000-byte OTA partition"
    );
}

#[test]
fn a_failed_write_is_reported_by_the_next_call_and_abort_drops_the_update() {
    let (mut w, log, _events) = worker(1000, Some(4), FakeHttp::new(206, b""));
    w.begin(12).unwrap();
    w.write(b"abcd").unwrap();
    w.write(b"efgh").unwrap(); // fails on the worker
    logged(&log, 2);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        w.write(b"ijkl").unwrap_err().0,
        "esp_ota_write: ESP_ERR_FLASH_OP_FAIL"
    );
    w.abort();
    assert_eq!(logged(&log, 3), ["begin 12", "write 4", "aborted"]);
    // A new update starts clean.
    w.begin(4).unwrap();
    assert_eq!(logged(&log, 4)[3], "begin 4");
}

/// A socket: what was written, and whether writes fail.
#[derive(Clone, Default)]
struct FakeSock {
    bytes: Arc<Mutex<Vec<u8>>>,
    broken: bool,
}

impl Write for FakeSock {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.broken {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn adopt(
    clients: &mut Clients,
    conn: ConnId,
    key: i32,
    sock: FakeSock,
) -> (Receiver<ShellEvent>, Receiver<bool>) {
    let (tx, rx) = channel();
    let (end_tx, end_rx) = channel();
    clients
        .adopt(
            conn,
            key,
            sock,
            64 * 1024,
            move |e| tx.send(e).is_ok(),
            move |end_session| {
                let _ = end_tx.send(end_session);
            },
        )
        .unwrap();
    (rx, end_rx)
}

#[test]
fn a_client_thread_writes_frames_reports_them_and_ends_the_session_after_a_close() {
    let mut clients = Clients::default();
    let conn = ConnId(3);
    let sock = FakeSock::default();
    let (events, end) = adopt(&mut clients, conn, 41, sock.clone());
    assert_eq!(clients.conn_of(41), Some(conn));
    assert_eq!(clients.conn_of(42), None);
    clients.send(conn, 0x2, Arc::from(&b"JPEG"[..])).unwrap();
    assert_eq!(
        events.recv_timeout(Duration::from_secs(5)),
        Ok(ShellEvent::FrameSent(conn))
    );
    clients.send(conn, 0x1, Arc::from(&b"hi"[..])).unwrap();
    assert!(clients.close(conn, 1000, "bye"));
    assert!(!clients.contains(conn));
    assert_eq!(end.recv_timeout(Duration::from_secs(5)), Ok(true));
    let mut expected = vec![0x82, 4];
    expected.extend_from_slice(b"JPEG");
    expected.extend_from_slice(&[0x81, 2]);
    expected.extend_from_slice(b"hi");
    expected.extend_from_slice(&[0x88, 5]);
    expected.extend_from_slice(&close_payload(1000, "bye"));
    assert_eq!(*sock.bytes.lock().unwrap(), expected);
    assert_eq!(close_payload(1000, "bye"), [0x03, 0xE8, b'b', b'y', b'e']);
    // Gone: sends fail, so the core closes it.
    assert!(clients.send(conn, 0x2, Arc::from(&b"x"[..])).is_err());
    assert!(!clients.close(conn, 1000, ""));
}

#[test]
fn a_failed_write_reports_the_close_and_a_forgotten_client_leaves_its_socket() {
    let mut clients = Clients::default();
    let (a, b) = (ConnId(1), ConnId(2));
    let broken = FakeSock {
        broken: true,
        ..FakeSock::default()
    };
    let (events, end) = adopt(&mut clients, a, 10, broken);
    clients.send(a, 0x2, Arc::from(&b"JPEG"[..])).unwrap();
    assert_eq!(
        events.recv_timeout(Duration::from_secs(5)),
        Ok(ShellEvent::Closed(a))
    );
    assert_eq!(end.recv_timeout(Duration::from_secs(5)), Ok(true));

    let (_events, end) = adopt(&mut clients, b, 11, FakeSock::default());
    assert_eq!(clients.conns(), [a, b]);
    clients.forget(b);
    assert_eq!(
        end.recv_timeout(Duration::from_secs(5)),
        Ok(false),
        "the session is not ended twice"
    );
}

#[test]
fn only_whole_non_empty_text_within_the_limit_is_a_client_message() {
    assert_eq!(client_text(true, b"ping\0"), Some("ping".into()));
    assert_eq!(client_text(true, b"ping"), Some("ping".into()));
    assert_eq!(client_text(true, b"\0"), None);
    assert_eq!(client_text(false, b"ping\0"), None);
    assert!(client_message_fits(MAX_CONTROL_MESSAGE + 1));
    assert!(!client_message_fits(MAX_CONTROL_MESSAGE + 2));
}

/// A board whose drivers only record what the shell asked of them.
struct FakeBoard {
    did: Log,
    dial_fails: bool,
}

struct FakeLink(ConnId, Log);

impl HubLink for FakeLink {
    fn send_text(&mut self, text: &str) -> Result<(), SendFailed> {
        self.1
            .lock()
            .unwrap()
            .push(format!("text {} {text}", self.0.get()));
        Ok(())
    }
    fn send_frame(&mut self, head: &[u8], jpeg: &[u8]) -> Result<(), SendFailed> {
        let line = format!("frame {} {}+{}", self.0.get(), head.len(), jpeg.len());
        self.1.lock().unwrap().push(line);
        Ok(())
    }
    fn close(self, code: u16, reason: &str) {
        let line = format!("close {} {code} {reason}", self.0.get());
        self.1.lock().unwrap().push(line);
    }
}

impl Board for FakeBoard {
    type Frame = Vec<u8>;
    type Link = FakeLink;
    type Pin = &'static str;
    type Client = i32;
    fn now(&self) -> Instant {
        Instant::ZERO
    }
    fn dial(&mut self, conn: ConnId, url: &str, tls: bool, pin: &&'static str) -> Option<FakeLink> {
        let line = format!("dial {} {url} tls={tls} pin={pin}", conn.get());
        self.did.lock().unwrap().push(line);
        (!self.dial_fails).then(|| FakeLink(conn, self.did.clone()))
    }
    fn capture(&mut self) -> Option<(CapturedFrame, Vec<u8>)> {
        None
    }
    fn health(&mut self) -> Health {
        Health {
            heap_free: 1,
            psram_free: 2,
            rssi: None,
        }
    }
    fn wall_clock(&mut self) -> Option<u64> {
        None
    }
    fn restart(&mut self, reason: &str, rollback: bool) {
        let line = format!("restart {reason} rollback={rollback}");
        self.did.lock().unwrap().push(line);
    }
    fn adopt(&mut self, conn: ConnId, client: i32, _clients: &mut Clients) -> bool {
        self.did
            .lock()
            .unwrap()
            .push(format!("adopt {} {client}", conn.get()));
        false
    }
    fn refuse(&mut self, client: i32, code: u16, _: &str) {
        self.did
            .lock()
            .unwrap()
            .push(format!("refuse {client} {code}"));
    }
    fn feed(&mut self) {
        self.did.lock().unwrap().push("feed".into());
    }
}

fn shell(dial_fails: bool) -> (Shell<FakeBoard>, Log, Receiver<BoardEvent<i32>>) {
    let did = Log::default();
    let board = FakeBoard {
        did: did.clone(),
        dial_fails,
    };
    let hubs = vec![
        (HubTarget::parse("ws://a.lan", 6971, 6972).unwrap(), "none"),
        (
            HubTarget::parse("wss://b.lan", 6971, 6972).unwrap(),
            "pin-b",
        ),
    ];
    let (tx, rx) = channel();
    (Shell::new(board, hubs, None, tx), did, rx)
}

#[test]
fn the_shell_dials_the_current_hub_and_routes_each_connection_to_its_link() {
    let (mut sh, did, events) = shell(false);
    let (c1, c2) = (ConnId(1), ConnId(2));
    sh.connect(c1, Link::Control);
    sh.set_hub(1);
    sh.connect(c2, Link::Stream);
    sh.send_text(c1, "hello".into()).unwrap();
    sh.send_frame(c2, &[0; 28], &vec![0xFF; 100]).unwrap();
    // Not a link and not a client: the core is told the send failed.
    assert_eq!(sh.send_text(ConnId(9), "x".into()), Err(SendFailed));
    assert_eq!(sh.send_frame(ConnId(9), &[], &vec![]), Err(SendFailed));
    sh.close(c1, 1000, "bye");
    sh.forget(c2);
    sh.close_all(1012, "restarting"); // nothing left to close
    assert_eq!(
        *did.lock().unwrap(),
        [
            "dial 1 ws://a.lan:6971/ws/camera tls=false pin=none",
            "dial 2 wss://b.lan:6972/ws/stream tls=true pin=pin-b",
            "text 1 hello",
            "frame 2 28+100",
            "feed",
            "close 1 1000 bye",
        ]
    );
    assert!(events.try_recv().is_err(), "nothing failed");
}

#[test]
fn what_fails_at_once_is_reported_through_the_main_loop() {
    let (mut sh, did, events) = shell(true);
    sh.connect(ConnId(1), Link::Control);
    assert!(matches!(
        events.try_recv(),
        Ok(BoardEvent::Core(ShellEvent::Closed(c))) if c == ConnId(1)
    ));
    // A client the board could not give a thread to is closed for the core.
    crate::blocking::BoardIo::adopt(&mut sh, ConnId(2), 40);
    assert!(matches!(
        events.try_recv(),
        Ok(BoardEvent::Core(ShellEvent::Closed(c))) if c == ConnId(2)
    ));
    // No OTA partition: the fetch fails instead of never answering.
    sh.ota_fetch(FetchId(5), "/api/firmware/x/image?key=k", 0, 16);
    let Ok(BoardEvent::Core(ShellEvent::OtaData(id, Err(e)))) = events.try_recv() else {
        panic!("no answer to the fetch");
    };
    assert_eq!(
        (id, e.as_str()),
        (FetchId(5), "this board has no OTA partition")
    );
    // Without a flash worker a rollback is a plain restart.
    sh.restart(true, "confirm window passed");
    assert_eq!(
        did.lock().unwrap().last().unwrap(),
        "restart confirm window passed rollback=false"
    );
}

#[test]
fn image_urls_are_resolved_against_the_current_hub() {
    let log = Log::default();
    let (tx, rx) = channel();
    let http = FakeHttp::new(206, b"");
    let asked = http.asked.clone();
    let flash = FakeFlash {
        log: log.clone(),
        fail_write_at: None,
    };
    let report = move |e| {
        let _ = tx.send(BoardEvent::<i32>::Core(e));
    };
    let w = FlashWorker::spawn(flash, move || http, 100, 64 * 1024, report, || {}).unwrap();
    let (mut sh, did, _) = shell(false);
    sh.flash = Some(w);
    sh.set_hub(1);
    sh.ota_fetch(FetchId(1), "/api/firmware/x/image?key=k", 0, 16);
    assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok());
    assert_eq!(
        asked.lock().unwrap()[0].0,
        "https://b.lan:6971/api/firmware/x/image?key=k"
    );
    sh.confirm_image();
    sh.restart(true, "confirm window passed");
    assert_eq!(logged(&log, 2), ["confirm", "rollback"]);
    assert_eq!(
        did.lock().unwrap().last().unwrap(),
        "restart confirm window passed rollback=true"
    );
}

#[test]
fn the_wall_clock_is_read_in_unix_microseconds() {
    let us = super::unix_micros().unwrap();
    // After 2024-01-01 and before 2100: µs, not ms or s.
    assert!(
        us > 1_704_067_200_000_000 && us < 4_102_444_800_000_000,
        "{us}"
    );
}

/// A socket that records whether it was dropped.
struct Owned(Arc<Mutex<bool>>);

impl Write for Owned {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        *self.0.lock().unwrap() = true;
    }
}

#[test]
fn a_client_socket_is_never_dropped_so_the_server_keeps_its_descriptor() {
    let mut clients = Clients::default();
    let dropped = Arc::new(Mutex::new(false));
    let (end_tx, end_rx) = channel();
    let sock = Owned(dropped.clone());
    let end = move |close| {
        let _ = end_tx.send(close);
    };
    clients
        .adopt(ConnId(1), 5, sock, 64 * 1024, |_| true, end)
        .unwrap();
    assert!(clients.close(ConnId(1), 1000, "bye"));
    assert_eq!(end_rx.recv_timeout(Duration::from_secs(5)), Ok(true));
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !*dropped.lock().unwrap(),
        "the shell's server owns the socket"
    );
}

/// A socket whose writes wait until the test lets them through.
struct Stuck(Receiver<()>);

impl Write for Stuck {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.recv();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stuck_client_fills_its_queue_and_sends_fail_instead_of_waiting() {
    let mut clients = Clients::default();
    let (release, gate) = channel();
    let conn = ConnId(1);
    clients
        .adopt(conn, 5, Stuck(gate), 64 * 1024, |_| true, |_| {})
        .unwrap();
    let text = || Arc::from(&b"stats"[..]);
    // One message in the thread's hands, CLIENT_QUEUE behind it; then the queue is full.
    let mut accepted = 0;
    while clients.send(conn, 0x1, text()).is_ok() {
        accepted += 1;
        assert!(accepted <= super::CLIENT_QUEUE + 1, "the queue never fills");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(accepted >= super::CLIENT_QUEUE, "{accepted}");
    drop(release);
}
