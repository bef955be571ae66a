//! The network seam: WebSocket clients to the hub's control and stream ports (hub mode), or
//! the HTTP server's `/ws` endpoint (standalone mode, seed 002), behind one map from the
//! core's `ConnId` to a socket.
//!
//! Driver callbacks run on the drivers' tasks and only turn what happened into [`Event`]s for
//! the main loop. Must never retry, reconnect, answer or limit anything on its own: the hub
//! client's auto-reconnect is off, and the core decides (URLs and pins included:
//! `HubTarget::link_url`, `Trust`).
//!
//! Standalone clients each get a sender thread that writes WebSocket frames straight to the
//! client's socket, so one slow client never delays the others or the main loop (the core
//! decides which frame each client gets next; the thread only performs the send and reports
//! it). Sending through esp_http_server instead (`httpd_ws_send_frame_async`, also behind
//! esp-idf-svc's detached sender) would run every client's send on the one httpd task, where
//! a stalled client blocks all of them for the socket's send timeout.
//!
//! One exception the drivers make for us: a peer's close frame is answered inside them
//! (RFC 6455 §5.5.1; esp_http_server with `handle_ws_control_frames` off, as esp-idf-svc
//! registers `/ws`, and esp_transport_ws both reply with an empty close frame before the
//! socket ends), so it arrives here as the socket's end, not as a close frame.

