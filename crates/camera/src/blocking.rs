//! The blocking shell's threads, queues and main loop (feature `std`; the ESP32-S3 firmware
//! runs on esp-idf's std): written once here and tested on the host, so the firmware only
//! implements the small traits below with esp-idf calls.
//!
//! - [`FlashWorker`]: the core's [`OtaSink`] on a worker thread that owns the board's flash
//!   ([`Flasher`]) and runs jobs in the order the core asked for them: begin (erasing the
//!   slot takes seconds, never on the main loop), write, fetch ([`fetch_range`] over
//!   [`HttpGet`]), finish; confirm and rollback. A write error is returned by the sink's next
//!   call.
//! - [`Clients`]: standalone clients, each with a sender thread that writes WebSocket frames
//!   straight to its socket, so one slow client never delays the others or the main loop.
//! - [`Shell`]: [`ShellIo`] and [`BoardIo`] on a [`Board`] (the board's drivers) and its
//!   [`HubLink`]s: every message to its hub link or client, hub failover, image URLs against
//!   the current hub, firmware jobs to the [`FlashWorker`], a failed open reported as closed.
//! - [`run`]: the main loop: poll the [`Driver`], wait for a [`BoardEvent`] at most as long as
//!   it says, admit or refuse standalone clients, hand the event over.
//!
//! This module must never decide a range, a retry, a URL or which frame a client gets: the
//! core does; it only moves jobs, bytes and events between threads.

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use std::io::Write;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, channel, sync_channel};

use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::standalone::{OPCODE_BINARY, OPCODE_CLOSE, OPCODE_TEXT, server_frame_head};

use crate::driver::{Driver, SendFailed, ShellEvent, ShellIo};
use crate::ota::{check_image_fits, check_range_status, range_body_limit, range_header};
use crate::target::HubTarget;
use crate::time::Instant;
use crate::types::{CapturedFrame, Health, Link};
use crate::types::{ConnId, FetchId, OtaSink, OtaSinkError, Sensor};

/// The board's flash, owned by the [`FlashWorker`]'s thread.
pub trait Flasher: Send + 'static {
    /// An update in progress; dropping it aborts it.
    type Update<'a>: FlashUpdate
    where
        Self: 'a;
    /// Opens an update of `size` bytes (erases what it needs).
    fn begin(&mut self, size: u32) -> Result<Self::Update<'_>, String>;
    /// Marks the running image valid for good.
    fn confirm(&mut self);
    /// Marks the running image invalid and restarts into the previous one.
    fn rollback(&mut self);
}

/// An update opened by [`Flasher::begin`].
pub trait FlashUpdate {
    /// Appends `chunk`.
    fn write(&mut self, chunk: &[u8]) -> Result<(), String>;
    /// Checks the image and makes it the boot partition.
    fn complete(self) -> Result<(), String>;
}

/// One HTTP client request at a time (a firmware image's ranges); made on the worker
/// thread, so it need not be `Send`.
pub trait HttpGet {
    /// Sends `GET url` with `headers`; the answer's status.
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Result<u16, String>;
    /// Reads the answer's body; `Ok(0)` at its end.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String>;
}

/// `GET url` with the core's `Range` header: the body of a 206, cut at the core's limit
/// (the core refuses a longer one), or why not.
pub fn fetch_range(
    http: &mut impl HttpGet,
    url: &str,
    offset: u32,
    len: u32,
) -> Result<Vec<u8>, String> {
    let range = range_header(offset, len);
    let status = http.get(url, &[("Range", range.as_str())])?;
    check_range_status(status)?;
    let mut body = vec![0u8; range_body_limit(len)];
    let mut n = 0;
    while n < body.len() {
        match http.read(&mut body[n..]) {
            Ok(0) => break,
            Ok(r) => n += r,
            Err(e) => return Err(alloc::format!("reading the body: {e}")),
        }
    }
    body.truncate(n);
    Ok(body)
}

/// What the worker does, in order.
#[derive(Debug)]
enum Job {
    Begin(u32),
    Write(Vec<u8>),
    Fetch(FetchId, String, u32, u32),
    Finish(Sender<Result<(), String>>),
    Abort,
    Confirm,
    Rollback,
}

