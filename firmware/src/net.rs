//! The network seam: WebSocket clients to the hub's control and stream ports (hub mode), or
//! the HTTP server's `/ws` endpoint (standalone mode, seed 002); the board's `ShellIo` and
//! `BoardIo` for the core's main loop (`espcam_camera::blocking::run`).
//!
//! Driver callbacks run on the drivers' tasks and only turn what happened into events for
//! the main loop. Must never retry, reconnect, answer or limit anything on its own: the hub
//! client's auto-reconnect is off, and the core decides (URLs and pins included:
//! `HubTarget::link_url`, `Trust`).
//!
//! Standalone clients each get a sender thread (the core's `blocking::Clients`) that writes
//! WebSocket frames straight to the client's socket, so one slow client never delays the
//! others or the main loop. Sending through esp_http_server instead
//! (`httpd_ws_send_frame_async`, also behind esp-idf-svc's detached sender) would run every
//! client's send on the one httpd task, where a stalled client blocks all of them for the
//! socket's send timeout.
//!
//! One exception the drivers make for us: a peer's close frame is answered inside them
//! (RFC 6455 §5.5.1; esp_http_server with `handle_ws_control_frames` off, as esp-idf-svc
//! registers `/ws`, and esp_transport_ws both reply with an empty close frame before the
//! socket ends), so it arrives here as the socket's end, not as a close frame.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::sync::mpsc::Sender;
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
use espcam_camera::blocking::{client_message_fits, client_text, close_payload};
use espcam_camera::blocking::{BoardEvent, BoardIo, Clients, FlashWorker};
use espcam_camera::{CapturedFrame, ConnId, FetchId, Health, HubTarget, Instant, Link};
use espcam_camera::{SendFailed, ShellEvent, ShellIo, CLOSE_INTERNAL_ERROR};
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::standalone::{MAX_CLIENTS, OPCODE_BINARY, OPCODE_TEXT, PATH};

use crate::camera;
use crate::clock::{self, WallClock};
use crate::tls::Pin;

/// How long one send may block (the main loop for hub links, a sender thread for clients)
/// before the socket counts as broken.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What the driver tasks and worker threads report to the main loop.
pub type Event = BoardEvent<EspHttpWsDetachedSender>;

/// Every socket the core knows about, and the rest of the board's side of the core's
/// shell loop: camera frames, firmware jobs, health, the wall clock.
pub struct Net {
    events: Sender<Event>,
    /// Standalone mode's server: kept to keep serving, and for its handle.
    server: Option<EspHttpServer<'static>>,
    /// Hub mode: every hub of cfg.toml in order (empty: standalone), and which one links
    /// go to now (the core's `Camera::hub_index`).
    hubs: Vec<(HubTarget, Pin)>,
    hub_index: usize,
    /// Hub links; dropping a client stops its task.
    links: BTreeMap<ConnId, EspWebSocketClient<'static>>,
    clients: Clients,
    flash: FlashWorker,
    wall: Option<WallClock>,
}

impl Net {
    /// Hub mode (`hubs` not empty; links are opened on request), or standalone mode:
    /// serves `ws://<camera>/ws`.
    pub fn new(
        events: Sender<Event>,
        hubs: Vec<(HubTarget, Pin)>,
        flash: FlashWorker,
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
        let (links, clients, hub_index) = (BTreeMap::new(), Clients::default(), 0);
        Ok(Self {
            events,
            server,
            hubs,
            hub_index,
            links,
            clients,
            flash,
            wall,
        })
    }

    /// The hub links go to now; `None` in standalone mode.
    fn hub(&self) -> Option<&(HubTarget, Pin)> {
        self.hubs.get(self.hub_index).or(self.hubs.first())
    }

    fn server(&self) -> sys::httpd_handle_t {
        self.server
            .as_ref()
            .map_or(std::ptr::null_mut(), |s| s.handle())
    }
}

impl BoardIo for Net {
    type Client = EspHttpWsDetachedSender;

