//! Firmware updates: esp-idf-svc's OTA API and HTTP client behind the core's
//! `blocking::Flasher` and `HttpGet` (`https://` with the hub's pin for a TLS hub), and the
//! boot-time facts the core needs (is this image pending? was one rolled back?).
//!
//! The worker thread, the order of jobs, the range reads and every rule (ranges, retries,
//! timeouts, URLs, the hash) are the core's (`espcam_camera::blocking`, `ota.rs`), tested
//! on the host; this module only makes the esp-idf calls.

use std::sync::mpsc::Sender;
use std::time::Duration;

use esp_idf_svc::http::client::{Configuration, EspHttpConnection};
use esp_idf_svc::http::Method;
use esp_idf_svc::ota::{EspOta, EspOtaUpdate, SlotState};
use esp_idf_svc::sys::{self, EspError};
use espcam_camera::blocking::{FlashUpdate, FlashWorker, Flasher, HttpGet};
use espcam_camera::OtaBoot;

use crate::net::Event;
use crate::tls::Pin;

struct Ota(EspOta);
struct Update<'a>(EspOtaUpdate<'a>);
/// The client of the range request in progress (a new one per request).
struct Http(Configuration, Option<EspHttpConnection>);

/// Reads what this boot is, then starts the core's OTA worker on the inactive slot; fetch
/// results go to the main loop.
pub fn start(events: Sender<Event>, pin: Option<Pin>) -> Result<(FlashWorker, OtaBoot), EspError> {
    let ota = EspOta::new()?;
    let running = ota.get_running_slot();
    let pending = running.is_ok_and(|s| s.state == SlotState::Unverified);
    let invalid = ota.get_last_invalid_slot().ok().flatten();
    let version = invalid.map(|s| s.firmware.map_or(String::new(), |f| f.version.to_string()));
    // SAFETY: a lookup in the partition table, which lives for the whole program.
    let slot = unsafe { sys::esp_ota_get_next_update_partition(std::ptr::null()).as_ref() };
    let config = Configuration {
        timeout: Some(Duration::from_secs(10)),
        server_certificate: pin.and_then(|p| p.cert),
        crt_bundle_attach: pin.and_then(|p| p.attach),
        ..Default::default()
    };
    let http = move || Http(config, None);
    // esp_ota_end reads the whole image back to check it (about a second): feed the watchdog.
    let feed = || {
        unsafe { sys::esp_task_wdt_reset() };
    };
    let capacity = slot.map_or(0, |s| s.size);
    let report = move |e| drop(events.send(Event::Core(e)));
    FlashWorker::spawn(Ota(ota), http, capacity, 12 * 1024, report, feed)
        .map(|w| (w, OtaBoot::detect(pending, version)))
        .map_err(|_| EspError::from_infallible::<{ sys::ESP_ERR_NO_MEM }>())
}

impl Flasher for Ota {
    type Update<'a> = Update<'a>;

    /// Erases only what the image needs, not the whole 3 MB slot.
    fn begin(&mut self, size: u32) -> Result<Update<'_>, String> {
        let update = self.0.initiate_update_with_known_size(size as usize);
        update
            .map(Update)
            .map_err(|e| format!("esp_ota_begin: {e}"))
    }

    fn confirm(&mut self) {
        match self.0.mark_running_slot_valid() {
            Ok(()) => log::info!("firmware confirmed: rollback cancelled"),
            Err(e) => log::error!("could not mark the running image valid: {e}"),
        }
    }

    fn rollback(&mut self) {
        let e = self.0.mark_running_slot_invalid_and_reboot();
        log::error!("rollback impossible ({e}); restarting into the same image");
        esp_idf_svc::hal::reset::restart();
    }
}

/// Dropping the update aborts it (`esp_ota_abort`).
impl FlashUpdate for Update<'_> {
    fn write(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.0
            .write(chunk)
            .map_err(|e| format!("esp_ota_write: {e}"))
    }

    fn complete(self) -> Result<(), String> {
        self.0.complete().map_err(|e| format!("esp_ota_end: {e}"))
    }
}

impl HttpGet for Http {
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> Result<u16, String> {
        let conn = EspHttpConnection::new(&self.0).map_err(|e| e.to_string())?;
        let conn = self.1.insert(conn);
        let request = conn.initiate_request(Method::Get, url, headers);
        request.map_err(|e| format!("request: {e}"))?;
        conn.initiate_response()
            .map_err(|e| format!("response: {e}"))?;
        Ok(conn.status())
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, String> {
        let conn = self.1.as_mut().ok_or("no request")?;
        conn.read(buf).map_err(|e| e.to_string())
    }
}
