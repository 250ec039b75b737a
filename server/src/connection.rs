//! One websocket speaking the y-websocket dialect ([`crate::dialect::y_websocket`]): frames in,
//! typed messages to the room; the room's messages out as frames; keep-alive pings; and a clean
//! close with a code. The socket is one member of one room.
//!
//! The connection task decodes and validates every frame itself, so the room only ever sees
//! well-formed messages and a hostile client spends its own task's time, not the room's.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tandem_crdt_model::protocol::{self, DecodeError, Inbound};
use tokio::sync::OwnedSemaphorePermit;

use crate::abuse::{Slot, TokenBucket};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::upgrade::Socket as WebSocket;

use crate::app::App;
use crate::close_code::CloseCode;
use crate::dialect::y_websocket;
use crate::metrics::Dialect;
use crate::room::{self, Delivery, MailboxReader, Member, MemberId, RoomCmd};
use crate::rooms::RoomHandle;
use crate::tracker::Tracked;

static NEXT_MEMBER_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh member id, unique across every connection of both dialects.
pub(crate) fn next_member_id() -> MemberId {
    NEXT_MEMBER_ID.fetch_add(1, Relaxed)
}

/// The write and read halves of a socket.
type Sink = futures_util::stream::SplitSink<WebSocket, Message>;
type Stream = futures_util::stream::SplitStream<WebSocket>;

/// Who is on the other end, as established before the upgrade.
#[derive(Debug, Clone)]
pub struct Identity {
    pub author: Arc<str>,
    /// The token's `name` claim (who-is-online shows it).
    pub name: Option<Arc<str>>,
    pub can_write: bool,
    /// When the token expires (seconds since the epoch): the socket is closed then.
    pub expires_at: Option<u64>,
}

/// What a connection holds for its whole life and gives back when it ends.
pub struct Guards {
    pub permit: OwnedSemaphorePermit,
    pub user_slot: Option<Slot<Arc<str>>>,
    /// The socket's person on the document's "who is online" list.
    pub online: crate::people::online::OnlineSlot,
}

/// Why the read loop ended.
pub(crate) enum End {
    /// The peer closed or vanished: nothing to send.
    PeerGone,
    /// We close with this code.
    Close(CloseCode),
}

/// Counts a connection as open (and tracked for shutdown) for exactly as long as it lives, even
/// if its task panics.
pub(crate) struct OpenConnection {
    app: Arc<App>,
    _tracked: Tracked,
}

impl OpenConnection {
    pub(crate) fn new(app: &Arc<App>) -> Self {
        app.metrics.connections_open.fetch_add(1, Relaxed);
        app.metrics.connections_total.fetch_add(1, Relaxed);
        OpenConnection {
            app: Arc::clone(app),
            _tracked: app.tasks.track(),
        }
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.app.metrics.connections_open.fetch_sub(1, Relaxed);
    }
}

/// Serves one socket until it closes.
///
/// Every idle socket pays for the size of this future (its task), so it is laid out by hand:
/// an `async` block that uses what it captured in place (an `async fn` keeps each argument and
/// its own copy of it for its whole life), the rarely running awaits boxed (a future is as large
/// as its largest await), and nothing held across `pump` that is not needed after it. The
/// socket is split before the future is made: a websocket held by value would cost its size
/// once more (the halves share one heap allocation).
pub fn serve(
    ws: WebSocket,
    app: Arc<App>,
    room: RoomHandle,
    identity: Identity,
    guards: Guards,
) -> impl Future<Output = ()> + Send {
    let (mut sink, mut stream) = ws.split();
    // Only what the connection still needs: the name went to the online list already.
    let Identity {
        author,
        can_write,
        expires_at,
        ..
    } = identity;
    async move {
        let id: MemberId = next_member_id();
        let open = OpenConnection::new(&app);
        let (mailbox, mut reader) = room::mailbox(app.config.limits.outbound_queue_len_max);
        let member = Member {
            id,
            author,
            can_write,
            mailbox,
            receives: room::Receives::default(),
        };
        let joined = Box::pin(room.join(member)).await.is_ok();
        let end = if joined {
            let _attached = app.metrics.attach(Dialect::YWebsocket);
            let peer = Peer {
                id,
                can_write,
                expires_at,
            };
            pump(&mut sink, &mut stream, &app, &room, peer, &mut reader).await
        } else {
            End::Close(CloseCode::InternalError)
        };
        drop(reader);
        // The room and the slots are released before the close handshake: a peer that stopped
        // reading may never let the close frame out, and must not keep its place meanwhile.
        let _ = Box::pin(room.send(RoomCmd::Leave { member: id })).await;
        drop(guards);
        if let End::Close(code) = end {
            let socket = sink
                .reunite(stream)
                .expect("the two halves of one socket always reunite");
            Box::pin(close_socket(
                Box::new(socket),
                code,
                app.config.timing.close_timeout,
            ))
            .await;
        }
        // Counted open until the socket is gone: shutdown waits for that.
        drop(open);
        tracing::debug!(doc = %room.name, member = id, "connection closed");
    }
}

