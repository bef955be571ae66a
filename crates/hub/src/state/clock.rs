//! Wall-clock time in the units the protocol uses. The one place the hub reads the clock
//! for timestamps, so they are consistent; never used for timeouts (those use `tokio::time`).

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before 1970).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
