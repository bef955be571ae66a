//! Liveness of the browser sockets (`/ws/ui`, `/ws/view`, `/ws/playback`): the hub pings
//! each every `ping_interval`, and closes one from which nothing arrived — no pong, no
//! message, no frame of any kind — for `idle_timeout`, with [`espcam_proto::close::IDLE`].
//! A client that completed the handshake and then went silent (crashed, unplugged, or
//! stopped reading so that it never sees the pings) thereby gives its connection slot back
//! instead of holding it for ever. Browsers and WebSocket libraries answer pings on their
//! own, so a working client never notices.
//!
//! The other half of a stalled client — a socket that accepts no bytes — is not handled
//! here: every write on every connection fails once it has been pending for the
//! write-stall timeout (`viewer_timeout_ms`, [`super::listener`]), pings included.
//!
//! Sans-IO apart from the clock: the socket loops call [`Liveness::heard`] for whatever
//! arrives and act on what [`Liveness::due`] (or [`Liveness::now`]) says.

use std::time::Duration;

use tokio::time::Instant;

/// What a socket loop must do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Send a ping.
    Ping,
    /// Nothing arrived for the idle timeout: close with [`espcam_proto::close::IDLE`] and
    /// [`Liveness::reason`].
    Silent,
}

/// One socket's ping schedule and the time it last heard from its client.
#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    every: Duration,
    timeout: Duration,
    heard: Instant,
    next_ping: Instant,
}

impl Liveness {
    /// Starts counting now: the first ping goes out `every` from now.
    pub(crate) fn new(every: Duration, timeout: Duration) -> Self {
        let now = Instant::now();
        Self {
            every,
            timeout,
            heard: now,
            next_ping: now + every,
        }
    }

    /// The client sent something (a pong, a ping, a message, a close).
    pub(crate) fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// What is due at this instant, if anything. A `Ping` answer schedules the next one.
    pub(crate) fn now(&mut self) -> Option<Due> {
        let now = Instant::now();
        if now >= self.heard + self.timeout {
            return Some(Due::Silent);
        }
        if now >= self.next_ping {
            self.next_ping = now + self.every;
            return Some(Due::Ping);
        }
        None
    }

    /// Waits until a ping is due or the client has been silent for the idle timeout.
    /// Cancel-safe (nothing changes until it resolves): use it in a `select!` loop.
    pub(crate) async fn due(&mut self) -> Due {
        loop {
            if let Some(d) = self.now() {
                return d;
            }
            tokio::time::sleep_until(self.next_ping.min(self.heard + self.timeout)).await;
        }
    }

    /// The close reason for [`Due::Silent`].
    pub(crate) fn reason(&self) -> String {
        let ms = self.timeout.as_millis();
        let t = if ms.is_multiple_of(1000) {
            format!("{} s", ms / 1000)
        } else {
            format!("{ms} ms")
        };
        format!("nothing received for {t}: pings unanswered")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pings_every_interval_and_goes_silent_only_without_answers() {
        let mut l = Liveness::new(Duration::from_secs(15), Duration::from_secs(45));
        assert_eq!(l.now(), None);
        let start = Instant::now();
        assert_eq!(l.due().await, Due::Ping);
        assert_eq!(start.elapsed(), Duration::from_secs(15));
        // Answered: the silence counts from the pong.
        l.heard();
        assert_eq!(l.due().await, Due::Ping);
        assert_eq!(l.due().await, Due::Ping);
        // Heard at 15 s; the pings at 30 and 45 s unanswered: silent at 60 s (when the
        // next ping would be due, silence wins).
        assert_eq!(l.due().await, Due::Silent);
        assert_eq!(start.elapsed(), Duration::from_secs(60));
        assert_eq!(l.now(), Some(Due::Silent));
        assert_eq!(l.reason(), "nothing received for 45 s: pings unanswered");
        let short = Liveness::new(Duration::from_millis(200), Duration::from_millis(1500));
        assert_eq!(
            short.reason(),
            "nothing received for 1500 ms: pings unanswered"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_keeps_talking_is_never_silent() {
        let mut l = Liveness::new(Duration::from_secs(1), Duration::from_secs(3));
        for _ in 0..20 {
            assert_eq!(l.due().await, Due::Ping);
            l.heard();
        }
        assert_eq!(l.now(), None);
    }
}
