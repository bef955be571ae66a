//! Hub mode (seed 000): the camera dials out to a hub on two links, control (JSON) and
//! stream (framed JPEGs), each with its own handshake, timeout and reconnect backoff; a
//! network watchdog restarts a camera the hub has not welcomed for too long.
//!
//! The stream link only runs beside a welcomed control link, and frames only flow on a
//! welcomed stream link. A frame that finds the stream link still busy is dropped, never
//! queued: the pacer slows down instead. This module must never touch a socket or a clock,
//! and must never decide what a command does (that is `core`'s).

use alloc::string::ToString;

use espcam_proto::{CameraMsg, DecodeError, HubMsg, PROTOCOL_VERSION, StreamHello, Telemetry};

use crate::backoff::Backoff;
use crate::core::Core;
use crate::time::Instant;
use crate::types::{
    CLOSE_NORMAL, ConnId, FrameSend, HANDSHAKE_TIMEOUT, HubConfig, Link, LinkStatus, Output,
    Sensor, Targets,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LinkState {
    Idle,
    Backoff { until: Instant },
    Connecting { conn: ConnId, deadline: Instant },
    Handshake { conn: ConnId, deadline: Instant },
    Ready { conn: ConnId, busy: bool },
}

impl LinkState {
    fn conn(&self) -> Option<ConnId> {
        match *self {
            LinkState::Connecting { conn, .. }
            | LinkState::Handshake { conn, .. }
            | LinkState::Ready { conn, .. } => Some(conn),
            LinkState::Idle | LinkState::Backoff { .. } => None,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match *self {
            LinkState::Backoff { until } => Some(until),
            LinkState::Connecting { deadline, .. } | LinkState::Handshake { deadline, .. } => {
                Some(deadline)
            }
            LinkState::Idle | LinkState::Ready { .. } => None,
        }
    }
}

#[derive(Debug, Clone)]
struct LinkSlot {
    state: LinkState,
    /// Failures since the last welcome; drives the reconnect delay.
    backoff: Backoff,
}

/// The hub-mode half of a camera.
#[derive(Debug)]
pub(crate) struct HubRole {
    config: HubConfig,
    control: LinkSlot,
    stream: LinkSlot,
    /// An `ota` offer that arrived, for the camera's OTA half to take.
    offer: Option<espcam_proto::OtaOffer>,
    /// Boot, or when the welcomed control link was last lost: the network watchdog counts
    /// from here while the control link is not ready.
    offline_since: Instant,
    /// Index of the hub the links go to (see `HubConfig::hubs`).
    hub: u8,
    /// Control-link failures since the last welcome, for failover.
    failures: u32,
}

fn ms(t: Instant) -> u64 {
    t.as_micros() / 1000
}

impl HubRole {
    pub(crate) fn new(config: HubConfig, now: Instant) -> Self {
        let slot = |state| LinkSlot {
            state,
            backoff: Backoff::new(config.backoff),
        };
        Self {
            // Connect at once after boot.
            control: slot(LinkState::Backoff { until: now }),
            stream: slot(LinkState::Idle),
            config,
            offer: None,
            offline_since: now,
            hub: 0,
            failures: 0,
        }
    }

    fn slot(&mut self, link: Link) -> &mut LinkSlot {
        match link {
            Link::Control => &mut self.control,
            Link::Stream => &mut self.stream,
        }
    }

    pub(crate) fn knows(&self, conn: ConnId) -> bool {
        self.link_of(conn).is_some()
    }

    fn link_of(&self, conn: ConnId) -> Option<Link> {
        if self.control.state.conn() == Some(conn) {
            Some(Link::Control)
        } else if self.stream.state.conn() == Some(conn) {
            Some(Link::Stream)
        } else {
            None
        }
    }

    /// When the network watchdog fires, if it is armed.
    fn watchdog_deadline(&self) -> Option<Instant> {
        if matches!(self.control.state, LinkState::Ready { .. }) {
            return None;
        }
        self.config.network_watchdog.map(|w| self.offline_since + w)
    }

    /// The earliest of the links' and the watchdog's deadlines.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [
            self.control.state.deadline(),
            self.stream.state.deadline(),
            self.watchdog_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The hub the links go to now (`0..hubs`).
    pub(crate) fn hub_index(&self) -> usize {
        usize::from(self.hub)
    }

    pub(crate) fn link_status(&self, link: Link) -> LinkStatus {
        let slot = match link {
            Link::Control => &self.control,
            Link::Stream => &self.stream,
        };
        match slot.state {
            LinkState::Idle => LinkStatus::Idle,
            LinkState::Backoff { .. } => LinkStatus::Backoff,
            LinkState::Connecting { .. } => LinkStatus::Connecting,
            LinkState::Handshake { .. } => LinkStatus::Handshake,
            LinkState::Ready { .. } => LinkStatus::Ready,
        }
    }

    /// Reconnects, handshake timeouts and the network watchdog.
    pub(crate) fn timeout<S: Sensor>(&mut self, core: &mut Core<S>, now: Instant) {
        if self.watchdog_deadline().is_some_and(|d| d <= now) {
            core.request_reboot("network watchdog: no welcome from the hub for too long");
            core.out.push_back(Output::Reboot);
            return;
        }
        for link in [Link::Control, Link::Stream] {
            match self.slot(link).state {
                LinkState::Backoff { until } if until <= now => {
                    let conn = core.new_conn();
                    self.slot(link).state = LinkState::Connecting {
                        conn,
                        deadline: now + HANDSHAKE_TIMEOUT,
                    };
                    core.out.push_back(Output::Connect { conn, link });
                }
                LinkState::Connecting { conn, deadline }
                | LinkState::Handshake { conn, deadline }
                    if deadline <= now =>
                {
                    core.close(conn, CLOSE_NORMAL, "no welcome from the hub within 10 s");
                    self.link_failed(core, now, link);
                }
                _ => {}
            }
        }
    }

    /// The WebSocket for `conn` is open: say hello.
    pub(crate) fn connected<S: Sensor>(&mut self, core: &mut Core<S>, conn: ConnId) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        let slot = self.slot(link);
        let LinkState::Connecting { deadline, .. } = slot.state else {
            return;
        };
        slot.state = LinkState::Handshake { conn, deadline };
        let (camera, token) = (self.config.camera.clone(), self.config.token.clone());
        let text = match link {
            Link::Control => CameraMsg::Hello(espcam_proto::Hello {
                proto: PROTOCOL_VERSION,
                camera,
                token,
                firmware: core.firmware.clone(),
                sensor: core.sensor_name.clone(),
                settings: core.settings,
                board: core.board.clone(),
                ota_pending: core.ota_pending,
            })
            .to_json(),
            Link::Stream => StreamHello {
                proto: PROTOCOL_VERSION,
                camera,
                token,
            }
            .to_json(),
        };
        core.send_text(conn, text);
    }

    pub(crate) fn closed<S: Sensor>(&mut self, core: &mut Core<S>, now: Instant, conn: ConnId) {
        if let Some(link) = self.link_of(conn) {
            self.link_failed(core, now, link);
        }
    }

    /// `link` is gone (closed, refused, timed out): schedule its reconnection. Losing the
    /// control link also closes the stream link, which only runs beside a welcomed control
    /// link.
    fn link_failed<S: Sensor>(&mut self, core: &mut Core<S>, now: Instant, link: Link) {
        if link == Link::Control && matches!(self.control.state, LinkState::Ready { .. }) {
            self.offline_since = now;
        }
        if link == Link::Control {
            self.failures = self.failures.saturating_add(1);
            if self.config.hubs > 1 && self.failures >= crate::types::FAILOVER_AFTER {
                // This hub is gone: try the next one, starting its backoff afresh.
                self.hub = (self.hub + 1) % self.config.hubs;
                self.failures = 0;
                self.control.backoff = Backoff::new(self.config.backoff);
            }
        }
        let slot = self.slot(link);
        let delay = slot.backoff.failed(ms(now), core.rng.next_u64());
        slot.state = LinkState::Backoff { until: now + delay };
        if link == Link::Control {
            if let Some(conn) = self.stream.state.conn() {
                core.close(conn, CLOSE_NORMAL, "control link lost");
            }
            self.stream.state = LinkState::Idle;
        }
        core.stop_streaming();
    }

    pub(crate) fn text<S: Sensor>(
        &mut self,
        core: &mut Core<S>,
        now: Instant,
        conn: ConnId,
        text: &str,
    ) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        match HubMsg::from_json(text) {
            Ok(HubMsg::Welcome { .. }) => {
                let slot = self.slot(link);
                if let LinkState::Handshake { conn, .. } = slot.state {
                    slot.state = LinkState::Ready { conn, busy: false };
                    slot.backoff.connected(ms(now));
                    if link == Link::Control {
                        self.failures = 0;
                    }
                    match link {
                        // The stream link follows a welcomed control link.
                        Link::Control => {
                            if self.stream.state == LinkState::Idle {
                                self.stream.state = LinkState::Backoff { until: now };
                            }
                        }
                        Link::Stream => core.start_streaming(now),
                    }
                }
            }
            Ok(HubMsg::Rejected { reason }) => {
                // A WebSocket close reason holds at most 123 bytes; cut the hub's reason on
                // a character boundary so the shell can send it as it is.
                const PREFIX: &str = "rejected by hub: ";
                let cut = espcam_proto::close::cut_bytes(
                    &reason,
                    espcam_proto::close::MAX_REASON - PREFIX.len(),
                );
                core.close(conn, CLOSE_NORMAL, alloc::format!("{PREFIX}{cut}"));
                self.link_failed(core, now, link);
            }
            Ok(HubMsg::Command(msg)) => {
                let ack = core.run_command(msg);
                core.send_text(conn, CameraMsg::Ack(ack).to_json());
                core.ack_sent();
            }
            Ok(HubMsg::Ota(offer)) if link == Link::Control => self.offer = Some(offer),
            Ok(HubMsg::Ota(_)) => {}
            Err(DecodeError::Command(e)) => {
                let ack = core.failed_ack(text, e.to_string());
                core.send_text(conn, CameraMsg::Ack(ack).to_json());
            }
            // Anything else from the hub is not for this protocol version: ignored.
            Err(_) => {}
        }
    }

    /// The `ota` offer that arrived, if any.
    pub(crate) fn take_offer(&mut self) -> Option<espcam_proto::OtaOffer> {
        self.offer.take()
    }

    /// The control link, when the hub has welcomed it.
    pub(crate) fn control_ready(&self) -> Option<ConnId> {
        match self.control.state {
            LinkState::Ready { conn, .. } => Some(conn),
            _ => None,
        }
    }

    pub(crate) fn has_free_target(&self) -> bool {
        matches!(self.stream.state, LinkState::Ready { busy: false, .. })
    }

    /// Where a captured frame goes: the stream link if it is free (it is busy from now on),
    /// an empty set if it is still sending, `None` if there is no stream link.
    pub(crate) fn take_targets(&mut self) -> Option<Targets> {
        let LinkState::Ready { conn, busy } = &mut self.stream.state else {
            return None;
        };
        let mut targets = Targets::EMPTY;
        if !*busy {
            *busy = true;
            targets.push(*conn);
        }
        Some(targets)
    }

    /// The stream link's send completed; it takes the next capture (never an older frame:
    /// the hub link is paced instead, see `pacing`).
    pub(crate) fn frame_sent(&mut self, conn: ConnId) -> Option<FrameSend> {
        if let LinkState::Ready { conn: c, busy } = &mut self.stream.state
            && *c == conn
        {
            *busy = false;
        }
        None
    }

    /// Once a second: telemetry on the control link.
    pub(crate) fn tick<S: Sensor>(&mut self, core: &mut Core<S>, now: Instant) {
        let LinkState::Ready { conn, .. } = self.control.state else {
            return;
        };
        let text = CameraMsg::Telemetry(Telemetry {
            fps: core.fps(),
            frames_sent: core.frames_sent,
            frames_dropped: core.frames_dropped,
            heap_free: core.health.heap_free,
            psram_free: core.health.psram_free,
            uptime_ms: u64::try_from(core.uptime(now).as_millis()).unwrap_or(u64::MAX),
            rssi: core.health.rssi,
            settings: core.settings,
            quality_in_force: core.reported_quality(),
        })
        .to_json();
        core.send_text(conn, text);
    }
}
