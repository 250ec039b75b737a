//! The wall clock, read one way everywhere.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the clock reads before it).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    now_ms() / 1000
}

/// Milliseconds since the Unix epoch as a JavaScript number (`Date.now()`): how the typed
/// documents keep their times.
#[allow(clippy::cast_precision_loss)] // exact below 2^53 ms, the year 287,396
pub fn now_ms_f64() -> f64 {
    now_ms() as f64
}
