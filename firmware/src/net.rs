//! The network seam: WebSocket clients to the hub's control and stream ports (hub mode), or
//! the HTTP server's `/ws` endpoint (standalone mode, seed 002), behind maps from the core's
//! `ConnId` to a socket.
//!
//! Driver callbacks run on the drivers' tasks and only turn what happened into [`Event`]s for
//! the main loop. Must never retry, reconnect, answer or limit anything on its own: the hub
//! client's auto-reconnect is off, and the core decides.
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
use std::sync::mpsc::{sync_channel, Sender, SyncSender, TrySendError};
use std::sync::Arc;
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
use espcam_proto::standalone::{
    server_frame_head, MAX_CLIENTS, OPCODE_BINARY, OPCODE_CLOSE, OPCODE_TEXT, PATH,
};

use crate::config;

/// How long one send may block (the main loop for hub links, a sender thread for clients)
/// before the socket counts as broken.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages queued towards one client; the core keeps at most one frame in flight per
/// client, so a full queue means texts piled up behind a stuck socket.
const CLIENT_QUEUE: usize = 8;

/// What the driver tasks and sender threads report to the main loop.
pub enum Event {
    /// Hub link `conn` is open.
    Connected(ConnId),
    /// A text message on hub link `conn`.
    Text(ConnId, String),
    /// Hub link `conn` closed or failed to open, or a write to client `conn` failed.
    Closed(ConnId),
    /// The frame handed to client `conn` is sent.
    FrameSent(ConnId),
    /// A standalone client connected; the core decides whether it may stay.
    ClientOpen(EspHttpWsDetachedSender),
    /// A text message from the standalone client on socket `fd`.
    ClientText(i32, String),
    /// The standalone client on socket `fd` went away.
    ClientClosed(i32),
    /// A firmware range request ended (see ota.rs).
    OtaData(espcam_camera::FetchId, Result<Vec<u8>, String>),
}

/// What a client's sender thread writes.
enum Out {
    Text(String),
    Frame(Arc<[u8]>),
    Close(u16, String),
}

struct Client {
    fd: i32,
    tx: SyncSender<Out>,
}

/// Every socket the core knows about.
pub struct Net {
    /// Where driver callbacks send their events (cloned into each client and thread).
    events: Sender<Event>,
    /// Standalone mode's server: kept to keep serving, and for its handle (closing clients).
    server: Option<EspHttpServer<'static>>,
    /// Dropping a client stops its task.
    hub: BTreeMap<ConnId, EspWebSocketClient<'static>>,
    clients: BTreeMap<ConnId, Client>,
}

impl Net {
    /// Hub mode (links are opened on request), or standalone mode: serves `ws://<camera>/ws`.
    pub fn new(events: Sender<Event>, standalone: bool) -> Result<Self, EspError> {
        let mut server = None;
        if standalone {
            let s = server.insert(
                EspHttpServer::new(&Configuration {
                    // The core's client limit, plus room to accept (and refuse) one more.
                    max_open_sockets: MAX_CLIENTS + 2,
                    ..Default::default()
                })
                .map_err(|e| e.0)?,
            );
            let tx = events.clone();
            s.ws_handler(PATH, None, move |ws| on_socket(&tx, ws))?;
            log::info!("server: listening on port 80, path {PATH}");
        }
        let (hub, clients) = (BTreeMap::new(), BTreeMap::new());
        Ok(Self {
            events,
            server,
            hub,
            clients,
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
                self.hub.insert(conn, client);
            }
            Err(e) => {
                log::warn!("link {}: {uri}: {e}", conn.get());
                let _ = self.events.send(Event::Closed(conn));
            }
        }
    }

    /// Keeps a standalone client the core accepted as `conn`, with its sender thread.
    pub fn adopt(&mut self, conn: ConnId, sender: EspHttpWsDetachedSender) {
        let (fd, events) = (sender.session(), self.events.clone());
        let server = self.server.as_ref().map_or(0, |s| s.handle() as usize);
        let (tx, rx) = sync_channel(CLIENT_QUEUE);
        let spawned = std::thread::Builder::new()
            .stack_size(6 * 1024)
            .spawn(move || client_thread(conn, fd, server, rx, events));
        match spawned {
            Ok(_) => {
                self.clients.insert(conn, Client { fd, tx });
            }
            Err(e) => {
                log::warn!("conn {}: no sender thread: {e}", conn.get());
                self.refuse(sender, espcam_camera::CLOSE_INTERNAL_ERROR, "out of memory");
                let _ = self.events.send(Event::Closed(conn));
            }
        }
    }

    /// Closes a standalone client the core refused.
    pub fn refuse(&self, mut sender: EspHttpWsDetachedSender, code: u16, reason: &str) {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        let _ = sender.send(FrameType::Close, &payload);
        if let Some(server) = &self.server {
            unsafe { sys::httpd_sess_trigger_close(server.handle(), sender.session()) };
        }
    }

    /// The core's id for the standalone client on socket `fd`, if it was accepted.
    pub fn conn_of(&self, fd: i32) -> Option<ConnId> {
        self.clients
            .iter()
            .find(|(_, c)| c.fd == fd)
            .map(|(c, _)| *c)
    }