    /// The client's sender thread writes on its socket, which httpd owns and closes.
    fn adopt(&mut self, conn: ConnId, sender: EspHttpWsDetachedSender) {
        let (fd, events) = (sender.session(), self.events.clone());
        let server = self.server() as usize;
        // SAFETY: `Clients` never drops it, so it never closes httpd's descriptor.
        let sock = unsafe { TcpStream::from_raw_fd(fd) };
        let _ = sock.set_write_timeout(Some(SEND_TIMEOUT));
        let report = move |e| events.send(Event::Core(e)).is_ok();
        // SAFETY: the server outlives every client; the call only queues work for httpd.
        let end = move |close| {
            if close {
                unsafe { sys::httpd_sess_trigger_close(server as sys::httpd_handle_t, fd) };
            }
        };
        if let Err(e) = self.clients.adopt(conn, fd, sock, 6 * 1024, report, end) {
            log::warn!("conn {}: no sender thread: {e}", conn.get());
            self.refuse(sender, CLOSE_INTERNAL_ERROR, "out of memory");
            let _ = self.events.send(Event::Core(ShellEvent::Closed(conn)));
        }
    }

    fn refuse(&mut self, mut sender: EspHttpWsDetachedSender, code: u16, reason: &str) {
        let _ = sender.send(FrameType::Close, &close_payload(code, reason));
        unsafe { sys::httpd_sess_trigger_close(self.server(), sender.session()) };
    }

    fn conn_of(&self, fd: i32) -> Option<ConnId> {
        self.clients.conn_of(fd)
    }

    /// The task watchdog (main.rs subscribed this task).
    fn feed(&mut self) {
        unsafe { sys::esp_task_wdt_reset() };
    }
}

impl ShellIo for Net {
    type Frame = camera::Frame;
    type Jpeg = Arc<[u8]>;

    fn now(&self) -> Instant {
        clock::now()
    }

    fn set_hub(&mut self, index: usize) {
        self.hub_index = index;
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
            Ok(client) => drop(self.links.insert(conn, client)),
            Err(e) => {
                log::warn!("link {}: {uri}: {e}", conn.get());
                let _ = self.events.send(Event::Core(ShellEvent::Closed(conn)));
            }
        }
    }

    /// Hub links: at once; clients: queued to the sender thread.
    fn send_text(&mut self, conn: ConnId, text: String) -> Result<(), SendFailed> {
        let Some(c) = self.links.get_mut(&conn) else {
            return self
                .clients
                .send(conn, OPCODE_TEXT, text.into_bytes().into());
        };
        c.send(FrameType::Text(false), text.as_bytes())
            .map_err(|e| log::warn!("conn {}: send failed: {e}", conn.get()))
            .map_err(|()| SendFailed)
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        log::info!("conn {}: closing ({code}: {reason})", conn.get());
        if self.clients.close(conn, code, reason) {
            return;
        }
        let Some(c) = self.links.remove(&conn).filter(|c| c.is_connected()) else {
            return;
        };
        // esp-idf-svc closes only with 1000 (on drop); the core's code needs the C call.
        // SAFETY: the client is alive until dropped at the end of this function.
        let (r, n) = (reason.as_ptr().cast(), reason.len() as i32);
        let t = TickType::new_millis(1000).ticks();
        unsafe { sys::esp_websocket_client_close_with_code(c.handle(), code.into(), r, n, t) };
    }

    fn forget(&mut self, conn: ConnId) {
        self.links.remove(&conn);
        self.clients.forget(conn);
    }

    fn close_all(&mut self, code: u16, reason: &str) {
        let mut conns: Vec<ConnId> = self.links.keys().copied().collect();
        conns.extend(self.clients.conns());
        conns.into_iter().for_each(|c| self.close(c, code, reason));
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
        head: &[u8],
        f: &camera::Frame,
    ) -> Result<(), SendFailed> {
        let c = self.links.get(&conn).ok_or(SendFailed)?;
        let (h, t, jpeg) = (c.handle(), TickType::from(SEND_TIMEOUT).ticks(), f.jpeg());
        let len = |b: &[u8]| i32::try_from(b.len()).unwrap_or(i32::MAX);
        // SAFETY: `h` is a started client owned by `self.links`; the buffers outlive the calls.
        let sent = unsafe {
            sys::esp_websocket_client_send_bin_partial(h, head.as_ptr().cast(), len(head), t) >= 0
                && sys::esp_websocket_client_send_cont_msg(h, jpeg.as_ptr().cast(), len(jpeg), t)
                    >= 0
                && sys::esp_websocket_client_send_fin(h, t) >= 0
        };
        self.feed(); // a send may block for SEND_TIMEOUT
        sent.then_some(()).ok_or(SendFailed)
    }

    fn share(&mut self, frame: camera::Frame) -> Arc<[u8]> {
        Arc::from(frame.jpeg())
    }

    fn send_jpeg(&mut self, conn: ConnId, jpeg: Arc<[u8]>) -> Result<(), SendFailed> {
        self.clients.send(conn, OPCODE_BINARY, jpeg)
    }

    fn restart(&mut self, rollback: bool, reason: &str) {
        log::warn!("rebooting: {reason}");
        match rollback {
            true => self.flash.rollback(),
            false => esp_idf_svc::hal::reset::restart(),
        }
    }

    fn ota_fetch(&mut self, fetch: FetchId, url: &str, offset: u32, len: u32) {
        let url = self.hub().map_or(url.to_string(), |h| h.0.image_url(url));
        self.flash.fetch(fetch, url, offset, len);
    }

    fn confirm_image(&mut self) {
        self.flash.confirm();
    }

    fn health(&mut self) -> Health {
        let free =
            |c| u32::try_from(unsafe { sys::heap_caps_get_free_size(c) }).unwrap_or(u32::MAX);
        let (heap_free, psram_free) =
            (free(sys::MALLOC_CAP_INTERNAL), free(sys::MALLOC_CAP_SPIRAM));
        let rssi = crate::wifi::rssi();
        Health {
            heap_free,
            psram_free,
            rssi,
        }
    }

    fn wall_clock(&mut self) -> Option<u64> {
        self.wall.as_ref().and_then(|w| w.just_synced())
    }
}