/// The main loop's handle on the OTA worker; the core's [`OtaSink`].
#[derive(Debug, Clone)]
pub struct FlashWorker {
    jobs: Sender<Job>,
    /// The first error of a queued job, for the sink's next call.
    failed: Arc<Mutex<Option<String>>>,
    /// Bytes the inactive slot holds (0: no OTA partition).
    capacity: u32,
    /// Called every second while `finish` waits (the task watchdog).
    keepalive: fn(),
}

const STOPPED: &str = "the OTA worker has stopped";

impl FlashWorker {
    /// Starts the worker thread (`stack` bytes) on `flash`, with the HTTP client `http`
    /// makes there; fetch results go to `report`.
    pub fn spawn<F: Flasher, H: HttpGet>(
        flash: F,
        http: impl FnOnce() -> H + Send + 'static,
        capacity: u32,
        stack: usize,
        report: impl Fn(ShellEvent) + Send + 'static,
        keepalive: fn(),
    ) -> std::io::Result<Self> {
        let (jobs, rx) = channel();
        let failed = Arc::new(Mutex::new(None));
        let f = failed.clone();
        std::thread::Builder::new()
            .name("ota".into())
            .stack_size(stack)
            .spawn(move || worker(flash, http(), rx, report, f))?;
        Ok(Self {
            jobs,
            failed,
            capacity,
            keepalive,
        })
    }

    fn send(&self, job: Job) -> Result<(), OtaSinkError> {
        if let Some(e) = self.failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(OtaSinkError(e));
        }
        self.jobs
            .send(job)
            .map_err(|_| OtaSinkError(STOPPED.into()))
    }

    /// [`ShellIo::ota_fetch`]: `url` is already absolute; the answer comes back as
    /// [`ShellEvent::OtaData`].
    pub fn fetch(&self, fetch: FetchId, url: String, offset: u32, len: u32) {
        let _ = self.jobs.send(Job::Fetch(fetch, url, offset, len));
    }

    /// [`ShellIo::confirm_image`].
    pub fn confirm(&self) {
        let _ = self.jobs.send(Job::Confirm);
    }

    /// [`ShellIo::restart`] with `rollback`.
    pub fn rollback(&self) {
        let _ = self.jobs.send(Job::Rollback);
    }
}

impl OtaSink for FlashWorker {
    fn begin(&mut self, size: u32) -> Result<(), OtaSinkError> {
        check_image_fits(size, self.capacity)?;
        self.failed.lock().map(|mut f| *f = None).ok();
        self.send(Job::Begin(size))
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), OtaSinkError> {
        self.send(Job::Write(chunk.to_vec()))
    }

    fn finish(&mut self) -> Result<(), OtaSinkError> {
        let (tx, rx) = channel();
        self.send(Job::Finish(tx))?;
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(r) => return r.map_err(OtaSinkError),
                Err(RecvTimeoutError::Timeout) => (self.keepalive)(),
                Err(_) => return Err(OtaSinkError(STOPPED.into())),
            }
        }
    }

    fn abort(&mut self) {
        let _ = self.jobs.send(Job::Abort);
    }
}

fn worker<F: Flasher, H: HttpGet>(
    mut flash: F,
    mut http: H,
    jobs: Receiver<Job>,
    report: impl Fn(ShellEvent),
    failed: Arc<Mutex<Option<String>>>,
) {
    let fail = |e: String| {
        if let Ok(mut f) = failed.lock() {
            f.get_or_insert(e);
        }
    };
    let mut fetch = |fetch, url: String, offset, len| {
        let body = fetch_range(&mut http, &url, offset, len);
        report(ShellEvent::OtaData(fetch, body));
    };
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Begin(size) => match flash.begin(size) {
                Ok(mut update) => loop {
                    // Jobs while the update is open, until it is finished or aborted.
                    match jobs.recv() {
                        Ok(Job::Write(chunk)) => {
                            if let Err(e) = update.write(&chunk) {
                                fail(e);
                            }
                        }
                        Ok(Job::Fetch(id, url, offset, len)) => fetch(id, url, offset, len),
                        Ok(Job::Finish(reply)) => {
                            let _ = reply.send(update.complete());
                            break;
                        }
                        // Dropping the update aborts it.
                        Ok(Job::Abort | Job::Begin(_)) | Err(_) => break,
                        Ok(Job::Confirm | Job::Rollback) => {}
                    }
                },
                Err(e) => fail(e),
            },
            Job::Fetch(id, url, offset, len) => fetch(id, url, offset, len),
            Job::Confirm => flash.confirm(),
            Job::Rollback => flash.rollback(),
            Job::Write(_) | Job::Finish(_) | Job::Abort => {}
        }
    }
}

