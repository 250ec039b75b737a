//! Accepting HTTP connections, with bounds on how long a client may take.
//!
//! warp's own server gives hyper no timer, so hyper cannot time anything: a client dripping a
//! request header a byte a second, or opening a connection and never using it, held a socket and
//! a task for as long as it liked. This loop is warp's (one task per connection, graceful
//! shutdown, websocket upgrades) with two bounds from [`crate::config::Timing`]:
//!
//! - `http_head_read_max`: hyper's header-read timeout. Its clock starts when hyper begins
//!   waiting for a request head, on a new connection or on a kept-alive one once the previous
//!   answer is out, so it also closes idle keep-alive connections.
//! - `http_idle_max`: no byte read or written for that long while hyper owns the connection (a
//!   request body that stops arriving, an answer the client stops reading) closes it. An upgraded
//!   websocket leaves this loop at the upgrade; it has its own pings and write-stall bound.
//!
//! Only HTTP/1.1 is served (warp also spoke cleartext HTTP/2 to clients that asked for it with
//! prior knowledge, which no browser or Yjs provider does, and which the head bound does not
//! cover). The peer address is put into each request as a [`Peer`] extension, which
//! `request::remote` reads: warp's `addr::remote()` only works under warp's own server.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::app::App;
use crate::request::Peer;

/// Serves `app`'s routes on `listener` until `shutdown` turns true, then waits for the
/// connections in flight (the caller bounds that wait).
pub async fn serve(listener: TcpListener, app: Arc<App>, mut shutdown: watch::Receiver<bool>) {
    let timing = app.config.timing.clone();
    let tasks = Arc::clone(&app);
    let service = warp::service(crate::http::routes(app));
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                accept_error(e).await;
                continue;
            }
        };
        // Small frames go out at once. With Nagle's algorithm on, a frame written while the
        // previous one is unacknowledged waits for the peer's delayed ACK (40 ms on Linux):
        // that was the 40 ms p99 of the paced fan-out (a joiner's SyncStep1, SyncStep2 and first
        // update leave back to back). A connection writes everything queued with one flush, so
        // this costs no extra packets under load. Browsers and the peers' `ws` do the same.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(%peer, cause = %e, "could not disable Nagle's algorithm");
        }
        let service = service.clone();
        let watcher = graceful.watcher();
        let (head_max, idle_max) = (timing.http_head_read_max, timing.http_idle_max);
        // Shutdown waits for requests in flight (an idle keep-alive connection is closed by
        // the graceful shutdown below at once).
        let tracked = tasks.tasks.track();
        tokio::spawn(async move {
            let _tracked = tracked;
            let progress = Arc::new(Progress::new());
            let io = TokioIo::new(Tracked {
                inner: tcp,
                progress: Arc::clone(&progress),
            });
            let per_request = hyper::service::service_fn(move |mut request| {
                request.extensions_mut().insert(Peer(peer));
                tower_service::Service::call(&mut service.clone(), request)
            });
            let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(head_max);
            let connection = watcher.watch(builder.serve_connection_with_upgrades(io, per_request));
            tokio::select! {
                served = connection => {
                    if let Err(e) = served {
                        tracing::debug!(%peer, cause = %e, "connection ended with an error");
                    }
                }
                () = progress.idle_for(idle_max) => {
                    tracing::debug!(%peer, "closing a connection idle mid-request");
                }
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// As warp does: errors of one incoming connection are skipped; others (out of file
/// descriptors) are logged and the loop pauses a second rather than spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(cause = %e, "accept failed; pausing a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// When a connection last moved a byte, in milliseconds since it was accepted.
struct Progress {
    start: Instant,
    last_ms: AtomicU64,
}

impl Progress {
    fn new() -> Self {
        Progress {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Relaxed);
    }

    /// Completes once no byte has moved for `max`.
    async fn idle_for(&self, max: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Relaxed));
            let deadline = last + max;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket that records when it last read or wrote a byte.
struct Tracked<T> {
    inner: T,
    progress: Arc<Progress>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.progress.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.progress.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
