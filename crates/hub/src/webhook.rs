//! Webhooks: every motion start and end POSTed as JSON to the configured URLs (global ones
//! for every camera, plus each camera's own), with links to the event's thumbnail, playback
//! and clip.
//!
//! A subscriber of the hub's event bus, beside `motion` and `recorder`. Each URL has its own
//! delivery task and its own bounded queue: a slow or dead endpoint delays only its own
//! deliveries, and when its queue is full new notifications for it are dropped (and logged),
//! never queued without bound; the bus subscriber itself only `try_send`s. A delivery is
//! retried with exponential backoff (0.5 s, 1 s, 2 s, 4 s) and each attempt has a timeout.
//! Plain `http://` only: the hub carries no TLS client stack (put a local relay in front of
//! an https endpoint). This module must never block the bus or the analysis thread, and
//! never log a response body.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use tokio::sync::{broadcast, mpsc};
use tracing::{info, warn};

use crate::motion::MotionSettings;
use crate::state::Hub;
use crate::state::event::Event;

/// Notifications waiting per URL before new ones are dropped.
const QUEUE: usize = 64;
/// Attempts per notification.
const ATTEMPTS: u32 = 5;
/// First retry delay; doubled after each failed attempt.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// One attempt's time limit (connect, send, response head).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Checks a webhook URL: `http://HOST[:PORT]/PATH` (no TLS stack in the hub).
pub fn check_url(url: &str) -> Result<(), String> {
    let shown: String = url.chars().take(80).collect();
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        format!("webhook {shown}: expected an http:// URL (https is not supported)")
    })?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || url.len() > 2048 || url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("webhook {shown}: expected http://HOST[:PORT]/PATH"));
    }
    url.parse::<axum::http::Uri>()
        .map(|_| ())
        .map_err(|e| format!("webhook {shown}: {e}"))
}

/// Starts delivery for the configured webhooks (nothing when there are none). `base` is the
/// hub's own URL (`http://HOST:PORT`) that links in the body start with.
pub fn start(hub: &Hub, settings: &MotionSettings, base: &str) {
    let mut urls: Vec<String> = settings.webhooks.clone();
    for list in settings.camera_webhooks.values() {
        for u in list {
            if !urls.contains(u) {
                urls.push(u.clone());
            }
        }
    }
    if urls.is_empty() {
        return;
    }
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut queues = HashMap::new();
    for url in &urls {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(deliver(
            client.clone(),
            url.clone(),
            rx,
            hub.shutdown_signal(),
        ));
        queues.insert(url.clone(), tx);
    }
    info!("webhooks: {} URL(s) told about motion events", urls.len());
    tokio::spawn(fan_out(
        hub.clone(),
        settings.clone(),
        queues,
        base.trim_end_matches('/').to_string(),
    ));
}

async fn fan_out(
    hub: Hub,
    settings: MotionSettings,
    queues: HashMap<String, mpsc::Sender<Bytes>>,
    base: String,
) {
    let mut events = hub.subscribe();
    let mut stop = hub.shutdown_signal();
    loop {
        let ev = tokio::select! {
            _ = stop.changed() => return,
            ev = events.recv() => ev,
        };
        let (kind, m) = match ev {
            Ok(e @ (Event::MotionStarted(_) | Event::MotionEnded(_))) => match e {
                Event::MotionStarted(m) => ("motion_start", m),
                Event::MotionEnded(m) => ("motion_end", m),
                _ => continue,
            },
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!("webhooks missed {n} hub events (the bus ran ahead)");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let mut event = crate::http::events::event_json(&m);
        if let Some(links) = event.get_mut("links").and_then(|l| l.as_object_mut()) {
            for v in links.values_mut() {
                if let Some(path) = v.as_str() {
                    *v = json!(format!("{base}{path}"));
                }
            }
        }
        let body = Bytes::from(json!({ "type": kind, "event": event }).to_string());
        let own = settings.camera_webhooks.get(&m.camera);
        for url in settings.webhooks.iter().chain(own.into_iter().flatten()) {
            if let Some(q) = queues.get(url)
                && q.try_send(body.clone()).is_err()
            {
                warn!(
                    "webhook {}: queue full ({QUEUE}), {kind} of camera {} dropped",
                    crate::text::for_log(url),
                    m.camera
                );
            }
        }
    }
}

async fn deliver(
    client: Client<HttpConnector, Full<Bytes>>,
    url: String,
    mut rx: mpsc::Receiver<Bytes>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let shown = crate::text::for_log(&url);
    loop {
        let body = tokio::select! {
            _ = stop.changed() => return,
            b = rx.recv() => match b { Some(b) => b, None => return },
        };
        let mut delay = FIRST_RETRY;
        for attempt in 1..=ATTEMPTS {
            let req = axum::http::Request::post(url.as_str())
                .header("content-type", "application/json")
                .header(
                    "user-agent",
                    concat!("espcam-hub/", env!("CARGO_PKG_VERSION")),
                )
                .body(Full::new(body.clone()));
            let req = match req {
                Ok(r) => r,
                Err(e) => {
                    warn!("webhook {shown}: bad request: {e}");
                    break;
                }
            };
            let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, client.request(req)).await;
            let why = match outcome {
                Ok(Ok(resp)) if resp.status().is_success() => break,
                Ok(Ok(resp)) => format!("status {}", resp.status().as_u16()),
                Ok(Err(e)) => e.to_string(),
                Err(_) => format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
            };
            if attempt == ATTEMPTS {
                warn!("webhook {shown}: giving up after {ATTEMPTS} attempts: {why}");
                break;
            }
            tokio::select! {
                _ = stop.changed() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay *= 2;
        }
    }
}
