//! Firmware updates from the hub: the camera's side of an `ota` offer, as a state machine on
//! the virtual clock.
//!
//! An offer is checked (board, one update at a time, a confirmed running image), the
//! [`OtaSink`] is begun with the image size, and the image is fetched in ranges through
//! [`Output::OtaFetch`]: this module decides every range, timeout and retry; the shell only
//! performs HTTP requests. Each chunk is written to the sink and hashed; with every byte in,
//! the SHA-256 must match the offer, the sink is finished, and the camera restarts into the
//! new image ([`Output::SetBootAndReboot`]). That boot is [`OtaBoot::Pending`]: it confirms
//! itself ([`Output::ConfirmImage`], then `ota_result ok`) only once the hub has welcomed it,
//! and rolls back ([`Output::RollbackAndReboot`]) when that does not happen in time.
//!
//! It must never leave a half-written image behind: every failure after `begin` calls
//! [`OtaSink::abort`] and reports an `ota_result` with a reason, and the running firmware
//! stays. It must never touch a socket or a clock, and never runs on the frame path.

use alloc::format;
use alloc::string::String;
use core::fmt;

use espcam_proto::CameraMsg;
use espcam_proto::ota::{MAX_OTA_REASON, OtaOffer, OtaProgress, OtaResult, Sha256Digest, cut};
use sha2::{Digest, Sha256};

use crate::core::Core;
use crate::time::Instant;
use crate::types::{ConnId, FetchId, OtaBoot, OtaConfig, OtaSink, Output, Sensor};

/// One download in progress.
struct Job {
    offer: OtaOffer,
    written: u32,
    hasher: Sha256,
    /// Failed attempts at the current chunk.
    failures: u8,
    fetch: Fetch,
    last_progress: Option<Instant>,
}

impl fmt::Debug for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("version", &self.offer.version)
            .field("written", &self.written)
            .field("size", &self.offer.size)
            .field("failures", &self.failures)
            .field("fetch", &self.fetch)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fetch {
    /// The shell is performing this request; it times out at `deadline`.
    InFlight { id: FetchId, deadline: Instant },
    /// Waiting to retry after a failure.
    Retry { at: Instant },
}

/// The firmware-update half of a camera.
#[derive(Debug)]
pub(crate) struct Ota<O> {
    pub(crate) sink: O,
    config: OtaConfig,
    board: Option<String>,
    /// `Some` while this boot's image still has to reach the hub (a pending boot).
    confirm_by: Option<Instant>,
    job: Option<Job>,
    /// A result waiting for a welcomed control link.
    unsent: Option<OtaResult>,
    /// A progress report waiting for a welcomed control link.
    progress: Option<OtaProgress>,
    next_fetch: u32,
    /// The image is installed: restart once the last report left.
    installed: bool,
}

impl<O: OtaSink> Ota<O> {
    pub(crate) fn new(
        sink: O,
        config: OtaConfig,
        board: Option<String>,
        boot: &OtaBoot,
        now: Instant,
    ) -> Self {
        let mut ota = Self {
            sink,
            config,
            board,
            confirm_by: None,
            job: None,
            unsent: None,
            progress: None,
            next_fetch: 1,
            installed: false,
        };
        match boot {
            OtaBoot::Normal => {}
            OtaBoot::Pending => ota.confirm_by = Some(now + config.confirm_window),
            OtaBoot::RolledBack { version, reason } => {
                ota.unsent = Some(failure(version, &format!("rolled back: {reason}")));
            }
        }
        ota
    }

    /// Whether this boot's image is still unconfirmed.
    pub(crate) fn pending(&self) -> bool {
        self.confirm_by.is_some()
    }

    /// Whether a download is running.
    pub(crate) fn busy(&self) -> bool {
        self.job.is_some()
    }

    /// Bytes written and total of the running download.
    pub(crate) fn progress(&self) -> Option<(u32, u32)> {
        self.job.as_ref().map(|j| (j.written, j.offer.size))
    }

