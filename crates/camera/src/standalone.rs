//! Standalone mode (seed 002): the camera is the server. Up to [`MAX_CLIENTS`] WebSocket
//! clients each get a welcome, bare JPEGs, a heartbeat every second, `pong` for `ping`,
//! stats for `get_stats`, and an ack for every command; the sixth is refused with a reason.
//!
//! Every client runs at its own pace, as the hub's viewers do: a frame goes to the clients
//! that are free; a client still sending an older frame is marked as owed the newest one
//! and gets it the moment its send completes ([`StandaloneRole::frame_sent`]), skipping
//! whatever came between. So each client holds at most one frame (the one in flight) and
//! is owed at most one (the newest), and a client that never reads costs the others
//! nothing. This module must never touch a socket or a clock, never let one client's pace
//! decide another's, and never decide what a command does (that is `core`'s).

use alloc::string::{String, ToString};

use espcam_proto::standalone::{MAX_CLIENTS, PONG, TOO_MANY_CLIENTS};
use espcam_proto::{ApMessage, ApRequest, FrameHeader};

use crate::core::Core;
use crate::time::Instant;
use crate::types::{
    CLOSE_RESTART, CLOSE_TRY_AGAIN, ConnId, FrameSend, Refused, Sensor, StandaloneConfig, Targets,
};

#[derive(Debug, Clone, Copy)]
struct Client {
    conn: ConnId,
    /// A frame is on its way to this client; it gets no other until it is sent.
    busy: bool,
    /// A newer frame than the one in flight exists: this client gets it next.
    owed: bool,
}

/// The standalone half of a camera.
#[derive(Debug)]
pub(crate) struct StandaloneRole {
    config: StandaloneConfig,
    clients: [Option<Client>; MAX_CLIENTS],
    /// The newest frame sent to anyone, which owed clients get next (the shell keeps its
    /// bytes until the next frame replaces it).
    newest: Option<FrameHeader>,
}

impl StandaloneRole {
    pub(crate) fn new(config: StandaloneConfig) -> Self {
        Self {
            config,
            clients: [None; MAX_CLIENTS],
            newest: None,
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.clients.iter().flatten().count()
    }

    pub(crate) fn knows(&self, conn: ConnId) -> bool {
        self.clients.iter().flatten().any(|c| c.conn == conn)
    }

    fn find(&mut self, conn: ConnId) -> Option<&mut Option<Client>> {
        self.clients
            .iter_mut()
            .find(|c| c.is_some_and(|c| c.conn == conn))
    }

    /// A WebSocket client connected: admit it (welcome) or say why not.
    pub(crate) fn client_open<S: Sensor>(
        &mut self,
        core: &mut Core<S>,
        now: Instant,
    ) -> Result<ConnId, Refused> {
        if core.is_rebooting() {
            return Err(Refused {
                code: CLOSE_RESTART,
                reason: "camera is restarting",
            });
        }
        let Some(slot) = self.clients.iter_mut().find(|c| c.is_none()) else {
            return Err(Refused {
                code: CLOSE_TRY_AGAIN,
                reason: TOO_MANY_CLIENTS,
            });
        };
        let conn = core.new_conn();
        *slot = Some(Client {
            conn,
            busy: false,
            owed: false,
        });
        let text = ApMessage::Welcome {
            message: self.config.welcome.clone(),
        }
        .to_json();
        core.send_text(conn, text);
        core.start_streaming(now);
        Ok(conn)
    }

    pub(crate) fn closed<S: Sensor>(&mut self, core: &mut Core<S>, conn: ConnId) {
        if let Some(slot) = self.find(conn) {
            *slot = None;
        }
        if self.count() == 0 {
            core.stop_streaming();
        }
    }

    pub(crate) fn text<S: Sensor>(
        &mut self,
        core: &mut Core<S>,
        now: Instant,
        conn: ConnId,
        text: &str,
    ) {
        if self.find(conn).is_none() {
            return;
        }
        match ApRequest::parse(text) {
            Ok(ApRequest::Ping) => core.send_text(conn, String::from(PONG)),
            Ok(ApRequest::GetStats) => {
                let text = ApMessage::Stats {
                    clients: u8::try_from(self.count()).unwrap_or(u8::MAX),
                    fps: core.fps(),
                    frames: core.frames_sent,
                }
                .to_json();
                let _ = now;
                core.send_text(conn, text);
            }
            Ok(ApRequest::Command(msg)) => {
                let ack = core.run_command(msg);
                core.send_text(conn, ApMessage::Ack(ack).to_json());
                core.ack_sent();
            }
            Err(e) => {
                let ack = core.failed_ack(text, e.to_string());
                core.send_text(conn, ApMessage::Ack(ack).to_json());
            }
        }
    }

    pub(crate) fn has_free_target(&self) -> bool {
        self.clients.iter().flatten().any(|c| !c.busy)
    }

    /// Where a captured frame goes: every free client (busy from now on); an empty set if
    /// all are still sending, `None` if there are no clients. When the frame goes out, the
    /// busy clients are owed it.
    pub(crate) fn take_targets(&mut self) -> Option<Targets> {
        let mut targets = Targets::EMPTY;
        let mut any = false;
        for c in self.clients.iter_mut().flatten() {
            any = true;
            if !c.busy {
                c.busy = true;
                targets.push(c.conn);
            }
        }
        if !targets.as_slice().is_empty() {
            for c in self.clients.iter_mut().flatten() {
                c.owed = !targets.as_slice().contains(&c.conn);
            }
        }
        any.then_some(targets)
    }

    /// The frame that just left (with [`take_targets`](Self::take_targets)'s targets).
    pub(crate) fn sent_newest(&mut self, info: FrameHeader) {
        self.newest = Some(info);
    }

    /// `conn`'s send completed: free it, or hand it the newest frame it is owed.
    pub(crate) fn frame_sent(&mut self, conn: ConnId) -> Option<FrameSend> {
        let newest = self.newest;
        let Some(Some(c)) = self.find(conn) else {
            return None;
        };
        match newest {
            Some(info) if c.owed => {
                c.owed = false;
                let mut targets = Targets::EMPTY;
                targets.push(conn);
                Some(FrameSend {
                    header: None,
                    info,
                    targets,
                })
            }
            _ => {
                c.busy = false;
                None
            }
        }
    }

    /// Once a second: a heartbeat to every client.
    pub(crate) fn tick<S: Sensor>(&mut self, core: &mut Core<S>) {
        let n = self.count();
        if n == 0 {
            return;
        }
        let text = ApMessage::Heartbeat {
            fps: core.fps(),
            clients: u8::try_from(n).unwrap_or(u8::MAX),
        }
        .to_json();
        for c in self.clients.iter().flatten() {
            core.send_text(c.conn, text.clone());
        }
    }
}
