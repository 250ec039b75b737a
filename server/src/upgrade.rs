//! The websocket handshake, done here instead of by warp's `ws()` filter so that the socket's
//! buffers can be sized.
//!
//! warp 0.4 builds every websocket with tungstenite's default 128 KiB read buffer and does not
//! let it be changed. tungstenite allocates that buffer per socket up front and zero-fills it
//! on every read, which made an idle socket cost ~138 KiB and made `memset` the top symbol of a
//! busy server (see `bench/results/2026-11-22-warp-ws.md`). y-protocols frames are mostly tens of
//! bytes; a 512-byte buffer grows on demand for the rare large one.

use std::convert::Infallible;

use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

/// A server-side websocket.
pub type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// Per-socket read buffer: also the most one read takes from the socket. tungstenite keeps it
/// for the socket's life and zero-fills it up to this size before a read, so all of it is
/// resident memory on every idle socket. Keystroke updates, awareness states and state
/// vectors are tens to hundreds of bytes; the buffer grows for a larger frame, which then
/// takes several reads (a 100 KiB SyncStep2 about 200: a fraction of a millisecond, once per
/// connection).
const READ_BUFFER_BYTES: usize = 512;

/// Queued frames are written to the socket once they pass this size, or on the flush that
/// ends every write. tungstenite keeps its write buffer's capacity for the socket's life, so
/// this also bounds what a socket keeps after a burst (its default, 128 KiB, would let every
/// reader of a busy room keep up to that).
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// A valid websocket upgrade request, ready to be accepted.
pub struct Upgrade {
    key: String,
    on_upgrade: OnUpgrade,
}

/// `Some` for a well-formed websocket upgrade request (RFC 6455 §4.2.1), `None` otherwise.
pub fn request() -> impl Filter<Extract = (Option<Upgrade>,), Error = Infallible> + Clone {
    let header = |name: &'static str| {
        warp::header::optional::<String>(name)
            .or(warp::any().map(|| None))
            .unify()
    };
    header("connection")
        .and(header("upgrade"))
        .and(header("sec-websocket-version"))
        .and(header("sec-websocket-key"))
        .and(warp::ext::optional::<OnUpgrade>())
        .map(
            |connection: Option<String>,
             upgrade: Option<String>,
             version: Option<String>,
             key: Option<String>,
             on_upgrade: Option<OnUpgrade>| {
                let wants_upgrade = connection.is_some_and(|c| {
                    c.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
                });
                let websocket = upgrade.is_some_and(|u| u.trim().eq_ignore_ascii_case("websocket"));
                let v13 = version.is_some_and(|v| v.trim() == "13");
                match (wants_upgrade && websocket && v13, key, on_upgrade) {
                    (true, Some(key), Some(on_upgrade)) => Some(Upgrade { key, on_upgrade }),
                    _ => None,
                }
            },
        )
}

impl Upgrade {
    /// Answers 101 and, once the connection is switched, hands the socket to `serve`.
    pub fn accept<F, Fut>(self, message_max_bytes: usize, serve: F) -> Response
    where
        F: FnOnce(Socket) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let config = WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
            .max_message_size(Some(message_max_bytes))
            .max_frame_size(Some(message_max_bytes));
        let on_upgrade = self.on_upgrade;
        // The socket is served by a task of its own, spawned once the switch is done: a task's
        // future keeps whatever its async block captured for its whole life (here the upgrade
        // handle, the config and `serve`'s closure), which every idle socket would pay for.
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    tokio::spawn(serve(socket));
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        let mut response = warp::reply::with_status(warp::reply(), StatusCode::SWITCHING_PROTOCOLS)
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("upgrade"),
        );
        headers.insert(
            header::UPGRADE,
            header::HeaderValue::from_static("websocket"),
        );
        if let Ok(accept) = header::HeaderValue::from_str(&derive_accept_key(self.key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        response
    }
}
