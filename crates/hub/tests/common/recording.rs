//! What the recording-failure tests (`recording_errors.rs`, `recording_full_disk.rs`)
//! share: the hub's log captured in memory, polling until a condition holds, one metric's
//! value, and live frames read while recording fails. Included with `#[path]` after
//! `mod common;` (it uses `common::ws`, `decode` and `TestHub`).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;

/// The hub's log, captured in memory.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<u8>>>);

impl Log {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Polls `f` every 200 ms until it returns `Some`, for at most `secs` seconds.
pub async fn until<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of the metric line that starts with `series` (name and labels).
pub fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// Reads live frames from `/ws/view/cam-1` until `n` decoded JPEGs of 160×120 arrived.
pub async fn live_frames(hub: &TestHub, n: usize) {
    let mut view = ws(&hub.ws_url("/ws/view/cam-1")).await;
    let mut got = 0;
    while got < n {
        let m = tokio::time::timeout(Duration::from_secs(5), view.next())
            .await
            .expect("a live frame within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Binary(b) = m {
            assert_eq!(decode(&b), (160, 120));
            got += 1;
        }
    }
}