/// Messages queued towards one client; the core keeps at most one frame in flight per
/// client, so a full queue means texts piled up behind a stuck socket.
pub const CLIENT_QUEUE: usize = 8;

/// One message towards a client: the WebSocket opcode and the payload.
type Message = (u8, Arc<[u8]>);

/// A close frame's payload: the code, big-endian, then the reason (RFC 6455 §5.5.1).
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason.as_bytes()].concat()
}

/// Standalone clients the core admitted, by the core's id, each with its sender thread;
/// `key` is the shell's name for the socket (the socket descriptor on the board).
#[derive(Debug, Default)]
pub struct Clients {
    by_conn: BTreeMap<ConnId, (i32, SyncSender<Message>)>,
}

impl Clients {
    /// Keeps client `conn` on socket `key` with a sender thread (`stack` bytes) writing to
    /// `sock`. The thread reports a written frame as [`ShellEvent::FrameSent`] and a failed
    /// write as [`ShellEvent::Closed`] through `report` (false: nobody listens any more), and
    /// ends with `end(true)` after a close frame or a failure, so the shell ends the session;
    /// `end(false)` when [`Clients::forget`] dropped its queue (the socket is gone already).
    /// `sock` is never dropped, not even when the thread cannot start: the shell's server
    /// owns the socket behind it (a `TcpStream` made from the server's descriptor).
    pub fn adopt<W: Write + Send + 'static>(
        &mut self,
        conn: ConnId,
        key: i32,
        sock: W,
        stack: usize,
        report: impl Fn(ShellEvent) -> bool + Send + 'static,
        end: impl FnOnce(bool) + Send + 'static,
    ) -> std::io::Result<()> {
        let (tx, rx) = sync_channel::<Message>(CLIENT_QUEUE);
        let mut sock = core::mem::ManuallyDrop::new(sock);
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(move || {
                while let Ok((opcode, payload)) = rx.recv() {
                    let (head, n) = server_frame_head(opcode, payload.len());
                    if sock
                        .write_all(&head[..n])
                        .and_then(|()| sock.write_all(&payload))
                        .is_err()
                    {
                        report(ShellEvent::Closed(conn));
                        return end(true);
                    }
                    if opcode == OPCODE_CLOSE
                        || (opcode == OPCODE_BINARY && !report(ShellEvent::FrameSent(conn)))
                    {
                        return end(true);
                    }
                }
                end(false);
            })?;
        self.by_conn.insert(conn, (key, tx));
        Ok(())
    }

    /// The core's id for the client on socket `key`, if it was admitted.
    pub fn conn_of(&self, key: i32) -> Option<ConnId> {
        self.by_conn
            .iter()
            .find(|(_, (k, _))| *k == key)
            .map(|(c, _)| *c)
    }

    /// Whether `conn` is one of these clients.
    pub fn contains(&self, conn: ConnId) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// To `conn`'s sender thread; full (stuck) or gone: the core closes it.
    pub fn send(&self, conn: ConnId, opcode: u8, payload: Arc<[u8]>) -> Result<(), SendFailed> {
        let (_, tx) = self.by_conn.get(&conn).ok_or(SendFailed)?;
        tx.try_send((opcode, payload)).map_err(|_| SendFailed)
    }

    /// A close frame behind whatever the thread still has to write; it ends the session
    /// after. False: `conn` is not a client.
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) -> bool {
        let Some((_, tx)) = self.by_conn.remove(&conn) else {
            return false;
        };
        let _ = tx.try_send((OPCODE_CLOSE, close_payload(code, reason).into()));
        true
    }

    /// Drops `conn`'s queue: its thread ends without touching the socket.
    pub fn forget(&mut self, conn: ConnId) {
        self.by_conn.remove(&conn);
    }

    /// Every client's id.
    pub fn conns(&self) -> Vec<ConnId> {
        self.by_conn.keys().copied().collect()
    }
}

