//! Firmware updates: the core's `OtaSink` on esp-idf-svc's OTA API, its range fetches over
//! esp_http_client (`https://` with the hub's pin for a TLS hub), and the boot-time facts it
//! needs (is this image pending? was one rolled back?).
//!
//! One worker thread owns `EspOta` and the `EspOtaUpdate` in progress (the update borrows
//! the `EspOta`, so both live on that thread's stack) and runs jobs in the order the core
//! asked for them: begin (erases the slot: seconds, so never on the main loop, which feeds
//! the task watchdog), write, fetch, finish. The core has at most one fetch outstanding and
//! writes each chunk before asking for the next, so the queue stays short. A write error is
//! returned by the sink's next call. Must never decide a range, a retry, a timeout, a URL or
//! whether the hash matches: those are the core's (`crates/camera/src/ota.rs`, `target.rs`).

use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use esp_idf_svc::http::client::{Configuration, EspHttpConnection};
use esp_idf_svc::http::Method;
use esp_idf_svc::io::Read;
use esp_idf_svc::ota::{EspOta, EspOtaUpdate, Slot, SlotState};
use esp_idf_svc::sys::{self, EspError};
use espcam_camera::{check_image_fits, check_range_status, range_body_limit, range_header};
use espcam_camera::{FetchId, OtaBoot, OtaSink, OtaSinkError, ShellEvent};

use crate::net::Event;
use crate::tls::Pin;

/// What the worker does, in order.
pub enum Job {
    Begin(u32),
    Write(Vec<u8>),
    Fetch(FetchId, String, u32, u32),
    Finish(Sender<Result<(), String>>),
    Abort,
    Confirm,
    Rollback,
}

/// The main loop's handle on the worker (one clone is the core's sink).
#[derive(Clone)]
pub struct Flash {
    jobs: Sender<Job>,
    /// The first error of a queued job, for the sink's next call.
    failed: Arc<Mutex<Option<String>>>,
    /// Bytes the inactive slot holds (0: no OTA partition).
    capacity: u32,
}

impl Flash {
    /// Reads what this boot is, then starts the worker; fetch results go to the main loop
    /// as `Event::OtaData`.
    pub fn start(events: Sender<Event>, pin: Option<Pin>) -> Result<(Self, OtaBoot), EspError> {
        let ota = EspOta::new()?;
        let pending = ota
            .get_running_slot()
            .is_ok_and(|s| s.state == SlotState::Unverified);
        let invalid = ota.get_last_invalid_slot().ok().flatten();
        let version = |s: Slot| {
            s.firmware
                .map(|f| f.version.to_string())
                .unwrap_or_default()
        };
        let boot = OtaBoot::detect(pending, invalid.map(version));
        // SAFETY: a lookup in the partition table, which lives for the whole program.
        let slot = unsafe { sys::esp_ota_get_next_update_partition(std::ptr::null()).as_ref() };
        let (jobs, rx) = channel();
        let failed = Arc::new(Mutex::new(None));
        let f = failed.clone();
        std::thread::Builder::new()
            .name("ota".into())
            .stack_size(12 * 1024)
            .spawn(move || worker(ota, rx, events, f, pin))
            .map_err(|_| EspError::from_infallible::<{ sys::ESP_ERR_NO_MEM }>())?;
        let capacity = slot.map_or(0, |s| s.size);
        Ok((
            Self {
                jobs,
                failed,
                capacity,
            },
            boot,
        ))
    }

    fn send(&self, job: Job) -> Result<(), OtaSinkError> {
        if let Some(e) = self.failed.lock().ok().and_then(|mut f| f.take()) {
            return Err(OtaSinkError(e));
        }
        self.jobs
            .send(job)
            .map_err(|_| OtaSinkError("the OTA worker has stopped".into()))
    }

    /// Queues `job` (`Fetch`, `Confirm`, `Rollback`: the core's outputs).
    pub fn job(&self, job: Job) {
        let _ = self.jobs.send(job);
    }
}

impl OtaSink for Flash {
    fn begin(&mut self, size: u32) -> Result<(), OtaSinkError> {
        check_image_fits(size, self.capacity)?;
        self.failed.lock().map(|mut f| *f = None).ok();
        self.send(Job::Begin(size))
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
                Err(RecvTimeoutError::Timeout) => unsafe { sys::esp_task_wdt_reset() },
                Err(_) => return Err(OtaSinkError("the OTA worker has stopped".into())),
            };
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
    pin: Option<Pin>,
) {
    let fail = |e: String| {
        if let Ok(mut f) = failed.lock() {
            f.get_or_insert(e);
        }
    };
    let fetch = |fetch, url: String, offset, len| {
        let body = get_range(&url, offset, len, pin);
        let _ = events.send(Event::Core(ShellEvent::OtaData(fetch, body)));
    };
    while let Ok(job) = jobs.recv() {
        match job {
            // Erases only what the image needs, not the whole 3 MB slot.
            Job::Begin(size) => match ota.initiate_update_with_known_size(size as usize) {
                Ok(update) => run_update(update, &jobs, &fetch, &fail),
                Err(e) => fail(format!("esp_ota_begin: {e}")),
            },
            Job::Fetch(id, url, offset, len) => fetch(id, url, offset, len),
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
    fetch: &dyn Fn(FetchId, String, u32, u32),
    fail: &dyn Fn(String),
) {
    while let Ok(job) = jobs.recv() {
        match job {
            Job::Write(chunk) => {
                if let Err(e) = update.write(&chunk) {
                    fail(format!("esp_ota_write: {e}"));
                }
            }
            Job::Fetch(id, url, offset, len) => fetch(id, url, offset, len),
            Job::Finish(reply) => {
                let _ = reply.send(update.complete().map_err(|e| format!("esp_ota_end: {e}")));
                return;
            }
            // Dropping the update aborts it (esp_ota_abort).
            Job::Abort | Job::Begin(_) => return,
            Job::Confirm | Job::Rollback => {}
        }
    }
}

/// `GET url` with the core's `Range` header; the body of a 206, cut at the core's limit
/// (the core refuses a longer one).
fn get_range(url: &str, offset: u32, len: u32, pin: Option<Pin>) -> Result<Vec<u8>, String> {
    let config = Configuration {
        timeout: Some(Duration::from_secs(10)),
        server_certificate: pin.and_then(|p| p.cert),
        crt_bundle_attach: pin.and_then(|p| p.attach),
        ..Default::default()
    };
    let mut conn = EspHttpConnection::new(&config).map_err(|e| e.to_string())?;
    let range = range_header(offset, len);
    conn.initiate_request(Method::Get, url, &[("Range", range.as_str())])
        .map_err(|e| format!("request: {e}"))?;
    conn.initiate_response()
        .map_err(|e| format!("response: {e}"))?;
    check_range_status(conn.status())?;
    let mut body = vec![0u8; range_body_limit(len)];
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
