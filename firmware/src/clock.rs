//! The clock seam: monotonic time for the core, and wall-clock time from SNTP for capture
//! timestamps.
//!
//! `now()` is `esp_timer` time (µs since boot), the clock the camera driver stamps frames
//! with. Must never interpret time: the core decides what an unsynced clock means.

use std::time::{SystemTime, UNIX_EPOCH};

use esp_idf_svc::sntp::{EspSntp, SyncStatus};
use esp_idf_svc::sys::{self, EspError};
use espcam_camera::Instant;

/// Monotonic time since boot.
pub fn now() -> Instant {
    let us = unsafe { sys::esp_timer_get_time() };
    Instant::from_micros(u64::try_from(us).unwrap_or(0))
}

/// SNTP (pool.ntp.org by default), running in the background once the network is up.
pub struct WallClock {
    sntp: EspSntp<'static>,
    /// Latched: the IDF reports "completed" once per sync, then "reset" again.
    synced: bool,
}

impl WallClock {
    /// Starts SNTP; it syncs whenever the network allows.
    pub fn start() -> Result<Self, EspError> {
        Ok(Self {
            sntp: EspSntp::new_default()?,
            synced: false,
        })
    }

    /// µs since the Unix epoch, once SNTP has set the system clock at least once.
    pub fn unix_micros(&mut self) -> Option<u64> {
        if !self.synced && self.sntp.get_sync_status() == SyncStatus::Completed {
            self.synced = true;
            log::info!("clock: synced by SNTP");
        }
        if !self.synced {
            return None;
        }
        let since = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(since.as_micros()).ok()
    }
}