    /// When [`Ota::timeout`] must run next.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let job = self.job.as_ref().map(|j| match j.fetch {
            Fetch::InFlight { deadline, .. } => deadline,
            Fetch::Retry { at } => at,
        });
        match (job, self.confirm_by) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The hub offered an image.
    pub(crate) fn offer<S: Sensor>(&mut self, core: &mut Core<S>, now: Instant, offer: OtaOffer) {
        let refuse = if self.job.is_some() {
            Some(String::from("another update is already running"))
        } else if self.confirm_by.is_some() {
            Some(String::from(
                "the running image is not confirmed yet; try again once it is",
            ))
        } else {
            match &self.board {
                None => Some(String::from("this camera does not know its board")),
                Some(b) if *b != offer.board => Some(format!(
                    "image is for board {}, this camera is {}",
                    cut(&offer.board, 32),
                    b
                )),
                Some(_) => None,
            }
        };
        if let Some(reason) = refuse {
            self.unsent = Some(failure(&offer.version, &reason));
            return;
        }
        if let Err(e) = self.sink.begin(offer.size) {
            let reason = format!("no space for an image of {} bytes: {e}", offer.size);
            self.unsent = Some(failure(&offer.version, &reason));
            return;
        }
        self.progress = Some(OtaProgress {
            bytes: 0,
            total: offer.size,
        });
        self.job = Some(Job {
            offer,
            written: 0,
            hasher: Sha256::new(),
            failures: 0,
            fetch: Fetch::Retry { at: now },
            last_progress: Some(now),
        });
        self.fetch_next(core, now);
    }

    /// Asks the shell for the next range.
    fn fetch_next<S: Sensor>(&mut self, core: &mut Core<S>, now: Instant) {
        let Some(job) = &mut self.job else { return };
        let id = FetchId(self.next_fetch);
        self.next_fetch = self.next_fetch.wrapping_add(1);
        let len = self.config.chunk.min(job.offer.size - job.written);
        job.fetch = Fetch::InFlight {
            id,
            deadline: now + self.config.fetch_timeout,
        };
        core.out.push_back(Output::OtaFetch {
            fetch: id,
            url: job.offer.url.clone(),
            offset: job.written,
            len,
        });
    }

    fn in_flight(&self, fetch: FetchId) -> bool {
        matches!(&self.job, Some(Job { fetch: Fetch::InFlight { id, .. }, .. }) if *id == fetch)
    }

    /// The body of the range request `fetch`.
    pub(crate) fn data<S: Sensor>(
        &mut self,
        core: &mut Core<S>,
        now: Instant,
        fetch: FetchId,
        body: &[u8],
    ) {
        if !self.in_flight(fetch) {
            return;
        }
        let Some(job) = &mut self.job else { return };
        let (written, size) = (job.written, job.offer.size);
        let want = self.config.chunk.min(size - written);
        let got = u32::try_from(body.len()).unwrap_or(u32::MAX);
        if got > want {
            let reason = format!(
                "the hub sent {got} bytes for a range of {want} at byte {written}: expected a 206 answer to a Range request"
            );
            return self.fail(&reason);
        }
        if let Err(e) = self.sink.write(body) {
            return self.fail(&format!("writing the image failed at byte {written}: {e}"));
        }
        let Some(job) = &mut self.job else { return };
        job.hasher.update(body);
        job.written += got;
        job.failures = 0;
        if got < want {
            let reason = format!(
                "image too short: the hub sent {} of {size} bytes",
                job.written
            );
            return self.fail(&reason);
        }
        let due = job
            .last_progress
            .is_none_or(|t| now.saturating_since(t) >= self.config.progress_interval);
        if due || job.written == size {
            job.last_progress = Some(now);
            self.progress = Some(OtaProgress {
                bytes: job.written,
                total: size,
            });
        }
        if job.written < size {
            return self.fetch_next(core, now);
        }
        let hasher = core::mem::take(&mut job.hasher);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(hasher.finalize().as_slice());
        let digest = Sha256Digest(digest);
        if digest != job.offer.sha256 {
            let reason = format!(
                "sha256 mismatch: expected {}, got {digest}",
                job.offer.sha256
            );
            return self.fail(&reason);
        }
        if let Err(e) = self.sink.finish() {
            return self.fail(&format!("the image failed validation: {e}"));
        }
        self.job = None;
        core.request_reboot("firmware update installed");
        // The last progress report leaves before the restart (see `pump`).
        self.installed = true;
    }

    /// The range request `fetch` failed (connection refused, HTTP status, reset).
    pub(crate) fn failed(&mut self, now: Instant, fetch: FetchId, reason: &str) {
        if self.in_flight(fetch) {
            self.retry_or_fail(now, reason);
        }
    }

    fn retry_or_fail(&mut self, now: Instant, reason: &str) {
        let Some(job) = &mut self.job else { return };
        job.failures = job.failures.saturating_add(1);
        if job.failures > self.config.retries {
            let reason = format!(
                "download failed at byte {} of {} after {} attempts: {}",
                job.written,
                job.offer.size,
                job.failures,
                cut(reason, 80)
            );
            return self.fail(&reason);
        }
        let wait = core::time::Duration::from_secs(1 << (job.failures - 1).min(5));
        job.fetch = Fetch::Retry { at: now + wait };
    }

    /// Aborts the running download and reports why.
    fn fail(&mut self, reason: &str) {
        if let Some(job) = self.job.take() {
            self.sink.abort();
            self.progress = None;
            self.unsent = Some(failure(&job.offer.version, reason));
        }
    }

    /// Request timeouts, retries, and the confirmation window.
    pub(crate) fn timeout<S: Sensor>(&mut self, core: &mut Core<S>, now: Instant) {
        if let Some(by) = self.confirm_by
            && by <= now
        {
            self.confirm_by = None;
            core.request_reboot("new firmware did not reach the hub in time: rolling back");
            core.out.push_back(Output::RollbackAndReboot);
            return;
        }
        let Some(job) = &self.job else { return };
        match job.fetch {
            Fetch::InFlight { deadline, .. } if deadline <= now => {
                let secs = self.config.fetch_timeout.as_secs();
                self.retry_or_fail(now, &format!("no answer within {secs} s"));
                if matches!(&self.job, Some(Job { fetch: Fetch::Retry { at }, .. }) if *at <= now) {
                    self.fetch_next(core, now);
                }
            }
            Fetch::Retry { at } if at <= now => self.fetch_next(core, now),
            _ => {}
        }
    }

    /// After every input: with a welcomed control link, confirm a pending image and send
    /// what is waiting; a finished download restarts the camera once its last report left.
    pub(crate) fn pump<S: Sensor>(&mut self, core: &mut Core<S>, control: Option<ConnId>) {
        if let Some(conn) = control {
            if self.confirm_by.take().is_some() {
                core.out.push_back(Output::ConfirmImage);
                core.ota_pending = false;
                let result = OtaResult {
                    ok: true,
                    version: core.firmware.clone(),
                    error: None,
                };
                core.send_text(conn, CameraMsg::OtaResult(result).to_json());
            }
            if let Some(p) = self.progress.take() {
                core.send_text(conn, CameraMsg::OtaProgress(p).to_json());
            }
            if let Some(r) = self.unsent.take() {
                core.send_text(conn, CameraMsg::OtaResult(r).to_json());
            }
        }
        if core::mem::take(&mut self.installed) {
            core.out.push_back(Output::SetBootAndReboot);
        }
    }

    /// A camera without a hub (standalone mode) has nobody to confirm with: its image is
    /// taken as good at boot.
    pub(crate) fn confirm_now<S: Sensor>(&mut self, core: &mut Core<S>) {
        if self.confirm_by.take().is_some() {
            core.ota_pending = false;
            core.out.push_back(Output::ConfirmImage);
        }
    }
}

fn failure(version: &str, reason: &str) -> OtaResult {
    OtaResult {
        ok: false,
        version: String::from(cut(version, 64)),
        error: Some(String::from(cut(reason, MAX_OTA_REASON))),
    }
}
