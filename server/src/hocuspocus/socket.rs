//! One Hocuspocus socket: frames in, routed by address to the document's room (or held until
//! the document is authenticated); the rooms' messages out, framed for each document's exact
//! address; keep-alive; and a clean close.
//!
//! A bad frame, a refused token or a limit reached answers the document it names (a
//! PermissionDenied before it is attached, a CLOSE after) and never the socket's other
//! documents. The socket itself is closed only for what concerns it as a whole: its message
//! rate, an oversized or text frame, a peer that stops answering or reading, a server restart,
//! and what the room says a reconnect repairs ([`crate::dialect::hocuspocus::Ending`]).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tandem_crdt_model::hocuspocus::{self, ClientMessage, Frame};
use tandem_crdt_model::protocol::{Decoding, Inbound};
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio::time::{Duration, Instant};
use tokio_stream::StreamMap;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::admit::Opened;
use super::documents::{Bounds, Documents, Held, State};
use crate::abuse::{Slot, TokenBucket};
use crate::app::App;
use crate::close_code::CloseCode;
use crate::connection::{
    close_socket, is_capacity_error, send_timed, sleep_until_opt, written, End, OpenConnection,
};
use crate::dialect::hocuspocus::{self as dialect, Ending};
use crate::doc_name;
use crate::room::{self, Delivery, Detach, MailboxReader, MemberId, RoomCmd};
use crate::upgrade::Socket as WebSocket;

type Sink = SplitSink<WebSocket, WsMessage>;

/// The state of one socket.
pub(super) struct Conn {
    pub(super) app: Arc<App>,
    pub(super) remote: Option<SocketAddr>,
    pub(super) docs: Documents,
    pub(super) bounds: Bounds,
    /// The queues of the attached documents' members, read together.
    pub(super) outbound: StreamMap<MemberId, MailboxReader>,
    pub(super) opened_tx: mpsc::Sender<Opened>,
    /// One place per user this socket authenticated a document for: sockets per user count a
    /// socket once, however many of the user's documents it holds.
    pub(super) user_slots: HashMap<Arc<str>, Slot<Arc<str>>>,
    /// A document announced its provider's version (4.x do): the peer answers app-level
    /// pings, which providers before 4.0 would throw on.
    pub(super) v4: bool,
    /// A document has been authenticated on this socket.
    pub(super) authenticated_once: bool,
    /// A document on this socket published presence: its pings come every `presence_ping`.
    presence: bool,
    sink: Sink,
}

pub(super) async fn serve(
    ws: WebSocket,
    app: Arc<App>,
    remote: Option<SocketAddr>,
    permit: OwnedSemaphorePermit,
) {
    let open = OpenConnection::new(&app);
    let limits = &app.config.limits;
    let bounds = Bounds {
        docs: limits.hocuspocus_docs_per_conn_max,
        pending_docs: limits.preauth_docs_per_conn_max,
        held_bytes: limits.preauth_bytes_per_conn_max,
        held_frames: limits.preauth_messages_per_conn_max,
    };
    let (sink, mut stream) = ws.split();
    let (opened_tx, mut opened_rx) = mpsc::channel(bounds.pending_docs.max(1));
    let mut conn = Conn {
        app: Arc::clone(&app),
        remote,
        docs: Documents::default(),
        bounds,
        outbound: StreamMap::new(),
        opened_tx,
        user_slots: HashMap::new(),
        v4: false,
        authenticated_once: false,
        presence: false,
        sink,
    };
    let end = conn.run(&mut stream, &mut opened_rx).await;
    // The rooms and the slots are released before the close handshake: a peer that stopped
    // reading may never let the close frame out, and must not keep its places meanwhile.
    conn.leave_all().await;
    let Conn {
        sink, user_slots, ..
    } = conn;
    drop(user_slots);
    drop(permit);
    if let End::Close(code) = end {
        let socket = sink
            .reunite(stream)
            .expect("the two halves of one socket always reunite");
        close_socket(Box::new(socket), code, app.config.timing.close_timeout).await;
    }
    drop(open);
    tracing::debug!(?remote, "hocuspocus connection closed");
}