/// What the read loop needs to know about its member.
#[derive(Clone, Copy)]
struct Peer {
    id: MemberId,
    can_write: bool,
    /// When the token expires (seconds since the epoch).
    expires_at: Option<u64>,
}

/// Moves frames both ways until the socket or the room ends the connection. A plain function
/// returning an `async` block, for the reason given at [`serve`]: as an `async fn`, the task
/// would grow past its allocator size class (768 bytes) into the next.
#[allow(clippy::manual_async_fn)]
fn pump<'a>(
    sink: &'a mut Sink,
    stream: &'a mut Stream,
    app: &'a Arc<App>,
    room: &'a RoomHandle,
    peer: Peer,
    mailbox: &'a mut MailboxReader,
) -> impl Future<Output = End> + Send + 'a {
    async move {
        let id = peer.id;
        let limits = &app.config.limits;
        // Boxed, and only for a token that expires: inline, a timer is a hundred bytes of every
        // socket's future.
        let mut expiry = peer
            .expires_at
            .and_then(instant_of_epoch_s)
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        let timing = &app.config.timing;
        let mut reading = Reading {
            // A peer that may not write never has its updates decoded, only measured.
            decoding: protocol::Decoding {
                frame_size_max_bytes: limits.frame_size_max_bytes,
                nesting_max: limits.nesting_depth_max,
                may_write: peer.can_write,
            },
            bucket: TokenBucket::new(
                limits.messages_per_sec_per_conn,
                limits.messages_burst_per_conn,
                Instant::now().into_std(),
            ),
            ping: tokio::time::interval_at(
                Instant::now() + timing.ping_interval,
                timing.ping_interval,
            ),
            pong_pending: false,
            presence_pinged: false,
        };
        loop {
            tokio::select! {
                biased;
                delivery = mailbox.recv() => {
                    let messages = match delivery {
                        Delivery::Messages(messages) => messages,
                        Delivery::Detached(why) => break End::Close(y_websocket::close_code(why)),
                    };
                    // Boxed, like the other rarely running futures below: the connection's
                    // future is as large as its largest await, and every idle socket pays for it.
                    let write = Box::pin(write_all(app, sink, messages, timing.write_stall_max));
                    match write.await {
                        Ok(()) => {}
                        Err(WriteEnd::Gone) => break End::PeerGone,
                        Err(WriteEnd::Stalled) => {
                            app.metrics.slow_consumers_closed.fetch_add(1, Relaxed);
                            tracing::warn!(doc = %room.name, member = id, "closing connection: writes stalled");
                            break End::Close(CloseCode::SlowConsumer);
                        }
                    }
                }
                incoming = stream.next() => {
                    // The frame is read without an await, so the future keeps no frame.
                    match from_peer(incoming, app, room, id, &mut reading) {
                        FromPeer::Nothing => {}
                        FromPeer::End(end) => break end,
                        FromPeer::Forward(messages) => {
                            if Box::pin(room.send(RoomCmd::Inbound { member: id, messages })).await.is_err() {
                                break End::Close(CloseCode::InternalError);
                            }
                        }
                    }
                }
                () = expired(&mut expiry) => break End::Close(CloseCode::TokenExpired),
                _ = reading.ping.tick() => {
                    if reading.pong_pending {
                        break End::Close(CloseCode::PingTimeout);
                    }
                    reading.pong_pending = true;
                    if Box::pin(send_timed(sink, Message::Ping(Bytes::new()), timing.close_timeout)).await.is_err() {
                        break End::PeerGone;
                    }
                }
            }
        }
    }
}

