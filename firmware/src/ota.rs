//! Firmware updates: the core's `OtaSink` on esp-idf-svc's OTA API, its range fetches over
//! esp_http_client, and the boot-time facts it needs (is this image pending? was one rolled
//! back?).
//!
//! One worker thread owns `EspOta` and the `EspOtaUpdate` in progress (the update borrows
//! the `EspOta`, so both live on that thread's stack) and runs jobs in the order the core
//! asked for them: begin (erases the slot: seconds, so never on the main loop, which feeds
//! the task watchdog), write, fetch, finish. The core has at most one fetch outstanding and
//! writes each chunk before asking for the next, so the queue stays short. A write error is
//! returned by the sink's next call. Must never decide a range, a retry, a timeout or whether
//! the hash matches: those are the core's (`crates/camera/src/ota.rs`).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esp_idf_svc::http::client::{Configuration, EspHttpConnection};
use esp_idf_svc::http::Method;
use esp_idf_svc::io::Read;
use esp_idf_svc::ota::{EspOta, EspOtaUpdate, SlotState};
use esp_idf_svc::sys;
use espcam_camera::{FetchId, OtaBoot, OtaSink, OtaSinkError};

use crate::config;
use crate::net::Event;

enum Job {
    Begin,
    Write(Vec<u8>),
    Fetch(FetchId, String, u32, u32),
    Finish(Sender<Result<(), String>>),
    Abort,
    Confirm,
    Rollback,
}

/// The main loop's handle on the worker; also the core's sink.
pub struct Flash {
    jobs: Sender<Job>,
    /// The first error of a queued job, for the sink's next call.
    failed: Arc<Mutex<Option<String>>>,
}

/// What this boot is, read before the worker takes `EspOta`.
pub fn boot_state(ota: &EspOta) -> OtaBoot {
    let pending = ota
        .get_running_slot()
        .is_ok_and(|s| s.state == SlotState::Unverified);
    if pending {
        return OtaBoot::Pending;
    }
    match ota.get_last_invalid_slot() {
        Ok(Some(slot)) => OtaBoot::RolledBack {
            version: slot
                .firmware
                .map(|f| f.version.to_string())
                .unwrap_or_default(),
            reason: "it did not confirm itself (no welcome from the hub, or a crash)".into(),
        },
        _ => OtaBoot::Normal,
    }
}

impl Flash {
    /// Starts the worker; fetch results go to the main loop as `Event::OtaData`.
    pub fn start(events: Sender<Event>) -> Result<(Self, OtaBoot), sys::EspError> {
        let ota = EspOta::new()?;
        let boot = boot_state(&ota);
        let (jobs, rx) = channel();
        let failed = Arc::new(Mutex::new(None));
        let f = failed.clone();
        std::thread::Builder::new()
            .name("ota".into())
            .stack_size(12 * 1024)
            .spawn(move || worker(ota, rx, events, f))
            .map_err(|_| sys::EspError::from_infallible::<{ sys::ESP_ERR_NO_MEM }>())?;
        Ok((Self { jobs, failed }, boot))
    }

    fn send(&self, job: Job) -> Result<(), OtaSinkError> {
        if let Some(e) = self.failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(OtaSinkError(e));
        }
        self.jobs
            .send(job)
            .map_err(|_| OtaSinkError("the OTA worker has stopped".into()))
    }

    /// `Output::OtaFetch`: a path is fetched from the hub's HTTP port.
    pub fn fetch(&self, fetch: FetchId, url: &str, offset: u32, len: u32) {
        let url = match url.starts_with('/') {
            true => format!("http://{}:{}{url}", config::HUB_HOST, config::hub_ports().0),
            false => url.to_string(),
        };
        let _ = self.jobs.send(Job::Fetch(fetch, url, offset, len));
    }

    /// `Output::ConfirmImage`.
    pub fn confirm(&self) {
        let _ = self.jobs.send(Job::Confirm);
    }

    /// `Output::RollbackAndReboot` (the worker restarts the board).
    pub fn rollback(&self) {
        let _ = self.jobs.send(Job::Rollback);
    }
}