use std::collections::BTreeMap;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::mpsc::{sync_channel, Receiver, Sender, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use esp_idf_svc::hal::delay::TickType;
use esp_idf_svc::handle::RawHandle;
use esp_idf_svc::http::server::ws::{EspHttpWsConnection, EspHttpWsDetachedSender};
use esp_idf_svc::http::server::{Configuration, EspHttpServer};
use esp_idf_svc::io::EspIOError;
use esp_idf_svc::sys::{self, EspError};
use esp_idf_svc::ws::client::{EspWebSocketClient, EspWebSocketClientConfig};
use esp_idf_svc::ws::client::{WebSocketEvent, WebSocketEventType as Ws};
use esp_idf_svc::ws::FrameType;
use espcam_camera::{CapturedFrame, ConnId, FetchId, Health, HubTarget, Instant, Link};
use espcam_camera::{SendFailed, ShellEvent, ShellIo, CLOSE_INTERNAL_ERROR};
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::standalone::{server_frame_head, MAX_CLIENTS, PATH};
use espcam_proto::standalone::{OPCODE_BINARY as BINARY, OPCODE_CLOSE as CLOSE, OPCODE_TEXT};

use crate::camera;
use crate::clock::{self, WallClock};
use crate::ota::{Flash, Job};
use crate::tls::Pin;

/// How long one send may block (the main loop for hub links, a sender thread for clients)
/// before the socket counts as broken.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages queued towards one client; the core keeps at most one frame in flight per
/// client, so a full queue means texts piled up behind a stuck socket.
const CLIENT_QUEUE: usize = 8;

/// What the driver tasks and worker threads report to the main loop.
pub enum Event {
    /// Hub links, client senders and firmware fetches, for the core's driver.
    Core(ShellEvent),
    /// A standalone client connected; the core decides whether it may stay.
    ClientOpen(EspHttpWsDetachedSender),
    /// A text message from the standalone client on socket `fd`.
    ClientText(i32, String),
    /// The standalone client on socket `fd` went away.
    ClientClosed(i32),
}

enum Conn {
    /// Dropping the client stops its task.
    Hub(EspWebSocketClient<'static>),
    /// A standalone client's socket and its sender thread's queue (opcode, payload).
    Client(i32, SyncSender<(u8, Arc<[u8]>)>),
}

/// Every socket the core knows about, and the rest of the board's side of the core's
/// shell loop (`ShellIo`): camera frames, firmware jobs, health, the wall clock.
pub struct Net {
    events: Sender<Event>,
    /// Standalone mode's server: kept to keep serving, and for its handle.
    server: Option<EspHttpServer<'static>>,
    /// Hub mode: every hub of cfg.toml in order (empty: standalone).
    hubs: Vec<(HubTarget, Pin)>,
    /// The core's `Camera::hub_index`: which of `hubs` links go to.
    hub_index: usize,
    conns: BTreeMap<ConnId, Conn>,
    flash: Flash,
    wall: Option<WallClock>,
}

impl Net {
    /// Hub mode (`hubs` not empty; links are opened on request), or standalone mode:
    /// serves `ws://<camera>/ws`.
    pub fn new(
        events: Sender<Event>,
        hubs: Vec<(HubTarget, Pin)>,
        flash: Flash,
    ) -> Result<Self, EspError> {
        let (mut server, mut wall) = (None, None);
        if hubs.is_empty() {
            // The core's client limit, plus room to accept (and refuse) one more.
            let conf = Configuration {
                max_open_sockets: MAX_CLIENTS + 2,
                ..Default::default()
            };
            let s = server.insert(EspHttpServer::new(&conf).map_err(|e| e.0)?);
            let tx = events.clone();
            s.ws_handler(PATH, None, move |ws| on_socket(&tx, ws))?;
            log::info!("server: listening on port 80, path {PATH}");
        } else {
            // SNTP only in hub mode: an access point has no route to a time server.
            wall = Some(WallClock::start()?);
        }
        Ok(Self {
            events,
            server,
            hubs,
            hub_index: 0,
            conns: BTreeMap::new(),
            flash,
            wall,
        })
    }

    /// Which hub the next links go to: the core's `Camera::hub_index` (failover).
    pub fn set_hub(&mut self, index: usize) {
        self.hub_index = index;
    }

    /// The hub links go to now; `None` in standalone mode.
    fn hub(&self) -> Option<&(HubTarget, Pin)> {
        self.hubs.get(self.hub_index).or(self.hubs.first())
    }

    /// Keeps a standalone client the core accepted as `conn`, with its sender thread.
    pub fn adopt(&mut self, conn: ConnId, sender: EspHttpWsDetachedSender) {
        let (fd, events) = (sender.session(), self.events.clone());
        let server = self.server.as_ref().map_or(0, |s| s.handle() as usize);
        let (tx, rx) = sync_channel(CLIENT_QUEUE);
        let thread = std::thread::Builder::new().stack_size(6 * 1024);
        match thread.spawn(move || client_thread(conn, fd, server, rx, events)) {
            Ok(_) => drop(self.conns.insert(conn, Conn::Client(fd, tx))),
            Err(e) => {
                log::warn!("conn {}: no sender thread: {e}", conn.get());
                self.refuse(sender, CLOSE_INTERNAL_ERROR, "out of memory");
                let _ = self.events.send(Event::Core(ShellEvent::Closed(conn)));
            }
        }
    }

    /// Closes a standalone client the core refused.
    pub fn refuse(&self, mut sender: EspHttpWsDetachedSender, code: u16, reason: &str) {
        let _ = sender.send(FrameType::Close, &close_payload(code, reason));
        if let Some(server) = &self.server {
            unsafe { sys::httpd_sess_trigger_close(server.handle(), sender.session()) };
        }
    }

    /// The core's id for the standalone client on socket `fd`, if it was accepted.
    pub fn conn_of(&self, fd: i32) -> Option<ConnId> {
        let mut clients = self.conns.iter();
        clients
            .find(|(_, c)| matches!(c, Conn::Client(f, _) if *f == fd))
            .map(|(c, _)| *c)
    }

    /// To client `conn`'s sender thread; full (stuck) or gone: the core closes it.
    fn queue(&mut self, conn: ConnId, opcode: u8, payload: Arc<[u8]>) -> Result<(), SendFailed> {
        match self.conns.get(&conn) {
            Some(Conn::Client(_, tx)) => tx.try_send((opcode, payload)).map_err(|_| SendFailed),
            _ => Err(SendFailed),
        }
    }
}

impl ShellIo for Net {
    type Frame = camera::Frame;
    type Jpeg = Arc<[u8]>;

    fn now(&self) -> Instant {
        clock::now()
    }

    fn connect(&mut self, conn: ConnId, link: Link) {
        let Some((target, pin)) = self.hub() else {
            return;
        };
        let uri = target.link_url(link);
        let conf = EspWebSocketClientConfig {
            disable_auto_reconnect: true,
            // One hub message always arrives as one event (the wrapper does not reassemble).
            buffer_size: MAX_CONTROL_MESSAGE,
            network_timeout_ms: SEND_TIMEOUT,
            server_cert: pin.cert,
            crt_bundle_attach: pin.attach,
            // The pin is the check; a self-signed hub certificate names `localhost`, not
            // the address the camera dials.
            skip_cert_common_name_check: target.tls(),
            ..Default::default()
        };
        let events = self.events.clone();
        log::info!("link {}: connecting to {uri}", conn.get());
        // The closure is written inline so it gets the callback's higher-ranked signature.
        match EspWebSocketClient::new(&uri, &conf, SEND_TIMEOUT, move |e| {
            forward(&events, conn, e)
        }) {
            Ok(client) => drop(self.conns.insert(conn, Conn::Hub(client))),
            Err(e) => {
                log::warn!("link {}: {uri}: {e}", conn.get());
                let _ = self.events.send(Event::Core(ShellEvent::Closed(conn)));
            }
        }
    }

    /// Hub links: at once; clients: queued to the sender thread.
    fn send_text(&mut self, conn: ConnId, text: String) -> Result<(), SendFailed> {
        let Some(Conn::Hub(c)) = self.conns.get_mut(&conn) else {
            return self.queue(conn, OPCODE_TEXT, text.into_bytes().into());
        };
        c.send(FrameType::Text(false), text.as_bytes())
            .map_err(|e| {
                log::warn!("conn {}: send failed: {e}", conn.get());
                SendFailed
            })
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        log::info!("conn {}: closing ({code}: {reason})", conn.get());
        match self.conns.remove(&conn) {
            Some(Conn::Hub(c)) if c.is_connected() => unsafe {
                // SAFETY: the client is alive until dropped at the end of this arm.
                let (h, r, t) = (
                    c.handle(),
                    reason.as_ptr().cast(),
                    TickType::new_millis(1000).ticks(),
                );
                sys::esp_websocket_client_close_with_code(
                    h,
                    code.into(),
                    r,
                    reason.len() as i32,
                    t,
                );
            },
            // Behind whatever the thread still has to write; it ends the session after.
            Some(Conn::Client(_, tx)) => {
                drop(tx.try_send((CLOSE, close_payload(code, reason).into())))
            }
            _ => {}
        }
    }

    /// A client's thread ends with its socket.
    fn forget(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }

    fn close_all(&mut self, code: u16, reason: &str) {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns
            .into_iter()
            .for_each(|conn| self.close(conn, code, reason));
        std::thread::sleep(Duration::from_millis(200)); // let the sender threads write
    }

    fn capture(&mut self) -> Option<(CapturedFrame, camera::Frame)> {
        camera::grab().map(|frame| (frame.describe(), frame))
    }

    /// `header` ++ JPEG as ONE binary message in fragments, so the JPEG is never copied. The
    /// Rust client wrapper cannot fragment, so: the C calls.
    fn send_frame(
        &mut self,
        conn: ConnId,
        header: &[u8],
        f: &camera::Frame,
    ) -> Result<(), SendFailed> {
        let Some(Conn::Hub(c)) = self.conns.get(&conn) else {
            return Err(SendFailed);
        };
        let (h, t, jpeg) = (c.handle(), TickType::from(SEND_TIMEOUT).ticks(), f.jpeg());
        let len = |b: &[u8]| i32::try_from(b.len()).unwrap_or(i32::MAX);
        // SAFETY: `h` is a started client owned by `self.conns`; the buffers outlive the calls.
        let sent = unsafe {
            sys::esp_websocket_client_send_bin_partial(h, header.as_ptr().cast(), len(header), t)
                >= 0
                && sys::esp_websocket_client_send_cont_msg(h, jpeg.as_ptr().cast(), len(jpeg), t)
                    >= 0
                && sys::esp_websocket_client_send_fin(h, t) >= 0
        };
        unsafe { sys::esp_task_wdt_reset() }; // a send may block for SEND_TIMEOUT
        sent.then_some(()).ok_or(SendFailed)
    }

    fn share(&mut self, frame: camera::Frame) -> Arc<[u8]> {
        Arc::from(frame.jpeg())
    }

    fn send_jpeg(&mut self, conn: ConnId, jpeg: Arc<[u8]>) -> Result<(), SendFailed> {
        self.queue(conn, BINARY, jpeg)
    }

    fn restart(&mut self, rollback: bool, reason: &str) {
        log::warn!("rebooting: {reason}");
        match rollback {
            true => self.flash.job(Job::Rollback),
            false => esp_idf_svc::hal::reset::restart(),
        }
    }

    fn ota_fetch(&mut self, fetch: FetchId, url: &str, offset: u32, len: u32) {
        let url = self
            .hub()
            .map_or_else(|| url.to_string(), |h| h.0.image_url(url));
        self.flash.job(Job::Fetch(fetch, url, offset, len));
    }

    fn confirm_image(&mut self) {
        self.flash.job(Job::Confirm);
    }

    fn health(&mut self) -> Health {
        let free =
            |caps| u32::try_from(unsafe { sys::heap_caps_get_free_size(caps) }).unwrap_or(u32::MAX);
        let (heap_free, psram_free) =
            (free(sys::MALLOC_CAP_INTERNAL), free(sys::MALLOC_CAP_SPIRAM));
        Health {
            heap_free,
            psram_free,
            rssi: crate::wifi::rssi(),
        }
    }

    fn wall_clock(&mut self) -> Option<u64> {
        self.wall.as_ref().and_then(|w| w.just_synced())
    }
}

/// A close frame's payload: the code, big-endian, then the reason (RFC 6455 §5.5.1).
fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    [&code.to_be_bytes()[..], reason.as_bytes()].concat()
}

/// One standalone client's sender: writes each message as one WebSocket frame straight to
/// the client's socket and reports sent frames. After a close or a failed write (reported as
/// [`Event::Closed`]) it ends the session; when the main loop drops the queue, httpd has
/// already closed the socket and the thread just ends (the fd may belong to another client).
fn client_thread(
    conn: ConnId,
    fd: i32,
    server: usize,
    rx: Receiver<(u8, Arc<[u8]>)>,
    events: Sender<Event>,
) {
    // SAFETY: httpd owns `fd` and closes it when the session ends; ManuallyDrop keeps this
    // thread from ever closing it. Only this thread writes to it from now on.
    let mut sock = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    let _ = sock.set_write_timeout(Some(SEND_TIMEOUT));
    loop {
        let Ok((opcode, payload)) = rx.recv() else {
            return;
        };
        let (head, n) = server_frame_head(opcode, payload.len());
        if sock
            .write_all(&head[..n])
            .and_then(|()| sock.write_all(&payload))
            .is_err()
        {
            let _ = events.send(Event::Core(ShellEvent::Closed(conn)));
            break;
        }
        if opcode == CLOSE
            || (opcode == BINARY
                && events
                    .send(Event::Core(ShellEvent::FrameSent(conn)))
                    .is_err())
        {
            break;
        }
    }
    // SAFETY: the server outlives every client; the call only queues work for httpd.
    unsafe { sys::httpd_sess_trigger_close(server as sys::httpd_handle_t, fd) };
}

/// Runs on a hub client's task: turns its events into main-loop events.
fn forward(events: &Sender<Event>, conn: ConnId, event: &Result<WebSocketEvent<'_>, EspIOError>) {
    let event = match event.as_ref().map(|e| &e.event_type) {
        Ok(Ws::Connected) => Event::Core(ShellEvent::Connected(conn)),
        Ok(Ws::Text(text)) => Event::Core(ShellEvent::Text(conn, (*text).to_owned())),
        Ok(Ws::Disconnected | Ws::Closed) => Event::Core(ShellEvent::Closed(conn)),
        // Pings are answered by the driver; binary from the hub means nothing; a close frame
        // is followed by Closed (the wrapper misreads its code, so it is not logged).
        Ok(_) => return,
        // The driver's ERROR event (ESP_FAIL; a TLS pin mismatch too), followed by
        // Disconnected when it was fatal. Other errors are events the wrapper does not map
        // (BEGIN, FINISH): not errors.
        Err(e) if e.0.code() == sys::ESP_FAIL => return log::warn!("link {}: {e}", conn.get()),
        Err(_) => return,
    };
    let _ = events.send(event);
}

/// Runs on the httpd task for every open, message and close of a `/ws` socket.
fn on_socket(events: &Sender<Event>, ws: &mut EspHttpWsConnection) -> Result<(), EspError> {
    let fd = ws.session();
    if ws.is_new() {
        let _ = events.send(Event::ClientOpen(ws.create_detached_sender()?));
        return Ok(());
    }
    if ws.is_closed() {
        let _ = events.send(Event::ClientClosed(fd));
        return Ok(());
    }
    let (kind, len) = ws.recv(&mut [])?;
    if len > MAX_CONTROL_MESSAGE + 1 {
        // Never buffer an attacker-sized message: drop the client instead.
        if let EspHttpWsConnection::Receiving(sd, _, _) = ws {
            unsafe { sys::httpd_sess_trigger_close(*sd, fd) };
        }
        return Ok(());
    }
    let mut buf = vec![0; len];
    ws.recv(&mut buf)?;
    // Only whole, non-empty text messages mean something; the driver appends a NUL to text.
    if let (FrameType::Text(false), 1..) = (kind, len) {
        let text = String::from_utf8_lossy(buf.strip_suffix(&[0]).unwrap_or(&buf)).into_owned();
        let _ = events.send(Event::ClientText(fd, text));
    }
    Ok(())
}