    /// Sends one text message (hub links: at once; clients: queued to its thread).
    pub fn send_text(&mut self, conn: ConnId, text: String) -> Result<(), EspError> {
        match self.hub.get_mut(&conn) {
            Some(c) => c.send(FrameType::Text(false), text.as_bytes()),
            None => self.queue(conn, Out::Text(text)),
        }
    }

    /// Hands a frame to client `conn`'s thread; [`Event::FrameSent`] follows.
    pub fn send_to_client(&mut self, conn: ConnId, jpeg: Arc<[u8]>) -> Result<(), EspError> {
        self.queue(conn, Out::Frame(jpeg))
    }

    fn queue(&mut self, conn: ConnId, out: Out) -> Result<(), EspError> {
        let client = self.clients.get(&conn).ok_or_else(fail)?;
        match client.tx.try_send(out) {
            Ok(()) => Ok(()),
            // Stuck or gone: the caller closes it.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(fail()),
        }
    }

    /// Sends `header` ++ `jpeg` as ONE binary message on hub link `conn`, in fragments, so
    /// the JPEG is never copied. The Rust client wrapper cannot fragment, so: the C calls.
    pub fn send_frame(&mut self, conn: ConnId, header: &[u8], jpeg: &[u8]) -> Result<(), EspError> {
        let h = self.hub.get(&conn).ok_or_else(fail)?.handle();
        let t = TickType::from(SEND_TIMEOUT).ticks();
        let len = |b: &[u8]| i32::try_from(b.len()).unwrap_or(i32::MAX);
        // SAFETY: `h` is a started client owned by `self.hub`; the buffers outlive the calls.
        let sent = unsafe {
            sys::esp_websocket_client_send_bin_partial(h, header.as_ptr().cast(), len(header), t)
                >= 0
                && sys::esp_websocket_client_send_cont_msg(h, jpeg.as_ptr().cast(), len(jpeg), t)
                    >= 0
                && sys::esp_websocket_client_send_fin(h, t) >= 0
        };
        sent.then_some(()).ok_or_else(fail)
    }

    /// Closes `conn` with a close frame (the core has already forgotten it).
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        if let Some(client) = self.hub.remove(&conn).filter(|c| c.is_connected()) {
            let (t, len) = (TickType::new_millis(1000).ticks(), reason.len() as i32);
            // SAFETY: the client is alive until dropped at the end of this block.
            unsafe {
                let (h, r) = (client.handle(), reason.as_ptr().cast());
                sys::esp_websocket_client_close_with_code(h, code.into(), r, len, t)
            };
        } else if let Some(c) = self.clients.remove(&conn) {
            // Behind whatever the thread still has to write; it closes the socket after.
            let _ = c.tx.try_send(Out::Close(code, reason.to_owned()));
        }
    }

    /// Releases a connection that closed by itself (a client's thread ends with it).
    pub fn forget(&mut self, conn: ConnId) {
        self.hub.remove(&conn);
        self.clients.remove(&conn);
    }

    /// Closes everything (before a reboot).
    pub fn close_all(&mut self, code: u16, reason: &str) {
        let conns: Vec<ConnId> = self
            .hub
            .keys()
            .chain(self.clients.keys())
            .copied()
            .collect();
        for conn in conns {
            self.close(conn, code, reason);
        }
        std::thread::sleep(Duration::from_millis(200)); // let the sender threads write
    }
}

fn fail() -> EspError {
    EspError::from_infallible::<{ sys::ESP_FAIL }>()
}

/// One standalone client's sender: writes each message as one WebSocket frame straight to
/// the client's socket and reports sent frames; after a close or a failed write (reported
/// as [`Event::Closed`]) it ends the session.
fn client_thread(
    conn: ConnId,
    fd: i32,
    server: usize,
    rx: std::sync::mpsc::Receiver<Out>,
    events: Sender<Event>,
) {
    // SAFETY: httpd owns `fd` and closes it when the session ends; ManuallyDrop keeps this
    // thread from ever closing it. Only this thread writes to it from now on.
    let mut sock = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    let _ = sock.set_write_timeout(Some(SEND_TIMEOUT));
    let mut write = |opcode, payload: &[u8]| {
        let (head, n) = server_frame_head(opcode, payload.len());
        sock.write_all(&head[..n])
            .and_then(|()| sock.write_all(payload))
    };
    // Ends when the main loop drops the queue (the client is gone: nothing more to do).
    for out in rx {
        let sent = match &out {
            Out::Text(t) => write(OPCODE_TEXT, t.as_bytes()),
            Out::Frame(jpeg) => write(OPCODE_BINARY, jpeg),
            Out::Close(code, reason) => {
                let mut payload = code.to_be_bytes().to_vec();
                payload.extend_from_slice(reason.as_bytes());
                let _ = write(OPCODE_CLOSE, &payload);
                break;
            }
        };
        match (sent, &out) {
            (Err(_), _) => {
                let _ = events.send(Event::Closed(conn));
                break;
            }
            (Ok(()), Out::Frame(_)) if events.send(Event::FrameSent(conn)).is_err() => return,
            _ => {}
        }
    }
    // Closed by the core, or broken: end the session (only these two; a queue dropped by
    // the main loop means httpd already closed the socket).
    // SAFETY: the server outlives every client; the call only queues work for httpd.
    unsafe { sys::httpd_sess_trigger_close(server as sys::httpd_handle_t, fd) };
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