/// The read loop's own state.
struct Reading {
    decoding: protocol::Decoding,
    bucket: TokenBucket,
    /// Keep-alive pings; every `presence_ping` once the peer publishes presence: a vanished
    /// network must then take it out of the others' lists within seconds.
    ping: tokio::time::Interval,
    /// A ping went out and nothing came back since.
    pong_pending: bool,
    presence_pinged: bool,
}

/// What one frame from the peer asks of the read loop.
enum FromPeer {
    Nothing,
    Forward(Vec<Inbound>),
    End(End),
}

/// Measures, decodes and rate-limits one frame from the peer.
fn from_peer(
    incoming: Option<Result<Message, WsError>>,
    app: &App,
    room: &RoomHandle,
    id: MemberId,
    reading: &mut Reading,
) -> FromPeer {
    let msg = match incoming {
        None => return FromPeer::End(End::PeerGone),
        Some(Ok(msg)) => msg,
        Some(Err(e)) => {
            if is_capacity_error(&e) {
                app.metrics.frames_rejected.fetch_add(1, Relaxed);
                tracing::warn!(doc = %room.name, member = id, "frame over the size limit");
                return FromPeer::End(End::Close(CloseCode::TooBig));
            }
            return FromPeer::End(End::PeerGone);
        }
    };
    reading.pong_pending = false; // any traffic proves the peer alive
    if let Message::Binary(bytes) = &msg {
        app.metrics
            .bytes_in
            .fetch_add(u64::try_from(bytes.len()).unwrap_or(0), Relaxed);
        match protocol::decode_frame(bytes, &reading.decoding) {
            Ok(messages) if messages.is_empty() => FromPeer::Nothing,
            Ok(messages) => {
                if !reading.presence_pinged
                    && messages.iter().any(|m| matches!(m, Inbound::Awareness(_)))
                {
                    reading.presence_pinged = true;
                    let every = app.config.timing.presence_ping();
                    reading.ping = tokio::time::interval_at(Instant::now() + every, every);
                }
                let n = u32::try_from(messages.len()).unwrap_or(u32::MAX);
                if !reading.bucket.try_take(n, Instant::now().into_std()) {
                    app.metrics.rate_limited.fetch_add(1, Relaxed);
                    tracing::warn!(doc = %room.name, member = id, "closing connection: rate limit");
                    return FromPeer::End(End::Close(CloseCode::RateLimited));
                }
                FromPeer::Forward(messages)
            }
            Err(err) => {
                app.metrics.frames_rejected.fetch_add(1, Relaxed);
                tracing::warn!(doc = %room.name, member = id, cause = %err, "closing connection: bad frame");
                FromPeer::End(End::Close(match err {
                    DecodeError::TooLarge { .. } => CloseCode::TooBig,
                    _ => CloseCode::InvalidPayload,
                }))
            }
        }
    } else if msg.is_text() {
        app.metrics.frames_rejected.fetch_add(1, Relaxed);
        FromPeer::End(End::Close(CloseCode::Unsupported))
    } else if msg.is_close() {
        FromPeer::End(End::PeerGone)
    } else {
        // Pings are answered by the websocket layer; pongs only refresh liveness.
        FromPeer::Nothing
    }
}

/// Completes when `timer` (if any) fires; a socket without one never expires.
fn expired(
    timer: &mut Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match timer {
        Some(sleep) => sleep.as_mut().poll(cx),
        None => std::task::Poll::Pending,
    })
}

