//! The hub's TCP listener: every accepted connection gets `TCP_NODELAY` and a write-stall
//! timeout.
//!
//! The stall timeout is what lets the hub drop an MJPEG client (or any peer) that stops
//! reading: hyper waits on a blocked write forever, so the timeout lives in the socket
//! itself — a write that stays pending longer than the viewer timeout fails, and hyper (or
//! the WebSocket task) closes that one connection. Idle connections are never timed out
//! here: only a write that cannot make progress is. This module must never buffer data.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Send buffer for every accepted connection, bytes (Linux doubles it for bookkeeping).
const SEND_BUFFER: usize = 256 * 1024;

/// A TCP listener whose connections are [`StallGuard`]ed.
#[derive(Debug)]
pub struct HubListener {
    inner: TcpListener,
    write_timeout: Duration,
}

impl HubListener {
    /// Wraps a bound listener.
    pub fn new(inner: TcpListener, write_timeout: Duration) -> Self {
        Self {
            inner,
            write_timeout,
        }
    }
}

impl Listener for HubListener {
    type Io = StallGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((tcp, addr)) => {
                    // Frames and small JSON messages must leave at once, not wait for
                    // Nagle's algorithm.
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!("could not set TCP_NODELAY for {addr}: {e}");
                    }
                    // A fixed send buffer bounds the kernel memory a viewer that stops
                    // reading can pin (autotuning grows it to megabytes on loopback) and
                    // lets the write-stall timeout notice it within seconds, not after
                    // hundreds of buffered frames. 256 KiB still holds several seconds of
                    // VGA video for a slow but live viewer.
                    if let Err(e) = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER) {
                        tracing::debug!("could not set SO_SNDBUF for {addr}: {e}");
                    }
                    return (StallGuard::new(tcp, self.write_timeout), addr);
                }
                Err(e) => {
                    // Per-connection errors (reset before accept) are nothing to wait for;
                    // running out of file descriptors is, or the loop would spin.
                    if !matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tracing::warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The peer's address, for handlers (`ConnectInfo<PeerAddr>`).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, HubListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, HubListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A stream whose writes fail with `TimedOut` once one has been pending for `timeout`.
#[derive(Debug)]
pub struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    /// Allocated on the first write that blocks, then reused.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether a write is pending and the deadline is running.
    armed: bool,
}

impl<S> StallGuard<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            armed: false,
        }
    }

    fn guard<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if r.is_ready() {
            self.armed = false;
            return r;
        }
        let deadline = Instant::now() + self.timeout;
        if !self.armed {
            self.armed = true;
            match &mut self.deadline {
                Some(s) => s.as_mut().reset(deadline),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        if let Some(s) = &mut self.deadline
            && s.as_mut().poll(cx).is_ready()
        {
            self.armed = false;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "peer stopped reading: write stalled",
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.guard(cx, r)
    }
}
