//! The board's drivers for the core's blocking shell (`espcam_camera::blocking::Board`):
//! WebSocket clients to the hub's control and stream ports (hub mode), or the HTTP server's
//! `/ws` endpoint (standalone mode, seed 002), the camera, health and the wall clock. Which
//! connection a message goes to, hub failover, image URLs and firmware jobs are the core's
//! `blocking::Shell`.
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

use std::net::TcpStream;
use std::os::fd::FromRawFd;
use std::ptr::null_mut;
use std::sync::mpsc::Sender;
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
use espcam_camera::blocking::{Board, BoardEvent, Clients, HubLink};
use espcam_camera::{CapturedFrame, ConnId, Health, Instant, SendFailed, ShellEvent};
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::standalone::{MAX_CLIENTS, PATH};

use crate::camera;
use crate::clock::{self, WallClock};
use crate::tls::Pin;

/// How long one send may block (the main loop for hub links, a sender thread for clients)
/// before the socket counts as broken.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What the driver tasks and worker threads report to the main loop.
pub type Event = BoardEvent<EspHttpWsDetachedSender>;

/// The board's network and camera drivers.
pub struct Net {
    events: Sender<Event>,
    /// Standalone mode's server: kept to keep serving, and for its handle.
    server: Option<EspHttpServer<'static>>,
    wall: Option<WallClock>,
}

/// A hub link; dropping the client stops its task.
pub struct Link(ConnId, EspWebSocketClient<'static>);

impl Net {
    /// Hub mode (links are opened on request; SNTP for capture times), or standalone mode:
    /// serves `ws://<camera>/ws`.
    pub fn new(events: Sender<Event>, standalone: bool) -> Result<Self, EspError> {
        let (mut server, mut wall) = (None, None);
        if standalone {
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
            wall,
        })
    }

    fn server(&self) -> sys::httpd_handle_t {
        self.server.as_ref().map_or(null_mut(), |s| s.handle())
    }
}

impl Board for Net {
    type Frame = camera::Frame;
    type Link = Link;
    type Pin = Pin;
    type Client = EspHttpWsDetachedSender;

    fn now(&self) -> Instant {
        clock::now()
    }

    fn dial(&mut self, conn: ConnId, uri: &str, tls: bool, pin: &Pin) -> Option<Link> {
        let conf = EspWebSocketClientConfig {
            disable_auto_reconnect: true,
            // One hub message always arrives as one event (the wrapper does not reassemble).
            buffer_size: MAX_CONTROL_MESSAGE,
            network_timeout_ms: SEND_TIMEOUT,
            server_cert: pin.cert,
            crt_bundle_attach: pin.attach,
            // The pin is the check; a self-signed hub certificate names `localhost`, not
            // the address the camera dials.
            skip_cert_common_name_check: tls,
            ..Default::default()
        };
        let events = self.events.clone();
        log::info!("link {}: connecting to {uri}", conn.get());
        // The closure is written inline so it gets the callback's higher-ranked signature.
        let client =
            EspWebSocketClient::new(uri, &conf, SEND_TIMEOUT, move |e| forward(&events, conn, e));
        let warn = |e: EspIOError| log::warn!("link {}: {uri}: {e}", conn.get());
        client.map(|c| Link(conn, c)).map_err(warn).ok()
    }

    fn capture(&mut self) -> Option<(CapturedFrame, camera::Frame)> {
        camera::grab().map(|frame| (frame.describe(), frame))
    }

    fn health(&mut self) -> Health {
        let free = |caps| unsafe { sys::heap_caps_get_free_size(caps) };
        let (heap, psram) = (free(sys::MALLOC_CAP_INTERNAL), free(sys::MALLOC_CAP_SPIRAM));
        Health::from_driver(heap, psram, crate::wifi::rssi())
    }

    fn wall_clock(&mut self) -> Option<u64> {
        self.wall.as_ref().and_then(|w| w.just_synced())
    }

    fn restart(&mut self, reason: &str, rollback: bool) {
        log::warn!("rebooting: {reason}");
        if !rollback {
            esp_idf_svc::hal::reset::restart();
        }
    }

    /// The client's sender thread writes on its socket, which httpd owns and closes.
    fn adopt(&mut self, conn: ConnId, sender: Self::Client, clients: &mut Clients) -> bool {
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
        let Err(e) = clients.adopt(conn, fd, sock, 6 * 1024, report, end) else {
            return true;
        };
        log::warn!("conn {}: no sender thread: {e}", conn.get());
        self.refuse(sender, espcam_camera::CLOSE_INTERNAL_ERROR, "out of memory");
        false
    }

    fn refuse(&mut self, mut sender: Self::Client, code: u16, reason: &str) {
        let _ = sender.send(FrameType::Close, &close_payload(code, reason));
        unsafe { sys::httpd_sess_trigger_close(self.server(), sender.session()) };
    }

    /// The task watchdog (main.rs subscribed this task).
    fn feed(&mut self) {
        unsafe { sys::esp_task_wdt_reset() };
    }
}

impl HubLink for Link {
    fn send_text(&mut self, text: &str) -> Result<(), SendFailed> {
        let sent = self.1.send(FrameType::Text(false), text.as_bytes());
        sent.map_err(|e| log::warn!("conn {}: send failed: {e}", self.0.get()))
            .map_err(|()| SendFailed)
    }

    /// `head` ++ JPEG as ONE binary message in fragments, so the JPEG is never copied. The
    /// Rust client wrapper cannot fragment, so: the C calls.
    fn send_frame(&mut self, head: &[u8], jpeg: &[u8]) -> Result<(), SendFailed> {
        let (h, t) = (self.1.handle(), TickType::from(SEND_TIMEOUT).ticks());
        let n = |b: &[u8]| i32::try_from(b.len()).unwrap_or(i32::MAX);
        // SAFETY: `h` is a started client owned by `self`; the buffers outlive the calls.
        let sent = unsafe {
            sys::esp_websocket_client_send_bin_partial(h, head.as_ptr().cast(), n(head), t) >= 0
                && sys::esp_websocket_client_send_cont_msg(h, jpeg.as_ptr().cast(), n(jpeg), t) >= 0
                && sys::esp_websocket_client_send_fin(h, t) >= 0
        };
        sent.then_some(()).ok_or(SendFailed)
    }

    /// esp-idf-svc closes only with 1000 (on drop); the core's code needs the C call.
    fn close(self, code: u16, reason: &str) {
        log::info!("conn {}: closing ({code}: {reason})", self.0.get());
        if self.1.is_connected() {
            let (h, r, n) = (self.1.handle(), reason.as_ptr().cast(), reason.len() as i32);
            let t = TickType::new_millis(1000).ticks();
            // SAFETY: the client is alive until dropped at the end of this function.
            unsafe { sys::esp_websocket_client_close_with_code(h, code.into(), r, n, t) };
        }
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
