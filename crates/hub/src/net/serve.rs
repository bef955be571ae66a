//! The hub's accept loop, in place of `axum::serve`, so that every door has limits:
//!
//! - **a connection budget per port**, in total and per client address: past it, a new
//!   connection is closed at once instead of taking a file descriptor and a task. The two
//!   ports have separate budgets (cameras' stream port 6972 cannot be starved by browsers on
//!   6971, and the reverse);
//! - **a header deadline**: a client must send a complete request head within
//!   `header_timeout` of the connection opening or of its previous response (hyper's
//!   `header_read_timeout`, which `axum::serve` leaves without a timer and so never fires) —
//!   idle, slow-header and idle keep-alive connections are closed;
//! - the write-stall timeout of [`super::listener::StallGuard`] on every connection.
//!
//! Upgraded connections (WebSockets) leave hyper and are bounded by their own handlers
//! (hello deadlines, size caps, write-stall timeouts, the browser sockets' idle timeout);
//! they keep their place in the budget until they end, because the slot travels with the
//! connection ([`Slotted`]) rather than with hyper's part of it. This module must never hold a
//! connection past its budget or wait on one at shutdown for longer than [`DRAIN`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::watch;
use tracing::{debug, warn};

use super::listener::{HubListener, PeerAddr};

/// How long in-flight HTTP requests may take to finish once the hub stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Limits for one listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoorLimits {
    /// Open connections on this port, in all.
    pub max_connections: usize,
    /// Open connections on this port from one client address.
    pub max_per_address: usize,
    /// Time a client has to send a request head (and an idle keep-alive connection lives).
    pub header_timeout: Duration,
}

/// Open connections per address on one port, and in all.
#[derive(Debug, Default)]
struct Budget {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// A connection's place in the budget; given back on drop.
#[derive(Debug)]
struct Slot {
    budget: Arc<Mutex<Budget>>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut b = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        b.total = b.total.saturating_sub(1);
        if let Some(n) = b.by_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                b.by_address.remove(&self.ip);
            }
        }
    }
}

/// A connection with its place in the budget: the slot is given back when the connection
/// is dropped — by hyper, or by the WebSocket handler it was upgraded to (hyper's connection
/// future ends at the upgrade, while the socket lives on in the handler).
struct Slotted<I> {
    io: I,
    _slot: Slot,
}

impl<I: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Slotted<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Slotted<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Why a connection was refused a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    Total(usize),
    Address(usize),
}

fn take_slot(
    budget: &Arc<Mutex<Budget>>,
    ip: IpAddr,
    limits: &DoorLimits,
) -> Result<Slot, Refused> {
    let mut b = budget.lock().unwrap_or_else(|e| e.into_inner());
    if b.total >= limits.max_connections {
        return Err(Refused::Total(limits.max_connections));
    }
    let n = b.by_address.entry(ip).or_insert(0);
    if *n >= limits.max_per_address {
        return Err(Refused::Address(limits.max_per_address));
    }
    *n += 1;
    b.total += 1;
    Ok(Slot {
        budget: budget.clone(),
        ip,
    })
}

/// Serves `router` on `listener` until `stop` turns `true`, then lets in-flight requests
/// finish (at most [`DRAIN`]).
pub async fn serve(
    mut listener: HubListener,
    router: Router,
    limits: DoorLimits,
    mut stop: watch::Receiver<bool>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let budget = Arc::new(Mutex::new(Budget::default()));
    // One warning per refusal burst, not one per connection.
    let mut refused_since_log = 0u64;
    let mut last_log = tokio::time::Instant::now();
    loop {
        let (io, addr): (_, SocketAddr) = tokio::select! {
            biased;
            () = stopped(&mut stop) => break,
            c = listener.accept() => c,
        };
        let slot = match take_slot(&budget, addr.ip(), &limits) {
            Ok(s) => s,
            Err(why) => {
                refused_since_log += 1;
                if last_log.elapsed() >= Duration::from_secs(10) {
                    let what = match why {
                        Refused::Total(n) => format!("{n} connections in all"),
                        Refused::Address(n) => format!("{n} connections from {}", addr.ip()),
                    };
                    warn!(
                        "port {}: refused {refused_since_log} connection(s) in the last 10 s (limit reached: {what})",
                        listener.local_addr().map(|a| a.port()).unwrap_or(0)
                    );
                    refused_since_log = 0;
                    last_log = tokio::time::Instant::now();
                }
                drop(io);
                continue;
            }
        };
        // The slot lives as long as the connection, upgraded or not.
        let io = Slotted { io, _slot: slot };
        let router = router.clone();
        let service = hyper::service::service_fn(
            move |mut req: axum::extract::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo(PeerAddr(addr)));
                tower::ServiceExt::oneshot(router.clone(), req.map(axum::body::Body::new))
            },
        );
        let stop = stop.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(io, service, limits, stop, addr).await,
                Some(acceptor) => {
                    // The handshake counts against the header deadline: a client that opens
                    // a connection and never finishes its hello holds nothing for long.
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(io)).await {
                        Ok(Ok(tls_io)) => {
                            serve_connection(tls_io, service, limits, stop, addr).await;
                        }
                        Ok(Err(e)) => debug!("TLS handshake from {addr} failed: {e}"),
                        Err(_) => debug!(
                            "TLS handshake from {addr} not done within {} ms",
                            limits.header_timeout.as_millis()
                        ),
                    }
                }
            }
        });
    }
    // Wait (bounded) for the connections still finishing their requests, and for the
    // WebSockets closing on `stop`.
    let deadline = tokio::time::Instant::now() + DRAIN;
    while budget.lock().unwrap_or_else(|e| e.into_inner()).total > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Serves HTTP/1.1 (with upgrades) on one connection, plain or TLS.
async fn serve_connection<I, S>(
    io: I,
    service: S,
    limits: DoorLimits,
    mut stop: watch::Receiver<bool>,
    addr: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::Future: Send + 'static,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Data: Send,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(64 * 1024);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        () = stopped(&mut stop) => {
            // Finish the request in flight, then close; an upgraded connection has
            // already left hyper and ends through its own handler.
            conn.as_mut().graceful_shutdown();
            tokio::time::timeout(DRAIN, conn.as_mut()).await.unwrap_or(Ok(()))
        }
    };
    if let Err(e) = ended {
        debug!("connection from {addr} ended: {e}");
    }
}

/// Resolves once `stop` is `true` (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_per_address_and_total() {
        let limits = DoorLimits {
            max_connections: 3,
            max_per_address: 2,
            header_timeout: Duration::from_secs(1),
        };
        let b = Arc::new(Mutex::new(Budget::default()));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let c: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = take_slot(&b, a, &limits).unwrap();
        let _s2 = take_slot(&b, a, &limits).unwrap();
        assert_eq!(take_slot(&b, a, &limits).unwrap_err(), Refused::Address(2));
        let _s3 = take_slot(&b, c, &limits).unwrap();
        assert_eq!(take_slot(&b, c, &limits).unwrap_err(), Refused::Total(3));
        drop(s1);
        assert!(take_slot(&b, a, &limits).is_ok());
        assert_eq!(
            b.lock().unwrap().total,
            2,
            "the temporary slot was given back"
        );
    }
}