/// Runs on a hub client's task: turns its events into main-loop events.
fn forward(events: &Sender<Event>, conn: ConnId, event: &Result<WebSocketEvent<'_>, EspIOError>) {
    let event = match event.as_ref().map(|e| &e.event_type) {
        Ok(Ws::Connected) => ShellEvent::Connected(conn),
        Ok(Ws::Text(text)) => ShellEvent::Text(conn, (*text).to_owned()),
        Ok(Ws::Disconnected | Ws::Closed) => ShellEvent::Closed(conn),
        // Pings are answered by the driver; binary from the hub means nothing; a close frame
        // is followed by Closed (the wrapper misreads its code, so it is not logged).
        Ok(_) => return,
        // The driver's ERROR event (ESP_FAIL; a TLS pin mismatch too), followed by
        // Disconnected when it was fatal. Other errors are events the wrapper does not map
        // (BEGIN, FINISH): not errors.
        Err(e) if e.0.code() == sys::ESP_FAIL => return log::warn!("link {}: {e}", conn.get()),
        Err(_) => return,
    };
    let _ = events.send(Event::Core(event));
}

/// Runs on the httpd task for every open, message and close of a `/ws` socket.
fn on_socket(events: &Sender<Event>, ws: &mut EspHttpWsConnection) -> Result<(), EspError> {
    let fd = ws.session();
    let event = if ws.is_new() {
        Event::ClientOpen(ws.create_detached_sender()?)
    } else if ws.is_closed() {
        Event::ClientClosed(fd)
    } else {
        let (kind, len) = ws.recv(&mut [])?;
        if !client_message_fits(len) {
            // Never buffer an attacker-sized message: drop the client instead.
            if let EspHttpWsConnection::Receiving(sd, _, _) = ws {
                unsafe { sys::httpd_sess_trigger_close(*sd, fd) };
            }
            return Ok(());
        }
        let mut buf = vec![0; len];
        if len > 0 {
            ws.recv(&mut buf)?; // an empty frame was consumed by the first call
        }
        match client_text(kind == FrameType::Text(false), &buf) {
            Some(text) => Event::ClientText(fd, text),
            None => return Ok(()),
        }
    };
    let _ = events.send(event);
    Ok(())
}