/// What the board's driver tasks and threads report to the main loop.
#[derive(Debug)]
pub enum BoardEvent<C> {
    /// Hub links, client senders and firmware fetches, for the [`Driver`].
    Core(ShellEvent),
    /// A standalone client connected (`C`: the shell's handle to answer it); the core
    /// decides whether it may stay.
    ClientOpen(C),
    /// A text message from the standalone client on socket `key`.
    ClientText(i32, String),
    /// The standalone client on socket `key` went away.
    ClientClosed(i32),
}

/// The part of a board's I/O the main loop needs beside [`ShellIo`].
pub trait BoardIo: ShellIo {
    /// A new standalone client's handle, as [`BoardEvent::ClientOpen`] carries it.
    type Client;
    /// Keeps the client the core admitted as `conn`.
    fn adopt(&mut self, conn: ConnId, client: Self::Client);
    /// Closes a client the core refused.
    fn refuse(&mut self, client: Self::Client, code: u16, reason: &str);
    /// The core's id of the admitted client on socket `key`.
    fn conn_of(&self, key: i32) -> Option<ConnId>;
    /// Called once per pass, before anything else (the task watchdog).
    fn feed(&mut self) {}
}

/// One pass of the main loop: poll, wait at most `max` for one event, handle it.
pub fn step<S: Sensor, O: OtaSink, I: BoardIo>(
    driver: &mut Driver<S, O, I::Jpeg>,
    io: &mut I,
    events: &Receiver<BoardEvent<I::Client>>,
    max: Duration,
) {
    io.feed();
    let wait = driver.poll(io, max);
    let event = match events.recv_timeout(wait) {
        Ok(BoardEvent::Core(event)) => Some(event),
        Ok(BoardEvent::ClientOpen(client)) => {
            match driver.client_open(io) {
                Ok(conn) => io.adopt(conn, client),
                Err(r) => io.refuse(client, r.code, r.reason),
            }
            None
        }
        Ok(BoardEvent::ClientText(key, text)) => io.conn_of(key).map(|c| ShellEvent::Text(c, text)),
        Ok(BoardEvent::ClientClosed(key)) => io.conn_of(key).map(ShellEvent::Closed),
        Err(_) => None,
    };
    driver.handle(io, event);
}

/// The board's main loop, for good: [`step`] after [`step`].
pub fn run<S: Sensor, O: OtaSink, I: BoardIo>(
    mut driver: Driver<S, O, I::Jpeg>,
    io: &mut I,
    events: &Receiver<BoardEvent<I::Client>>,
    max: Duration,
) -> ! {
    loop {
        step(&mut driver, io, events, max);
    }
}

/// A hub link of the board (a WebSocket client the board opened for [`Shell`]).
pub trait HubLink {
    /// Sends one text message, returning once the socket took it.
    fn send_text(&mut self, text: &str) -> Result<(), SendFailed>;
    /// `head` ++ `jpeg` as ONE binary message (fragments: never copy the JPEG).
    fn send_frame(&mut self, head: &[u8], jpeg: &[u8]) -> Result<(), SendFailed>;
    /// Sends a close frame with `code` and `reason` if the link is still open, then ends it.
    fn close(self, code: u16, reason: &str);
}

