//! The standalone seam: the ESP-IDF HTTP server with one WebSocket endpoint, `/ws` (seed 002).
//!
//! The server's handler runs on the httpd task; it only turns sockets into main-loop events
//! keyed by socket descriptor. The main loop asks the core whether to accept a client, and
//! this module keeps the core's `ConnId` ↔ socket map for sending. Must never answer a client
//! on its own (no ping/pong, no stats, no limits): the core does.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;

use esp_idf_svc::handle::RawHandle;
use esp_idf_svc::http::server::ws::{EspHttpWsConnection, EspHttpWsDetachedSender};
use esp_idf_svc::http::server::{Configuration, EspHttpServer};
use esp_idf_svc::sys::{self, EspError};
use esp_idf_svc::ws::FrameType;
use espcam_camera::ConnId;
use espcam_proto::control::MAX_CONTROL_MESSAGE;
use espcam_proto::standalone::{MAX_CLIENTS, PATH};

use crate::Event;

/// The server and the clients the core accepted.
pub struct Clients {
    server: EspHttpServer<'static>,
    open: BTreeMap<ConnId, (i32, EspHttpWsDetachedSender)>,
}

impl Clients {
    /// Serves `ws://<camera>/ws` on port 80.
    pub fn start(events: Sender<Event>) -> Result<Self, EspError> {
        let mut server = EspHttpServer::new(&Configuration {
            // The core's client limit, plus room to accept (and refuse) one more.
            max_open_sockets: MAX_CLIENTS + 2,
            ..Default::default()
        })
        .map_err(|e| e.0)?;
        server.ws_handler(PATH, None, move |ws| on_socket(&events, ws))?;
        log::info!("server: listening on port 80, path {PATH}");
        Ok(Self {
            server,
            open: BTreeMap::new(),
        })
    }

    /// Keeps the socket `fd` as the core's `conn`.
    pub fn adopt(&mut self, conn: ConnId, fd: i32, sender: EspHttpWsDetachedSender) {
        self.open.insert(conn, (fd, sender));
    }

    /// The connection on socket `fd`, if the core accepted it.
    pub fn conn_of(&self, fd: i32) -> Option<ConnId> {
        self.open
            .iter()
            .find(|(_, (f, _))| *f == fd)
            .map(|(c, _)| *c)
    }

    fn sender(&mut self, conn: ConnId) -> Result<&mut EspHttpWsDetachedSender, EspError> {
        self.open
            .get_mut(&conn)
            .map(|(_, s)| s)
            .ok_or_else(EspError::from_infallible::<{ sys::ESP_ERR_NOT_FOUND }>)
    }

    /// Sends one text message.
    pub fn send_text(&mut self, conn: ConnId, text: &str) -> Result<(), EspError> {
        self.sender(conn)?
            .send(FrameType::Text(false), text.as_bytes())
    }

    /// Sends `header` (if any) ++ `jpeg` as one binary message, without copying the JPEG.
    pub fn send_frame(
        &mut self,
        conn: ConnId,
        header: Option<&[u8]>,
        jpeg: &[u8],
    ) -> Result<(), EspError> {
        let sender = self.sender(conn)?;
        match header {
            None => sender.send(FrameType::Binary(false), jpeg),
            Some(h) => {
                sender.send(FrameType::Binary(true), h)?;
                sender.send(FrameType::Continue(true), jpeg)
            }
        }
    }

    /// Closes `conn` with a close frame (the core has already forgotten it).
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        if let Some((fd, mut sender)) = self.open.remove(&conn) {
            close_socket(&self.server, fd, &mut sender, code, reason);
        }
    }

    /// Turns away a client the core refused.
    pub fn refuse(&self, fd: i32, mut sender: EspHttpWsDetachedSender, code: u16, reason: &str) {
        close_socket(&self.server, fd, &mut sender, code, reason);
    }

    /// Releases a connection whose socket closed; returns the core's id for it.
    pub fn forget(&mut self, fd: i32) -> Option<ConnId> {
        let conn = self.conn_of(fd)?;
        self.open.remove(&conn);
        Some(conn)
    }

    /// Closes everything (before a reboot).
    pub fn close_all(&mut self, code: u16, reason: &str) {
        let conns: Vec<ConnId> = self.open.keys().copied().collect();
        for conn in conns {
            self.close(conn, code, reason);
        }
    }
}

fn close_socket(
    server: &EspHttpServer<'static>,
    fd: i32,
    sender: &mut EspHttpWsDetachedSender,
    code: u16,
    reason: &str,
) {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    let _ = sender.send(FrameType::Close, &payload);
    // Do not wait for the client's answer: a vanished client must not hold a slot.
    unsafe { sys::httpd_sess_trigger_close(server.handle(), fd) };
}

/// Runs on the httpd task for every open, message and close of a `/ws` socket.
fn on_socket(events: &Sender<Event>, ws: &mut EspHttpWsConnection) -> Result<(), EspError> {
    let fd = ws.session();
    if ws.is_new() {
        let _ = events.send(Event::ClientOpen(fd, ws.create_detached_sender()?));
        return Ok(());
    }
    if ws.is_closed() {
        let _ = events.send(Event::ClientClosed(fd));
        return Ok(());
    }
    let (kind, len) = ws.recv(&mut [])?;
    if len == 0 {
        // Already consumed by the call above (an empty or control frame).
        return Ok(());
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
