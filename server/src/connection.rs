//! One websocket speaking the y-websocket dialect ([`crate::dialect::y_websocket`]): frames in,
//! typed messages to the room; the room's messages out as frames; keep-alive pings; and a clean
//! close with a code. The socket is one member of one room.
//!
//! The connection task decodes and validates every frame itself, so the room only ever sees
//! well-formed messages and a hostile client spends its own task's time, not the room's.

use std::collections::VecDeque;
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

/// A socket split into its write and read halves.
type Halves = (
    futures_util::stream::SplitSink<WebSocket, Message>,
    futures_util::stream::SplitStream<WebSocket>,
);

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

/// Serves one socket until it closes. The socket is split here, before the future is made: an
/// async fn keeps its arguments for its whole life, and a websocket held by value in the
/// connection's future would cost every idle socket its size once more (the halves share one
/// heap allocation).
pub fn serve(
    ws: WebSocket,
    app: Arc<App>,
    room: RoomHandle,
    identity: Identity,
    guards: Guards,
) -> impl std::future::Future<Output = ()> + Send {
    let halves = ws.split();
    serve_split(halves, app, room, identity, guards)
}

async fn serve_split(
    halves: Halves,
    app: Arc<App>,
    room: RoomHandle,
    identity: Identity,
    guards: Guards,
) {
    let id: MemberId = next_member_id();
    let open = OpenConnection::new(&app);
    let (mailbox, reader) = room::mailbox(app.config.limits.outbound_queue_len_max);
    let member = Member {
        id,
        author: Arc::clone(&identity.author),
        can_write: identity.can_write,
        mailbox,
        receives: room::Receives::default(),
    };
    // The rarely running awaits of a connection's life are boxed: its future is as large as
    // its largest await, and every idle socket pays for that size while it sits in `pump`.
    let (end, halves) = match Box::pin(room.join(member)).await {
        Ok(()) => {
            let _attached = app.metrics.attach(Dialect::YWebsocket);
            pump(halves, &app, &room, id, &identity, reader).await
        }
        Err(_) => (End::Close(CloseCode::InternalError), halves),
    };
    // The room and the slots are released before the close handshake: a peer that stopped
    // reading may never let the close frame out, and must not keep its place meanwhile.
    let _ = Box::pin(room.send(RoomCmd::Leave { member: id })).await;
    drop(guards);
    if let End::Close(code) = end {
        let (sink, stream) = halves;
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

async fn pump(
    (mut sink, mut stream): Halves,
    app: &Arc<App>,
    room: &RoomHandle,
    id: MemberId,
    identity: &Identity,
    mut mailbox: MailboxReader,
) -> (End, Halves) {
    let limits = &app.config.limits;
    let expiry = identity.expires_at.and_then(instant_of_epoch_s);
    // A peer that may not write never has its updates decoded, only measured.
    let decoding = protocol::Decoding {
        frame_size_max_bytes: limits.frame_size_max_bytes,
        nesting_max: limits.nesting_depth_max,
        may_write: identity.can_write,
    };
    let timing = &app.config.timing;
    let mut ping =
        tokio::time::interval_at(Instant::now() + timing.ping_interval, timing.ping_interval);
    let mut pong_pending = false;
    // Once the peer publishes presence, a vanished network must take it out of the others'
    // lists within seconds: it is pinged every `presence_ping` from then on.
    let mut presence_pinged = false;
    let mut bucket = TokenBucket::new(
        limits.messages_per_sec_per_conn,
        limits.messages_burst_per_conn,
        Instant::now().into_std(),
    );
    let end = loop {
        tokio::select! {
            biased;
            delivery = mailbox.recv() => {
                let messages = match delivery {
                    Delivery::Messages(messages) => messages,
                    Delivery::Detached(why) => break End::Close(y_websocket::close_code(why)),
                };
                // Boxed, like the other rarely running futures below: the connection's future
                // is as large as its largest await, and every idle socket pays for it.
                let write = Box::pin(write_all(app, &mut sink, messages, timing.write_stall_max));
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
                let msg = match incoming {
                    None => break End::PeerGone,
                    Some(Ok(msg)) => msg,
                    Some(Err(e)) => {
                        if is_capacity_error(&e) {
                            app.metrics.frames_rejected.fetch_add(1, Relaxed);
                            tracing::warn!(doc = %room.name, member = id, "frame over the size limit");
                            break End::Close(CloseCode::TooBig);
                        }
                        break End::PeerGone;
                    }
                };
                pong_pending = false; // any traffic proves the peer alive
                if let Message::Binary(bytes) = &msg {
                    app.metrics.bytes_in.fetch_add(u64::try_from(bytes.len()).unwrap_or(0), Relaxed);
                    match protocol::decode_frame(bytes, &decoding) {
                        Ok(messages) if messages.is_empty() => {}
                        Ok(messages) => {
                            if !presence_pinged && messages.iter().any(|m| matches!(m, Inbound::Awareness(_))) {
                                presence_pinged = true;
                                let every = timing.presence_ping();
                                ping = tokio::time::interval_at(Instant::now() + every, every);
                            }
                            let n = u32::try_from(messages.len()).unwrap_or(u32::MAX);
                            if !bucket.try_take(n, Instant::now().into_std()) {
                                app.metrics.rate_limited.fetch_add(1, Relaxed);
                                tracing::warn!(doc = %room.name, member = id, "closing connection: rate limit");
                                break End::Close(CloseCode::RateLimited);
                            }
                            if Box::pin(room.send(RoomCmd::Inbound { member: id, messages })).await.is_err() {
                                break End::Close(CloseCode::InternalError);
                            }
                        }
                        Err(err) => {
                            app.metrics.frames_rejected.fetch_add(1, Relaxed);
                            tracing::warn!(doc = %room.name, member = id, cause = %err, "closing connection: bad frame");
                            break End::Close(match err {
                                DecodeError::TooLarge { .. } => CloseCode::TooBig,
                                _ => CloseCode::InvalidPayload,
                            });
                        }
                    }
                } else if msg.is_text() {
                    app.metrics.frames_rejected.fetch_add(1, Relaxed);
                    break End::Close(CloseCode::Unsupported);
                } else if msg.is_close() {
                    break End::PeerGone;
                }
                // Pings are answered by the websocket layer; pongs only refresh liveness.
            }
            _ = sleep_until_opt(expiry) => break End::Close(CloseCode::TokenExpired),
            _ = ping.tick() => {
                if pong_pending {
                    break End::Close(CloseCode::PingTimeout);
                }
                pong_pending = true;
                if Box::pin(send_timed(&mut sink, Message::Ping(Bytes::new()), timing.close_timeout)).await.is_err() {
                    break End::PeerGone;
                }
            }
        }
    };
    (end, (sink, stream))
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