/// The board's drivers as [`Shell`] uses them: everything else a blocking shell does
/// (which socket a message goes to, hub failover, image URLs, firmware jobs, what a failed
/// open means, a restart's order) is the [`Shell`]'s.
pub trait Board {
    /// A captured frame (its JPEG, in place), held until dropped.
    type Frame: AsRef<[u8]>;
    /// An open or opening hub link.
    type Link: HubLink;
    /// Whom a hub's TLS trusts, as the board's TLS stack takes it.
    type Pin;
    /// A new standalone client's handle ([`BoardEvent::ClientOpen`]).
    type Client;
    /// The monotonic clock.
    fn now(&self) -> Instant;
    /// Starts opening `url` as `conn` (`tls`: `wss://`, trusting `pin`); reports
    /// [`ShellEvent::Connected`] or `Closed` later. `None`: it failed at once.
    fn dial(&mut self, conn: ConnId, url: &str, tls: bool, pin: &Self::Pin) -> Option<Self::Link>;
    /// Grabs the newest frame; `None` when the sensor failed.
    fn capture(&mut self) -> Option<(CapturedFrame, Self::Frame)>;
    /// Heap, PSRAM and RSSI now.
    fn health(&mut self) -> Health;
    /// µs since the Unix epoch right after the wall clock synced; otherwise `None`.
    fn wall_clock(&mut self) -> Option<u64>;
    /// Logs `reason` and restarts, unless `rollback`: then the [`FlashWorker`] restarts
    /// into the previous image once this returns.
    fn restart(&mut self, reason: &str, rollback: bool);
    /// Gives client `conn` its sender thread ([`Clients::adopt`]); false when that failed
    /// (the board closed the client).
    fn adopt(&mut self, conn: ConnId, client: Self::Client, clients: &mut Clients) -> bool;
    /// Closes a client the core refused.
    fn refuse(&mut self, client: Self::Client, code: u16, reason: &str);
    /// Called once per pass and after every blocking send (the task watchdog).
    fn feed(&mut self) {}
}

/// A blocking shell's [`ShellIo`] and [`BoardIo`] on a [`Board`]: the hub links and
/// standalone clients by connection, the hubs in failover order, the firmware worker.
pub struct Shell<B: Board> {
    /// The board's drivers.
    pub board: B,
    hubs: Vec<(HubTarget, B::Pin)>,
    hub: usize,
    links: BTreeMap<ConnId, B::Link>,
    clients: Clients,
    flash: Option<FlashWorker>,
    events: Sender<BoardEvent<B::Client>>,
}

impl<B: Board> core::fmt::Debug for Shell<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let links: Vec<_> = self.links.keys().collect();
        f.debug_struct("Shell")
            .field("hub", &self.hub)
            .field("links", &links)
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

impl<B: Board> Shell<B> {
    /// `hubs` in the configuration's order (empty: standalone); `events` is the main
    /// loop's queue, for what fails at once.
    pub fn new(
        board: B,
        hubs: Vec<(HubTarget, B::Pin)>,
        flash: Option<FlashWorker>,
        events: Sender<BoardEvent<B::Client>>,
    ) -> Self {
        Self {
            board,
            hubs,
            hub: 0,
            links: BTreeMap::new(),
            clients: Clients::default(),
            flash,
            events,
        }
    }

    fn current_hub(&self) -> Option<&(HubTarget, B::Pin)> {
        self.hubs.get(self.hub).or(self.hubs.first())
    }

    fn closed(&self, conn: ConnId) {
        let _ = self.events.send(BoardEvent::Core(ShellEvent::Closed(conn)));
    }
}

impl<B: Board> ShellIo for Shell<B> {
    type Frame = B::Frame;
    type Jpeg = Arc<[u8]>;

    fn now(&self) -> Instant {
        self.board.now()
    }

    fn set_hub(&mut self, index: usize) {
        self.hub = index;
    }

    fn connect(&mut self, conn: ConnId, link: Link) {
        let Some((target, pin)) = self.hubs.get(self.hub).or(self.hubs.first()) else {
            return;
        };
        match self
            .board
            .dial(conn, &target.link_url(link), target.tls(), pin)
        {
            Some(l) => drop(self.links.insert(conn, l)),
            None => self.closed(conn),
        }
    }

    fn send_text(&mut self, conn: ConnId, text: String) -> Result<(), SendFailed> {
        match self.links.get_mut(&conn) {
            Some(l) => l.send_text(&text),
            None => self
                .clients
                .send(conn, OPCODE_TEXT, text.into_bytes().into()),
        }
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        if !self.clients.close(conn, code, reason)
            && let Some(l) = self.links.remove(&conn)
        {
            l.close(code, reason);
        }
    }

