//! The network seam: WebSocket clients to the hub's control and stream ports (hub mode), or
//! the HTTP server's `/ws` endpoint (standalone mode, seed 002), behind one map from the
//! core's `ConnId` to a socket.
//!
//! Driver callbacks run on the drivers' tasks and only turn what happened into [`Event`]s for
//! the main loop. Must never retry, reconnect, answer or limit anything on its own: the hub
//! client's auto-reconnect is off, and the core decides.
//!
//! One exception the drivers make for us: a peer's close frame is answered inside them
//! (RFC 6455 §5.5.1; esp_http_server with `handle_ws_control_frames` off, as esp-idf-svc
//! registers `/ws`, and esp_transport_ws both reply with an empty close frame before the
//! socket ends), so no close reaches the core as `handle_close_frame`: it arrives as the
//! socket's end, [`Event::Closed`] / [`Event::ClientClosed`].

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::time::Duration;

use esp_idf_svc::hal::delay::TickType;
use esp_idf_svc::handle::RawHandle;
use esp_idf_svc::http::server::ws::{EspHttpWsConnection, EspHttpWsDetachedSender};
use esp_idf_svc::http::server::{Configuration, EspHttpServer};
use esp_idf_svc::io::EspIOError;
use esp_idf_svc::sys::{self, EspError};
use esp_idf_svc::ws::client::{
    EspWebSocketClient, EspWebSocketClientConfig, WebSocketEvent, WebSocketEventType,
};
use esp_idf_svc::ws::FrameType;
use espcam_camera::{ConnId, Link};
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::standalone::{MAX_CLIENTS, PATH};

use crate::config;

/// How long one send may block the main loop before the socket counts as broken.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// What the driver tasks report to the main loop.
pub enum Event {
    /// Hub link `conn` is open.
    Connected(ConnId),
    /// A text message on hub link `conn`.
    Text(ConnId, String),
    /// Hub link `conn` closed or failed to open.
    Closed(ConnId),
    /// A standalone client connected; the core decides whether it may stay.
    ClientOpen(EspHttpWsDetachedSender),
    /// A text message from the standalone client on socket `fd`.
    ClientText(i32, String),
    /// The standalone client on socket `fd` went away.
    ClientClosed(i32),
}

enum Socket {
    /// Dropping the client stops its task.
    Hub(EspWebSocketClient<'static>),
    /// A standalone client; `session()` is its socket descriptor.
    Client(EspHttpWsDetachedSender),
}

/// Every socket the core knows about.
pub struct Net {
    /// Where driver callbacks send their events (cloned into each hub client).
    events: Sender<Event>,
    /// Standalone mode's server: kept to keep serving, and for its handle (closing clients).
    server: Option<EspHttpServer<'static>>,
    open: BTreeMap<ConnId, Socket>,
}

impl Net {
    /// Hub mode (links are opened on request), or standalone mode: serves `ws://<camera>/ws`.
    pub fn new(events: Sender<Event>, standalone: bool) -> Result<Self, EspError> {
        let server = if standalone {
            let mut server = EspHttpServer::new(&Configuration {
                // The core's client limit, plus room to accept (and refuse) one more.
                max_open_sockets: MAX_CLIENTS + 2,
                ..Default::default()
            })
            .map_err(|e| e.0)?;
            let tx = events.clone();
            server.ws_handler(PATH, None, move |ws| on_socket(&tx, ws))?;
            log::info!("server: listening on port 80, path {PATH}");
            Some(server)
        } else {
            None
        };
        Ok(Self {
            events,
            server,
            open: BTreeMap::new(),
        })
    }

    /// Starts opening hub `link` as `conn`; the outcome arrives as an [`Event`].
    pub fn connect(&mut self, conn: ConnId, link: Link) {
        let (control, stream) = config::hub_ports();
        let (port, path) = match link {
            Link::Control => (control, espcam_proto::CONTROL_PATH),
            Link::Stream => (stream, espcam_proto::STREAM_PATH),
        };
        let uri = format!("ws://{}:{port}{path}", config::HUB_HOST);
        let conf = EspWebSocketClientConfig {
            disable_auto_reconnect: true,
            // One hub message always arrives as one event (the wrapper does not reassemble).
            buffer_size: MAX_CONTROL_MESSAGE,
            network_timeout_ms: SEND_TIMEOUT,
            ..Default::default()
        };
        let events = self.events.clone();
        log::info!("link {}: connecting to {uri}", conn.get());
        // The closure is written inline so it gets the callback's higher-ranked signature.
        match EspWebSocketClient::new(&uri, &conf, SEND_TIMEOUT, move |e| {
            forward(&events, conn, e)
        }) {
            Ok(client) => {
                self.open.insert(conn, Socket::Hub(client));
            }
            Err(e) => {
                log::warn!("link {}: {uri}: {e}", conn.get());
                let _ = self.events.send(Event::Closed(conn));
            }
        }
    }

    /// Keeps a standalone client the core accepted as `conn`.
    pub fn adopt(&mut self, conn: ConnId, sender: EspHttpWsDetachedSender) {
        self.open.insert(conn, Socket::Client(sender));
    }

    /// Closes a standalone client: one the core refused, or `conn` being closed.
    pub fn refuse(&self, mut sender: EspHttpWsDetachedSender, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        let _ = sender.send(FrameType::Close, &payload);
        // Do not wait for the client's answer: a vanished client must not hold a slot.
        if let Some(server) = &self.server {
            unsafe { sys::httpd_sess_trigger_close(server.handle(), sender.session()) };
        }
    }