impl OtaSink for Flash {
    fn begin(&mut self, size: u32) -> Result<(), OtaSinkError> {
        // SAFETY: a lookup in the partition table, which lives for the whole program.
        let slot = unsafe { sys::esp_ota_get_next_update_partition(std::ptr::null()).as_ref() };
        let Some(slot) = slot else {
            return Err(OtaSinkError(
                "no OTA app partition (see partitions.csv)".into(),
            ));
        };
        if size > slot.size {
            return Err(OtaSinkError(format!(
                "the OTA slot holds {} bytes",
                slot.size
            )));
        }
        self.failed.lock().map(|mut f| *f = None).ok();
        self.send(Job::Begin)
    }

    fn write(&mut self, chunk: &[u8]) -> Result<(), OtaSinkError> {
        self.send(Job::Write(chunk.to_vec()))
    }

    fn finish(&mut self) -> Result<(), OtaSinkError> {
        let (tx, rx) = channel();
        self.send(Job::Finish(tx))?;
        // esp_ota_end reads the whole image back to check it: about a second.
        loop {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(r) => return r.map_err(OtaSinkError),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => unsafe {
                    sys::esp_task_wdt_reset();
                },
                Err(_) => return Err(OtaSinkError("the OTA worker has stopped".into())),
            }
        }
    }

    fn abort(&mut self) {
        let _ = self.jobs.send(Job::Abort);
    }
}

fn worker(
    mut ota: EspOta,
    jobs: Receiver<Job>,
    events: Sender<Event>,
    failed: Arc<Mutex<Option<String>>>,
) {
    let fail = |e: String| {
        if let Ok(mut f) = failed.lock() {
            f.get_or_insert(e);
        }
    };
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Begin => match ota.initiate_update() {
                Ok(update) => run_update(update, &jobs, &events, &fail),
                Err(e) => fail(format!("esp_ota_begin: {e}")),
            },
            Job::Fetch(fetch, url, offset, len) => {
                let _ = events.send(Event::OtaData(fetch, get_range(&url, offset, len)));
            }
            Job::Confirm => match ota.mark_running_slot_valid() {
                Ok(()) => log::info!("firmware confirmed: rollback cancelled"),
                Err(e) => log::error!("could not mark the running image valid: {e}"),
            },
            Job::Rollback => {
                let e = ota.mark_running_slot_invalid_and_reboot();
                log::error!("rollback impossible ({e}); restarting into the same image");
                esp_idf_svc::hal::reset::restart();
            }
            Job::Write(_) | Job::Finish(_) | Job::Abort => {}
        }
    }
}

/// Jobs while an update is open; returns when it is finished or aborted.
fn run_update(
    mut update: EspOtaUpdate<'_>,
    jobs: &Receiver<Job>,
    events: &Sender<Event>,
    fail: &dyn Fn(String),
) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Write(chunk) => {
                if let Err(e) = update.write(&chunk) {
                    fail(format!("esp_ota_write: {e}"));
                }
            }
            Job::Fetch(fetch, url, offset, len) => {
                let _ = events.send(Event::OtaData(fetch, get_range(&url, offset, len)));
            }
            Job::Finish(reply) => {
                let _ = reply.send(update.complete().map_err(|e| format!("esp_ota_end: {e}")));
                return;
            }
            // Dropping the update aborts it (esp_ota_abort).
            Job::Abort | Job::Begin => return,
            Job::Confirm | Job::Rollback => {}
        }
    }
}

/// `GET url` with `Range: bytes=offset-(offset+len-1)`; the body of a 206, at most `len + 1`
/// bytes (the core refuses a longer one).
fn get_range(url: &str, offset: u32, len: u32) -> Result<Vec<u8>, String> {
    let config = Configuration {
        timeout: Some(Duration::from_secs(10)),
        ..Default::default()
    };
    let mut conn = EspHttpConnection::new(&config).map_err(|e| e.to_string())?;
    let range = format!("bytes={offset}-{}", offset + len.max(1) - 1);
    conn.initiate_request(Method::Get, url, &[("Range", range.as_str())])
        .map_err(|e| format!("request: {e}"))?;
    conn.initiate_response()
        .map_err(|e| format!("response: {e}"))?;
    if conn.status() != 206 {
        return Err(format!(
            "HTTP {}, expected 206 Partial Content",
            conn.status()
        ));
    }
    let mut body = vec![0u8; len as usize + 1];
    let mut n = 0;
    while n < body.len() {
        match conn.read(&mut body[n..]) {
            Ok(0) => break,
            Ok(r) => n += r,
            Err(e) => return Err(format!("reading the body: {e}")),
        }
    }
    body.truncate(n);
    Ok(body)
}