    fn forget(&mut self, conn: ConnId) {
        self.links.remove(&conn);
        self.clients.forget(conn);
    }

    fn close_all(&mut self, code: u16, reason: &str) {
        let mut conns: Vec<ConnId> = self.links.keys().copied().collect();
        conns.extend(self.clients.conns());
        for conn in conns {
            self.close(conn, code, reason);
        }
        // Let the sender threads write the close frames.
        std::thread::sleep(Duration::from_millis(200));
    }

    fn capture(&mut self) -> Option<(CapturedFrame, B::Frame)> {
        self.board.capture()
    }

    fn send_frame(
        &mut self,
        conn: ConnId,
        head: &[u8],
        frame: &B::Frame,
    ) -> Result<(), SendFailed> {
        let link = self.links.get_mut(&conn).ok_or(SendFailed)?;
        let sent = link.send_frame(head, frame.as_ref());
        self.board.feed(); // a send may block for the send timeout
        sent
    }

    fn share(&mut self, frame: B::Frame) -> Arc<[u8]> {
        Arc::from(frame.as_ref())
    }

    fn send_jpeg(&mut self, conn: ConnId, jpeg: Arc<[u8]>) -> Result<(), SendFailed> {
        self.clients.send(conn, OPCODE_BINARY, jpeg)
    }

    fn restart(&mut self, rollback: bool, reason: &str) {
        let rollback = rollback && self.flash.is_some();
        self.board.restart(reason, rollback);
        if let (true, Some(flash)) = (rollback, &self.flash) {
            flash.rollback();
        }
    }

    fn ota_fetch(&mut self, fetch: FetchId, url: &str, offset: u32, len: u32) {
        let url = match self.current_hub() {
            Some((target, _)) => target.image_url(url),
            None => url.to_string(),
        };
        match &self.flash {
            Some(flash) => flash.fetch(fetch, url, offset, len),
            None => {
                let failed = Err("this board has no OTA partition".to_string());
                let _ = self
                    .events
                    .send(BoardEvent::Core(ShellEvent::OtaData(fetch, failed)));
            }
        }
    }

    fn confirm_image(&mut self) {
        if let Some(flash) = &self.flash {
            flash.confirm();
        }
    }

    fn health(&mut self) -> Health {
        self.board.health()
    }

    fn wall_clock(&mut self) -> Option<u64> {
        self.board.wall_clock()
    }
}

impl<B: Board> BoardIo for Shell<B> {
    type Client = B::Client;

    fn adopt(&mut self, conn: ConnId, client: B::Client) {
        if !self.board.adopt(conn, client, &mut self.clients) {
            self.closed(conn);
        }
    }

    fn refuse(&mut self, client: B::Client, code: u16, reason: &str) {
        self.board.refuse(client, code, reason);
    }

    fn conn_of(&self, key: i32) -> Option<ConnId> {
        self.clients.conn_of(key)
    }

    fn feed(&mut self) {
        self.board.feed();
    }
}

/// The wall clock now, µs since the Unix epoch (`None` before 1970: a clock never set).
/// The shell reads it right after a time sync ([`ShellIo::wall_clock`]).
pub fn unix_micros() -> Option<u64> {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    u64::try_from(since.ok()?.as_micros()).ok()
}

/// A standalone client's message as the core takes it: only whole, non-empty text means
/// something (esp_http_server appends a NUL to text, which is cut). `None` otherwise.
pub fn client_text(whole_text: bool, buf: &[u8]) -> Option<String> {
    let text = buf.strip_suffix(&[0]).unwrap_or(buf);
    (whole_text && !text.is_empty()).then(|| String::from_utf8_lossy(text).to_string())
}

/// Whether a client message of `len` bytes may be read (at most the control-message
/// limit, plus the driver's NUL); a longer one is never buffered: drop the client.
pub fn client_message_fits(len: usize) -> bool {
    len <= MAX_CONTROL_MESSAGE + 1
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "blocking_tests.rs"]
mod tests;