impl Conn {
    async fn run(
        &mut self,
        stream: &mut SplitStream<WebSocket>,
        opened: &mut mpsc::Receiver<Opened>,
    ) -> End {
        let app = Arc::clone(&self.app);
        let (limits, timing) = (&app.config.limits, &app.config.timing);
        let opened_at = Instant::now();
        let mut shutdown = app.shutdown.clone();
        let mut bucket = TokenBucket::new(
            limits.messages_per_sec_per_conn,
            limits.messages_burst_per_conn,
            opened_at.into_std(),
        );
        // Every half ping interval an app-level ping (to 4.x providers, which drop a socket
        // they heard nothing on for 30 s, presence or not); every full one a websocket ping,
        // and a peer that sent nothing since the previous one is closed.
        // Once a document publishes presence, at the presence period: a vanished network
        // takes its people out of the others' lists within seconds.
        let half_of = |every: Duration| (every / 2).max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(
            opened_at + half_of(timing.ping_interval),
            half_of(timing.ping_interval),
        );
        let mut presence_pinged = false;
        let mut full = false;
        let mut heard = true;
        loop {
            if self.presence && !presence_pinged {
                presence_pinged = true;
                let half = half_of(timing.presence_ping());
                tick = tokio::time::interval_at(Instant::now() + half, half);
            }
            let mut deadline = self.docs.next_deadline(timing.preauth_wait_max);
            if !self.authenticated_once {
                let auth_by = opened_at + timing.preauth_wait_max;
                deadline = Some(deadline.map_or(auth_by, |d| d.min(auth_by)));
            }
            let step = tokio::select! {
                biased;
                () = stopping(&mut shutdown) => {
                    self.flush_all().await;
                    Err(End::Close(CloseCode::Restart))
                }
                Some((id, delivery)) = self.outbound.next() => match delivery {
                    Delivery::Messages(messages) => self.deliver(id, messages).await,
                    Delivery::Detached(why) => self.detached(id, why).await,
                },
                Some(result) = opened.recv() => self.opened(result).await,
                incoming = stream.next() => match incoming {
                    None => Err(End::PeerGone),
                    Some(Err(e)) if is_capacity_error(&e) => {
                        app.metrics.frames_rejected.fetch_add(1, Relaxed);
                        Err(End::Close(CloseCode::TooBig))
                    }
                    Some(Err(_)) => Err(End::PeerGone),
                    Some(Ok(msg)) => {
                        heard = true;
                        match msg {
                            WsMessage::Binary(bytes) => self.on_frame(bytes, &mut bucket).await,
                            WsMessage::Text(_) => {
                                app.metrics.frames_rejected.fetch_add(1, Relaxed);
                                Err(End::Close(CloseCode::Unsupported))
                            }
                            WsMessage::Close(_) => Err(End::PeerGone),
                            // Pings are answered by the websocket layer; pongs prove liveness.
                            _ => Ok(()),
                        }
                    }
                },
                _ = sleep_until_opt(deadline) => self.expire(opened_at).await,
                _ = tick.tick() => {
                    full = !full;
                    let mut step = Ok(());
                    if self.v4 {
                        step = self.write(Bytes::from_static(&hocuspocus::PING)).await;
                    }
                    if step.is_ok() && full {
                        step = if heard {
                            heard = false;
                            send_timed(&mut self.sink, WsMessage::Ping(Bytes::new()), timing.close_timeout)
                                .await
                                .map_err(|()| End::PeerGone)
                        } else {
                            Err(End::Close(CloseCode::PingTimeout))
                        };
                    }
                    step
                }
            };
            if let Err(end) = step {
                return end;
            }
        }
    }