/// Counts a frame as sent (the room's metrics are counted where frames are made).
pub(crate) fn written(app: &App, frame: Bytes) -> Bytes {
    app.metrics.messages_out.fetch_add(1, Relaxed);
    app.metrics
        .bytes_out
        .fetch_add(u64::try_from(frame.len()).unwrap_or(0), Relaxed);
    frame
}

/// Why writing to a socket stopped.
enum WriteEnd {
    /// The peer is gone (the socket failed).
    Gone,
    /// One frame (or the final flush) made no progress for the stall limit.
    Stalled,
}

/// Writes a mailbox's messages, one frame per message, with one flush: a burst costs one
/// write to the socket per wake-up, not one per message (a mailbox is taken whole, and holds
/// at most `outbound_queue_len_max`). `stall` bounds each frame and the flush on its own, as it
/// bounded each message's send before frames were batched: a reader that drains a large
/// backlog slowly but steadily is not taken for a stalled one.
async fn write_all<S>(
    app: &App,
    sink: &mut S,
    messages: VecDeque<room::Message>,
    stall: Duration,
) -> Result<(), WriteEnd>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let step = |done: Result<Result<(), S::Error>, tokio::time::error::Elapsed>| match done {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(WriteEnd::Gone),
        Err(_) => Err(WriteEnd::Stalled),
    };
    let (mut frames, mut bytes) = (0u64, 0u64);
    for message in messages {
        // Some messages have no y-websocket form (acks, stateless messages): nothing to write.
        if let Some(frame) = y_websocket::frame(&message) {
            frames += 1;
            bytes += u64::try_from(frame.len()).unwrap_or(0);
            step(tokio::time::timeout(stall, sink.feed(Message::binary(frame))).await)?;
        }
    }
    app.metrics.messages_out.fetch_add(frames, Relaxed);
    app.metrics.bytes_out.fetch_add(bytes, Relaxed);
    step(tokio::time::timeout(stall, sink.flush()).await)
}

pub(crate) async fn send_timed<S>(sink: &mut S, msg: Message, limit: Duration) -> Result<(), ()>
where
    S: futures_util::Sink<Message> + Unpin,
{
    match tokio::time::timeout(limit, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Sends our close frame and gives the peer a moment to answer it. The whole handshake is
/// bounded by `limit`: a peer that does not read (a full send buffer) or never answers is dropped.
pub(crate) async fn close_socket(mut ws: Box<WebSocket>, code: CloseCode, limit: Duration) {
    let _ = tokio::time::timeout(limit, async {
        ws.send(close_message(code)).await?;
        while let Some(msg) = ws.next().await {
            if msg?.is_close() {
                break;
            }
        }
        WebSocket::close(&mut ws, None).await
    })
    .await;
}

fn close_message(code: CloseCode) -> Message {
    Message::Close(Some(CloseFrame {
        code: code.code().into(),
        reason: code.reason().into(),
    }))
}

/// True when the websocket layer refused a frame for exceeding `max_message_size`.
pub(crate) fn is_capacity_error(err: &WsError) -> bool {
    matches!(err, WsError::Capacity(_))
}

pub(crate) async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The monotonic instant at which the wall clock reads `epoch_s`; `None` when that is beyond
/// what the clock can represent (a token claiming to expire in billions of years), which is the
/// same as never.
pub(crate) fn instant_of_epoch_s(epoch_s: u64) -> Option<Instant> {
    let now_s = crate::auth::now_s();
    Instant::now().checked_add(Duration::from_secs(epoch_s.saturating_sub(now_s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn returned_size<A, B, C, D, E, F>(_: fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle socket keeps its connection's future for its whole life (issue 16, idle
    /// sockets): it was 1,256 bytes before it was laid out by hand, and is 632 now. tokio puts
    /// it in a task cell with 104 bytes of its own, rounded up to 128: up to 664 bytes the cell
    /// is 768 bytes, one more byte makes it 896.
    #[test]
    fn an_idle_connection_keeps_a_small_future() {
        let size = returned_size(serve);
        assert!(size <= 664, "the connection future grew to {size} bytes");
    }
}