    /// The core's id for the standalone client on socket `fd`, if it was accepted.
    pub fn conn_of(&self, fd: i32) -> Option<ConnId> {
        self.open.iter().find_map(|(conn, s)| match s {
            Socket::Client(c) if c.session() == fd => Some(*conn),
            _ => None,
        })
    }

    /// Sends one text message.
    pub fn send_text(&mut self, conn: ConnId, text: &str) -> Result<(), EspError> {
        match self.open.get_mut(&conn).ok_or_else(not_found)? {
            Socket::Hub(c) => c.send(FrameType::Text(false), text.as_bytes()),
            Socket::Client(c) => c.send(FrameType::Text(false), text.as_bytes()),
        }
    }

    /// Sends `header` (if any) ++ `jpeg` as ONE binary message, in fragments, so the JPEG is
    /// never copied.
    pub fn send_frame(
        &mut self,
        conn: ConnId,
        header: Option<&[u8]>,
        jpeg: &[u8],
    ) -> Result<(), EspError> {
        match (self.open.get_mut(&conn).ok_or_else(not_found)?, header) {
            (Socket::Client(c), None) => c.send(FrameType::Binary(false), jpeg),
            (Socket::Client(c), Some(h)) => {
                c.send(FrameType::Binary(true), h)?;
                c.send(FrameType::Continue(true), jpeg)
            }
            // The Rust client wrapper cannot fragment (it panics), so use the C calls.
            (Socket::Hub(c), header) => {
                let (h, t) = (c.handle(), TickType::from(SEND_TIMEOUT).ticks());
                let header = header.unwrap_or(&[]);
                let len = |b: &[u8]| i32::try_from(b.len()).unwrap_or(i32::MAX);
                // SAFETY: `h` is a started client owned by `self.open`; the buffers outlive
                // the calls.
                let sent = unsafe {
                    sys::esp_websocket_client_send_bin_partial(
                        h,
                        header.as_ptr().cast(),
                        len(header),
                        t,
                    ) >= 0
                        && sys::esp_websocket_client_send_cont_msg(
                            h,
                            jpeg.as_ptr().cast(),
                            len(jpeg),
                            t,
                        ) >= 0
                        && sys::esp_websocket_client_send_fin(h, t) >= 0
                };
                sent.then_some(())
                    .ok_or_else(EspError::from_infallible::<{ sys::ESP_FAIL }>)
            }
        }
    }

    /// Closes `conn` with a close frame (the core has already forgotten it).
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        match self.open.remove(&conn) {
            Some(Socket::Hub(client)) if client.is_connected() => {
                let (t, len) = (TickType::new_millis(1000).ticks(), reason.len() as i32);
                // SAFETY: the client is alive until dropped at the end of this arm.
                unsafe {
                    sys::esp_websocket_client_close_with_code(
                        client.handle(),
                        code.into(),
                        reason.as_ptr().cast(),
                        len,
                        t,
                    )
                };
            }
            Some(Socket::Client(c)) => self.refuse(c, code, reason),
            _ => {}
        }
    }

    /// Releases a connection that closed by itself.
    pub fn forget(&mut self, conn: ConnId) {
        self.open.remove(&conn);
    }

    /// Closes everything (before a reboot).
    pub fn close_all(&mut self, code: u16, reason: &str) {
        let conns: Vec<ConnId> = self.open.keys().copied().collect();
        for conn in conns {
            self.close(conn, code, reason);
        }
    }
}

fn not_found() -> EspError {
    EspError::from_infallible::<{ sys::ESP_ERR_NOT_FOUND }>()
}

/// Runs on a hub client's task: turns its events into main-loop events.
fn forward(events: &Sender<Event>, conn: ConnId, event: &Result<WebSocketEvent<'_>, EspIOError>) {
    let event = match event.as_ref().map(|e| &e.event_type) {
        Ok(WebSocketEventType::Connected) => Event::Connected(conn),
        Ok(WebSocketEventType::Text(text)) => Event::Text(conn, (*text).to_owned()),
        Ok(WebSocketEventType::Disconnected | WebSocketEventType::Closed) => Event::Closed(conn),
        // Pings are answered by the driver; binary from the hub means nothing; a close frame
        // is followed by Closed (the wrapper misreads its code, so it is not logged).
        Ok(_) => return,
        // The driver's ERROR event (ESP_FAIL), followed by Disconnected when it was fatal.
        // Other errors are events the wrapper does not map (BEGIN, FINISH): not errors.
        Err(e) if e.0.code() == sys::ESP_FAIL => {
            log::warn!("link {}: {e}", conn.get());
            return;
        }
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
    if len == 0 {
        return Ok(()); // an empty or control frame, already consumed
    }
    if len > MAX_CONTROL_MESSAGE + 1 {
        // Never buffer an attacker-sized message: drop the client instead.
        if let EspHttpWsConnection::Receiving(sd, _, _) = ws {
            unsafe { sys::httpd_sess_trigger_close(*sd, fd) };
        }
        return Ok(());
    }
    let mut buf = vec![0; len];
    ws.recv(&mut buf)?;
    // Only whole text messages mean something; the driver appends a NUL to text frames.
    if let FrameType::Text(false) = kind {
        let text = String::from_utf8_lossy(buf.strip_suffix(&[0]).unwrap_or(&buf)).into_owned();
        let _ = events.send(Event::ClientText(fd, text));
    }
    Ok(())
}