    /// One binary frame from the peer.
    async fn on_frame(&mut self, bytes: Bytes, bucket: &mut TokenBucket) -> Result<(), End> {
        let metrics = &self.app.metrics;
        metrics
            .bytes_in
            .fetch_add(u64::try_from(bytes.len()).unwrap_or(0), Relaxed);
        if !bucket.try_take(1, Instant::now().into_std()) {
            metrics.rate_limited.fetch_add(1, Relaxed);
            tracing::warn!(remote = ?self.remote, "closing hocuspocus connection: rate limit");
            return Err(End::Close(CloseCode::RateLimited));
        }
        let frame_max = self.app.config.limits.frame_size_max_bytes;
        let (address, message_type, body_at) = match hocuspocus::read_frame(&bytes, frame_max) {
            Ok(Frame::Ping) => return self.write(Bytes::from_static(&hocuspocus::PONG)).await,
            Ok(Frame::Pong) => return Ok(()),
            Ok(Frame::Addressed {
                address,
                message_type,
                body,
            }) => (address, message_type, bytes.len() - body.len()),
            Err(err) => {
                metrics.frames_rejected.fetch_add(1, Relaxed);
                tracing::warn!(remote = ?self.remote, cause = %err, "hocuspocus frame refused");
                return match err.address() {
                    Some(raw) => self.refuse(raw, "malformed_message", err.to_string()).await,
                    // Nothing names a document to answer; the rate limit bounds how many.
                    None => Ok(()),
                };
            }
        };
        if let Err(why) = doc_name::validate(address.doc()) {
            metrics.frames_rejected.fetch_add(1, Relaxed);
            tracing::debug!(cause = why, "hocuspocus address refused");
            return self.deny(address.as_str(), "invalid_document_name").await;
        }
        let state = self.docs.get(address.as_str()).map(|e| &e.state);
        if matches!(state, Some(State::Attached(_))) {
            return self
                .forward(address.as_str(), message_type, &bytes[body_at..])
                .await;
        }
        if message_type == u64::from(hocuspocus::MSG_AUTH) {
            let writer = Decoding::writer(frame_max);
            return match hocuspocus::decode_message(message_type, &bytes[body_at..], &writer) {
                Ok(ClientMessage::Token {
                    token,
                    provider_version,
                }) => self.on_token(&address, &token, provider_version).await,
                Ok(_) => Ok(()),
                Err(err) => {
                    metrics.frames_rejected.fetch_add(1, Relaxed);
                    let reason = "malformed_message";
                    self.refuse(address.as_str(), reason, err.to_string()).await
                }
            };
        }
        if message_type == u64::from(hocuspocus::MSG_CLOSE) {
            self.docs.remove(address.as_str());
            return self
                .write(dialect::close_frame(address.as_str(), CloseCode::Normal))
                .await;
        }
        let held = Held {
            message_type,
            frame: bytes,
            body_at,
        };
        match self.docs.hold(&self.bounds, &address, held, Instant::now()) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                metrics.rate_limited.fetch_add(1, Relaxed);
                tracing::warn!(remote = ?self.remote, doc = address.doc(), reason = refusal.reason(), "hocuspocus document refused before authentication");
                self.deny(address.as_str(), refusal.reason()).await
            }
        }
    }

    /// A message of an attached document, to its room.
    pub(super) async fn forward(
        &mut self,
        address: &str,
        message_type: u64,
        body: &[u8],
    ) -> Result<(), End> {
        let Some(State::Attached(attached)) = self.docs.get(address).map(|e| &e.state) else {
            return Ok(());
        };
        let (member, room) = (attached.member, attached.room.clone());
        let inbound = match hocuspocus::decode_message(message_type, body, &attached.decoding) {
            Ok(ClientMessage::Sync(message)) => message,
            Ok(ClientMessage::Awareness(update)) => {
                self.presence = true;
                Inbound::Awareness(update)
            }
            Ok(ClientMessage::QueryAwareness) => Inbound::QueryAwareness,
            Ok(ClientMessage::Stateless(payload)) => Inbound::Stateless(payload),
            // The token of an attached document is not checked again; its expiry stands.
            Ok(ClientMessage::Token { .. }) => return Ok(()),
            Ok(ClientMessage::Close) => {
                return self.close_document(address, CloseCode::Normal, None).await
            }
            Err(err) => {
                self.app.metrics.frames_rejected.fetch_add(1, Relaxed);
                tracing::warn!(doc = %room.name, member, cause = %err, "closing hocuspocus document: bad message");
                let code = CloseCode::InvalidPayload;
                return self
                    .close_document(address, code, Some(err.to_string()))
                    .await;
            }
        };
        let messages = vec![inbound];
        if room
            .send(RoomCmd::Inbound { member, messages })
            .await
            .is_err()
        {
            return Err(End::Close(CloseCode::InternalError));
        }
        Ok(())
    }

    /// Ends one document: its member leaves its room, and the peer gets a CLOSE with `code`
    /// (and `detail`, else the code's meaning).
    async fn close_document(
        &mut self,
        address: &str,
        code: CloseCode,
        detail: Option<String>,
    ) -> Result<(), End> {
        if let Some(entry) = self.docs.remove(address) {
            if let State::Attached(attached) = entry.state {
                self.outbound.remove(&attached.member);
                let member = attached.member;
                let _ = attached.room.send(RoomCmd::Leave { member }).await;
            }
        }
        let reason = match detail {
            Some(detail) => format!("{} {detail}", code.code()),
            None => dialect::close_reason(code),
        };
        let frame = hocuspocus::encode_close(address, &reason);
        self.write(Bytes::from(frame)).await
    }

    /// A frame that could not be decoded: its document is closed if attached, else refused.
    async fn refuse(&mut self, address: &str, reason: &str, detail: String) -> Result<(), End> {
        match self.docs.get(address).map(|e| &e.state) {
            Some(State::Attached(_)) => {
                let code = CloseCode::InvalidPayload;
                self.close_document(address, code, Some(detail)).await
            }
            _ => {
                self.docs.remove(address);
                self.deny(address, reason).await
            }
        }
    }

    /// A PermissionDenied for `address`: the provider reports `reason` as an authentication
    /// failure and sends nothing more for the document until it authenticates again.
    pub(super) async fn deny(&mut self, address: &str, reason: &str) -> Result<(), End> {
        let frame = hocuspocus::encode_permission_denied(address, reason);
        self.write(Bytes::from(frame)).await
    }

    /// The room let a member go.
    async fn detached(&mut self, id: MemberId, why: Detach) -> Result<(), End> {
        let Some(address) = self
            .docs
            .of_member(id)
            .map(|e| e.address.as_str().to_string())
        else {
            return Ok(());
        };
        match dialect::ending(why) {
            Ending::Socket(code) => {
                if why != Detach::SlowConsumer {
                    self.flush_all().await;
                }
                Err(End::Close(code))
            }
            Ending::Document(code) => {
                // What the room queued before (a deletion's last updates) is already written:
                // a mailbox hands out its detach last.
                self.close_document(&address, code, None).await?;
                if self.docs.is_empty() {
                    return Err(End::Close(code));
                }
                Ok(())
            }
        }
    }

    /// Documents whose wait for a token or whose token ran out; a socket that authenticated
    /// nothing in time.
    async fn expire(&mut self, opened_at: Instant) -> Result<(), End> {
        let now = Instant::now();
        let wait_max = self.app.config.timing.preauth_wait_max;
        for (address, waiting) in self.docs.due(now, wait_max) {
            if waiting {
                self.docs.remove(&address);
                self.deny(&address, "token_missing").await?;
            } else {
                self.close_document(&address, CloseCode::TokenExpired, None)
                    .await?;
                if self.docs.is_empty() {
                    return Err(End::Close(CloseCode::TokenExpired));
                }
            }
        }
        if !self.authenticated_once && now >= opened_at + wait_max {
            return Err(End::Close(CloseCode::AuthTimeout));
        }
        Ok(())
    }

    /// Room messages for the document of member `id`, framed for its address.
    async fn deliver(
        &mut self,
        id: MemberId,
        messages: VecDeque<room::Message>,
    ) -> Result<(), End> {
        let Some(entry) = self.docs.of_member(id) else {
            return Ok(());
        };
        let frames = messages
            .iter()
            .filter_map(|message| dialect::frame(message, &entry.address))
            .collect();
        self.write_all(frames).await
    }

    /// Writes what every member's mailbox holds now (a restart's last updates), best effort.
    async fn flush_all(&mut self) {
        while let Some(Some((id, delivery))) = self.outbound.next().now_or_never() {
            if let Delivery::Messages(messages) = delivery {
                if self.deliver(id, messages).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Writes one frame, bounded by `write_stall_max`: a peer whose receive window stays shut
    /// that long is not reading.
    pub(super) async fn write(&mut self, frame: Bytes) -> Result<(), End> {
        self.write_all(vec![frame]).await
    }

    /// Writes frames with one flush (a burst is one write to the socket, not one per frame),
    /// each frame and the flush bounded by `write_stall_max` on their own.
    async fn write_all(&mut self, frames: Vec<Bytes>) -> Result<(), End> {
        let limit = self.app.config.timing.write_stall_max;
        let mut stalled = false;
        for frame in frames {
            let frame = WsMessage::binary(written(&self.app, frame));
            match tokio::time::timeout(limit, self.sink.feed(frame)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(End::PeerGone),
                Err(_) => stalled = true,
            }
            if stalled {
                break;
            }
        }
        if !stalled {
            match tokio::time::timeout(limit, self.sink.flush()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(_)) => return Err(End::PeerGone),
                Err(_) => {}
            }
        }
        self.app.metrics.slow_consumers_closed.fetch_add(1, Relaxed);
        tracing::warn!(remote = ?self.remote, "closing hocuspocus connection: writes stalled");
        Err(End::Close(CloseCode::SlowConsumer))
    }

    async fn leave_all(&mut self) {
        let leaving: Vec<_> = self
            .docs
            .attached()
            .map(|a| (a.member, a.room.clone()))
            .collect();
        for (member, room) in leaving {
            let _ = room.send(RoomCmd::Leave { member }).await;
        }
    }
}

/// Returns once the server starts shutting down (or can no longer tell).
async fn stopping(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}
