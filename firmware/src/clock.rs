//! The clock seam: monotonic `esp_timer` time for the core (the clock the camera driver stamps
//! frames with), and the wall clock SNTP sets, for capture timestamps. Must never interpret
//! time: the core decides what an unsynced clock means.

use esp_idf_svc::sntp::{EspSntp, SyncStatus};
use esp_idf_svc::sys::{self, EspError};
use espcam_camera::Instant;

/// Monotonic time since boot.
pub fn now() -> Instant {
    let us = unsafe { sys::esp_timer_get_time() };
    Instant::from_micros(u64::try_from(us).unwrap_or(0))
}

/// SNTP (pool.ntp.org), syncing in the background whenever the network allows.
pub struct WallClock(EspSntp<'static>);

impl WallClock {
    pub fn start() -> Result<Self, EspError> {
        Ok(Self(EspSntp::new_default()?))
    }

    /// µs since the Unix epoch, right after a sync completed; otherwise None. The IDF
    /// reports "completed" once per sync, so each sync (with its drift correction) reaches
    /// the core once.
    pub fn just_synced(&self) -> Option<u64> {
        if self.0.get_sync_status() != SyncStatus::Completed {
            return None;
        }
        log::info!("clock: synced by SNTP");
        espcam_camera::blocking::unix_micros()
    }
}
