//! The hub link seam: WebSocket clients to the hub's control port (6971, `/ws/camera`) and
//! stream port (6972, `/ws/stream`), one per `Output::Connect` from the core.
//!
//! The C client runs on its own task; its events come back to the main loop through the
//! event channel, tagged with the core's `ConnId`. Must never retry, reconnect or interpret
//! a message on its own: the driver's auto-reconnect is off and the core decides.

use std::collections::BTreeMap;
use std::sync::mpsc::Sender;
use std::time::Duration;

use esp_idf_svc::hal::delay::TickType;
use esp_idf_svc::handle::RawHandle;
use esp_idf_svc::io::EspIOError;
use esp_idf_svc::sys::{self, EspError};
use esp_idf_svc::ws::client::{
    EspWebSocketClient, EspWebSocketClientConfig, FrameType, WebSocketEvent, WebSocketEventType,
};
use espcam_camera::{ConnId, Link};
use espcam_proto::control::MAX_CONTROL_MESSAGE;

use crate::Event;

/// How long one send may block the main loop before the link is declared broken.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The open hub connections.
pub struct HubLinks {
    host: &'static str,
    ports: (u16, u16),
    /// Where the client tasks report connects, messages and disconnects.
    events: Sender<Event>,
    open: BTreeMap<ConnId, EspWebSocketClient<'static>>,
}

impl HubLinks {
    /// Links to `host` on the (control, stream) `ports`.
    pub fn new(host: &'static str, ports: (u16, u16), events: Sender<Event>) -> Self {
        Self {
            host,
            ports,
            events,
            open: BTreeMap::new(),
        }
    }

    /// Starts opening `link` as `conn`; the outcome arrives as an [`Event`].
    pub fn connect(&mut self, conn: ConnId, link: Link) {
        let (port, path) = match link {
            Link::Control => (self.ports.0, espcam_proto::CONTROL_PATH),
            Link::Stream => (self.ports.1, espcam_proto::STREAM_PATH),
        };
        let uri = format!("ws://{}:{port}{path}", self.host);
        let config = EspWebSocketClientConfig {
            disable_auto_reconnect: true,
            // One hub message always arrives as one event (the wrapper does not reassemble).
            buffer_size: MAX_CONTROL_MESSAGE,
            network_timeout_ms: SEND_TIMEOUT,
            ..Default::default()
        };
        let events = self.events.clone();
        log::info!("link {}: connecting to {uri}", conn.get());
        // Inline, so the closure gets the callback's higher-ranked signature.
        let client = EspWebSocketClient::new(&uri, &config, SEND_TIMEOUT, move |e| {
            forward(&events, conn, e)
        });
        match client {
            Ok(client) => {
                self.open.insert(conn, client);
            }
            Err(e) => {
                log::warn!("link {}: {uri}: {e}", conn.get());
                let _ = self.events.send(Event::Closed(conn));
            }
        }
    }

    fn client(&mut self, conn: ConnId) -> Result<&mut EspWebSocketClient<'static>, EspError> {
        self.open
            .get_mut(&conn)
            .ok_or_else(EspError::from_infallible::<{ sys::ESP_ERR_NOT_FOUND }>)
    }

    /// Sends one text message.
    pub fn send_text(&mut self, conn: ConnId, text: &str) -> Result<(), EspError> {
        self.client(conn)?
            .send(FrameType::Text(false), text.as_bytes())
    }

    /// Sends `header` ++ `jpeg` as ONE binary message, in fragments, without copying the JPEG.
    pub fn send_frame(
        &mut self,
        conn: ConnId,
        header: Option<&[u8]>,
        jpeg: &[u8],
    ) -> Result<(), EspError> {
        let h = self.client(conn)?.handle();
        let t = TickType::from(SEND_TIMEOUT).ticks();
        let header = header.unwrap_or(&[]);
        let len = |b: &[u8]| i32::try_from(b.len()).unwrap_or(i32::MAX);
        // SAFETY: `h` is a started client owned by `self.open`; the buffers outlive the calls.
        let sent = unsafe {
            sys::esp_websocket_client_send_bin_partial(h, header.as_ptr().cast(), len(header), t)
                >= 0
                && sys::esp_websocket_client_send_cont_msg(h, jpeg.as_ptr().cast(), len(jpeg), t)
                    >= 0
                && sys::esp_websocket_client_send_fin(h, t) >= 0
        };
        if sent {
            Ok(())
        } else {
            Err(EspError::from_infallible::<{ sys::ESP_FAIL }>())
        }
    }

    /// Closes `conn` with `code` and `reason` (the core has already forgotten it).
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        if let Some(client) = self.open.remove(&conn) {
            if client.is_connected() {
                let t = TickType::new_millis(1000).ticks();
                let len = i32::try_from(reason.len()).unwrap_or(0);
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
            // Dropping stops and destroys the client task.
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

/// Runs on the client's task: turns its events into main-loop events.
fn forward(events: &Sender<Event>, conn: ConnId, event: &Result<WebSocketEvent<'_>, EspIOError>) {
    let event = match event {
        Ok(e) => match &e.event_type {
            WebSocketEventType::Connected => Event::Connected(conn),
            WebSocketEventType::Text(text) => Event::Text(conn, (*text).to_owned()),
            WebSocketEventType::Disconnected | WebSocketEventType::Closed => Event::Closed(conn),
            WebSocketEventType::Close(reason) => {
                log::info!("link {}: hub closed it ({reason:?})", conn.get());
                return;
            }
            // Pings are answered by the driver; binary from the hub means nothing.
            _ => return,
        },
        // Errors are followed by a Disconnected event when they end the connection.
        Err(e) => {
            log::warn!("link {}: {e}", conn.get());
            return;
        }
    };
    let _ = events.send(event);
}
