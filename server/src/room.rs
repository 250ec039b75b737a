//! A room: the single owner of one open document's state.
//!
//! One task per open document owns its `yrs::Doc` and its awareness table; connections (and the
//! HTTP API) talk to it only through a bounded inbox of [`RoomCmd`]s. The task works in batches:
//! it takes every command waiting in its inbox, applies them in order while collecting what to
//! send in an [`Outbox`], appends the batch's updates to the store, awaits one group-commit flush,
//! and only then delivers the outbox. So nothing leaves the room (no echo, no broadcast, no
//! SyncStep2) that is not already durable: persist before broadcast.
//!
//! Sockets never block the room: frames go into each socket's bounded outbound queue with
//! `try_send`, and a full queue closes that socket with [`CloseCode::SlowConsumer`].

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tandem_crdt_model::protocol::{self, ClientUpdate, Inbound};
use tandem_crdt_model::shape::UpdateShape;

use crate::authorship::{Authors, Claim};

/// The reason sent with the permission-denied message for an update under another author's
/// client ID.
const FOREIGN_CLIENT_ID: &str = "permission denied: client ID belongs to another author";
use tandem_crdt_model::doc::{apply_guarded, encode_diff, encode_state, has_gap, state_tag};
use tandem_crdt_model::typed::{self, Change, DocKind, Typed};
use tandem_storage::{CompactionReport, StoreError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use yrs::sync::awareness::AwarenessUpdate;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact};

use crate::app::App;
use crate::close_code::CloseCode;
use crate::presence::Presence;

pub type ConnId = u64;

/// Most commands handled in one batch (one flush). Bounds the latency a batch adds to the
/// commands queued behind it.
const BATCH_LEN_MAX: usize = 256;

/// A socket as the room sees it: where to send frames, how to close it, and who it speaks for.
pub struct Peer {
    pub id: ConnId,
    /// The author recorded next to this socket's updates (the token's `sub`).
    pub author: Arc<str>,
    /// Read-only sockets receive everything; their document updates are refused.
    pub can_write: bool,
    pub outbound: mpsc::Sender<Bytes>,
    /// Set by the room to make the connection task close the socket with this code.
    pub close: watch::Sender<Option<CloseCode>>,
}

/// Why a room could not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoomError {
    #[error("document {doc} could not be loaded: {cause}")]
    Load { doc: String, cause: String },
    #[error("the document is being unloaded; retry")]
    Gone,
}

pub enum RoomCmd {
    /// Answered once the document is loaded (or failed to load).
    Ready(oneshot::Sender<Result<(), RoomError>>),
    Join(Peer, oneshot::Sender<()>),
    Inbound {
        conn: ConnId,
        messages: Vec<Inbound>,
    },
    Leave {
        conn: ConnId,
    },
    Compacted(Result<CompactionReport, StoreError>),
    /// Edits from HTTP: one-round-trip sync, restores, REST writes.
    HttpSync(HttpSync),
    /// A typed edit from the REST API, made by the room on its own document.
    Edit(Edit),
    /// Cluster mode: updates other nodes appended to this document's stream, in order.
    Remote(Vec<tandem_storage::UpdateRecord>),
    /// Cluster mode: presence of another node's sockets.
    RemoteAwareness {
        node: String,
        update: Vec<u8>,
    },
    /// Cluster mode: a room opened on another node; republish our sockets' presence.
    AwarenessHello,
    /// Cluster mode: a node's lease expired; drop the presence that came from it.
    NodeGone(String),
    /// Cluster mode: another node deleted the document.
    RemoteDeleted,
    /// The document's full state as one update (durable: read between batches).
    State(oneshot::Sender<Vec<u8>>),
    /// Closes every socket with 4404, deletes the document from the store, unloads the room.
    Delete {
        /// Who deleted it (the feed's `by`).
        by: Arc<str>,
        reply: oneshot::Sender<Result<bool, String>>,
    },
}

/// A one-round-trip sync request (`POST /api/docs/<doc>/sync`).
pub struct HttpSync {
    /// What the client has.
    pub state_vector: StateVector,
    /// The client's offline edits, in order, when it may write.
    pub updates: Vec<ClientUpdate>,
    /// The shapes of its updates when it may not (only those that would change the document
    /// are refused).
    pub read_only: Vec<UpdateShape>,
    pub author: Arc<str>,
    /// The ETag the client last saw; unchanged state and no edits answer "not modified".
    pub if_none_match: Option<String>,
    pub reply: oneshot::Sender<Result<HttpSyncReply, HttpSyncError>>,
}

#[derive(Debug)]
pub struct HttpSyncReply {
    /// SyncStep2 (what the client lacks) + our SyncStep1 (+ permission denied if edits were
    /// refused); `None` for "not modified".
    pub body: Option<Vec<u8>>,
    /// The server's state vector, hashed.
    pub etag: String,
    pub refused_updates: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpSyncError {
    #[error("the edits would take the document past its size limit")]
    TooLarge,
    #[error("an update does not apply: {0}")]
    Invalid(String),
    #[error("storage failure")]
    Storage,
    #[error(transparent)]
    Room(#[from] RoomError),
}

/// What a REST edit does to the document, and what it answers.
///
/// It runs on the room's task, against the room's document, in transactions of its own: typed
/// edits are small and bounded by the REST body limit, and running them here (rather than on a
/// copy) means they see every edit acknowledged before them and need no second merge.
/// It gets the room's authorship record too: "author or admin" rules read it.
pub type EditFn = Box<dyn FnOnce(&Doc, &Authors) -> Result<serde_json::Value, EditError> + Send>;

pub struct Edit {
    pub author: Arc<str>,
    /// Must leave the document untouched when it returns `Err`.
    pub apply: EditFn,
    pub reply: oneshot::Sender<Result<serde_json::Value, EditError>>,
}

/// Why a REST edit was not made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EditError {
    /// The thing to change does not exist (a document not created yet, a reply id).
    #[error("{0}")]
    NotFound(String),
    /// A value in the request is not allowed; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The document is in a state that forbids the edit (creating what exists).
    #[error("{0}")]
    Conflict(String),
    /// The caller may write the document but not change this part of it (another's reply).
    #[error("{0}")]
    Forbidden(String),
    #[error("the document is at its size limit")]
    TooLarge,
    #[error("the edit failed inside the CRDT library; nothing was changed")]
    Failed,
    #[error("storage failure")]
    Storage,
    #[error(transparent)]
    Room(#[from] RoomError),
}

/// A REST edit's answer waiting for its batch to be durable.
struct PendingEdit {
    answer: Result<serde_json::Value, EditError>,
    reply: oneshot::Sender<Result<serde_json::Value, EditError>>,
}

/// An HTTP sync answer waiting for its batch to be durable.
struct PendingHttpReply {
    state_vector: StateVector,
    refused: usize,
    if_none_match: Option<String>,
    reply: oneshot::Sender<Result<HttpSyncReply, HttpSyncError>>,
}

/// Answers the HTTP requests of a batch that will never be acknowledged: the store failed, or
/// the room is going away.
fn refuse_pending(http: Vec<PendingHttpReply>, edits: Vec<PendingEdit>, storage_failed: bool) {
    for pending in http {
        let _ = pending.reply.send(Err(if storage_failed {
            HttpSyncError::Storage
        } else {
            HttpSyncError::Room(RoomError::Gone)
        }));
    }
    for pending in edits {
        let _ = pending.reply.send(Err(if storage_failed {
            EditError::Storage
        } else {
            EditError::Room(RoomError::Gone)
        }));
    }
}

/// What became of one incoming update.
enum Ingest {
    /// It carried nothing (the empty update clients send when they have nothing to add).
    Empty,
    /// Everything in it was already in the document.
    Known,
    /// Applied, appended to the store, broadcast.
    Applied,
    /// Refused: the document would pass `doc_size_max_bytes`.
    TooLarge,
    /// Not applied: it depends on content we lack (see [`has_gap`]).
    Gap,
    /// Refused: it does not integrate.
    Invalid(String),
    /// Refused: it writes under a client ID that belongs to another author ([`Authors::claim`]).
    Foreign { client: u64 },
}

enum Dest {
    One(ConnId),
    All,
}

/// Frames produced while handling a batch, delivered only after the batch is durable.
#[derive(Default)]
struct Outbox(Vec<(Dest, Bytes)>);

impl Outbox {
    fn to(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.0.push((Dest::One(conn), Bytes::from(frame)));
    }
    fn all(&mut self, frame: Vec<u8>) {
        self.0.push((Dest::All, Bytes::from(frame)));
    }
}

struct Member {
    peer: Peer,
    /// The document state at which this socket was last asked to resync after an update it
    /// sent had a gap. A client whose own document holds content it cannot complete (pending in
    /// Yjs, say from a second provider) answers every request with the same incomplete update;
    /// asking again only when the document has changed since keeps that from looping.
    resync_asked_at: Option<StateVector>,
}

pub struct Room {
    name: Arc<str>,
    generation: u64,
    app: Arc<App>,
    doc: Doc,
    /// Presence, kept apart from `doc` so a reload can replace `doc` alone.
    presence: Presence,
    members: HashMap<ConnId, Member>,
    /// Upper bound of the document's encoded size: stored snapshot + log bytes.
    doc_bytes: u64,
    /// Bytes appended since the running compaction started (they may not be in its snapshot).
    bytes_since_compaction_start: u64,
    compacting: bool,
    inbox_weak: mpsc::WeakSender<RoomCmd>,
    /// Connections counted in `/api/stats`, shared with the registry.
    conn_count: Arc<std::sync::atomic::AtomicUsize>,
    /// For a typed document: its kind and the reading the change feed last described.
    typed: Option<(DocKind, Typed)>,
    /// Authors of the updates applied in the current batch (the feed's `by`).
    batch_authors: Vec<Arc<str>>,
    /// Who wrote the document (creator, client IDs), by the server's own record.
    authors: Authors,
    /// Another node may have added to `authors` in the store (cluster mode): re-read it before
    /// a permission depends on it.
    authors_stale: bool,
}

impl Room {
    /// Loads the document and serves the inbox until the room unloads or the server stops.
    pub(crate) async fn run(
        app: Arc<App>,
        name: Arc<str>,
        generation: u64,
        inbox_weak: mpsc::WeakSender<RoomCmd>,
        mut inbox: mpsc::Receiver<RoomCmd>,
        conn_count: Arc<std::sync::atomic::AtomicUsize>,
    ) {
        app.metrics.rooms_open.fetch_add(1, Relaxed);
        let loaded = load(&app, &name).await;
        let (doc, doc_bytes, last_seq, authors) = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                tracing::error!(doc = %name, cause = %err, "could not load document");
                fail_all(&app, &name, generation, &mut inbox, &err).await;
                app.metrics.rooms_open.fetch_sub(1, Relaxed);
                return;
            }
        };
        let limits = &app.config.limits;
        let presence = Presence::new(
            app.config.timing.presence_broadcast_interval,
            limits.awareness_clients_per_conn_max,
            limits.awareness_state_max_bytes,
            limits.frame_size_max_bytes,
        );
        let mut room = Room {
            name,
            generation,
            app,
            doc,
            presence,
            members: HashMap::new(),
            doc_bytes,
            bytes_since_compaction_start: 0,
            compacting: false,
            inbox_weak,
            conn_count,
            typed: None,
            batch_authors: Vec::new(),
            authors,
            authors_stale: false,
        };
        if let Some(cluster) = &room.app.cluster {
            cluster.register(&room.name, last_seq, room.inbox_weak.clone());
        }
        room.typed = typed::locate(&room.name).map(|l| (l.kind, typed::read(l.kind, &room.doc).0));
        room.serve(inbox).await;
        if let Some(cluster) = &room.app.cluster {
            cluster.unregister(&room.name);
        }
        room.app.metrics.rooms_open.fetch_sub(1, Relaxed);
    }

    async fn serve(&mut self, mut inbox: mpsc::Receiver<RoomCmd>) {
        let mut shutdown = self.app.shutdown.clone();
        let grace = self.app.config.timing.room_idle_grace;
        let mut idle_since: Option<Instant> = Some(Instant::now());
        let mut batch = Vec::with_capacity(BATCH_LEN_MAX);
        loop {
            let idle_deadline = idle_since.map(|t| t + grace);
            tokio::select! {
                _ = sleep_until_opt(self.presence.due_at()) => {
                    let mut out = Outbox::default();
                    self.broadcast_presence(&mut out);
                    self.deliver(out);
                    continue;
                }
                received = inbox.recv_many(&mut batch, BATCH_LEN_MAX) => {
                    if received == 0 {
                        return; // every sender is gone: nothing can reach this room any more
                    }
                }
                _ = shutdown.wait_for(|stop| *stop) => {
                    self.close_all(CloseCode::Restart);
                    self.app.rooms.remove(&self.name, self.generation);
                    return;
                }
                _ = sleep_until_opt(idle_deadline) => {
                    if self.app.rooms.remove_if_idle(&self.name, self.generation, &inbox) {
                        tracing::debug!(doc = %self.name, "room unloaded");
                        return;
                    }
                    idle_since = Some(Instant::now());
                    continue;
                }
            }
            if !self.handle_batch(&mut batch).await {
                return;
            }
            idle_since = if self.members.is_empty() {
                Some(idle_since.unwrap_or_else(Instant::now))
            } else {
                None
            };
            self.conn_count.store(self.members.len(), Relaxed);
        }
    }

    /// Handles one batch; false when the room had to stop (storage failure).
    async fn handle_batch(&mut self, batch: &mut Vec<RoomCmd>) -> bool {
        let mut out = Outbox::default();
        let mut appended = 0u64;
        let mut storage_error = None;
        let mut ready = Vec::new();
        let mut http_replies = Vec::new();
        let mut edit_replies = Vec::new();
        let mut remote_applied = 0u64;
        for cmd in batch.drain(..) {
            match cmd {
                RoomCmd::Ready(reply) => ready.push(reply),
                RoomCmd::Join(peer, reply) => {
                    self.join(peer, &mut out);
                    let _ = reply.send(());
                }
                RoomCmd::Inbound { conn, messages } => {
                    for message in messages {
                        match self.handle_message(conn, message, &mut out) {
                            Ok(true) => appended += 1,
                            Ok(false) => {}
                            Err(e) => storage_error = Some(e),
                        }
                        if storage_error.is_some() {
                            break;
                        }
                    }
                }
                RoomCmd::Leave { conn } => self.leave(conn),
                RoomCmd::Compacted(result) => self.compacted(result),
                RoomCmd::HttpSync(request) => match self.http_sync(request, &mut out) {
                    Ok((n, pending)) => {
                        appended += n;
                        http_replies.extend(pending);
                    }
                    Err(e) => storage_error = Some(e),
                },
                RoomCmd::Edit(edit) => match self.edit(edit, &mut out) {
                    Ok((n, pending)) => {
                        appended += n;
                        edit_replies.push(pending);
                    }
                    Err(e) => storage_error = Some(e),
                },
                RoomCmd::Remote(records) => match self.apply_remote(records, &mut out) {
                    Ok(n) => remote_applied += n,
                    Err(e) => storage_error = Some(e),
                },
                RoomCmd::RemoteAwareness { node, update } => {
                    self.apply_remote_awareness(&node, &update);
                }
                RoomCmd::AwarenessHello => self.republish_awareness(),
                RoomCmd::NodeGone(node) => self.presence.drop_node(&node),
                RoomCmd::RemoteDeleted => {
                    self.close_all(CloseCode::DocumentDeleted);
                    self.app.rooms.remove(&self.name, self.generation);
                    refuse_pending(http_replies, edit_replies, false);
                    return false;
                }
                RoomCmd::State(reply) => {
                    let _ = reply.send(encode_state(&self.doc));
                }
                RoomCmd::Delete { by, reply } => {
                    // Earlier edits of this batch are dropped with the document, so nothing
                    // of them is delivered.
                    self.close_all(CloseCode::DocumentDeleted);
                    self.app.rooms.remove(&self.name, self.generation);
                    let result = {
                        // Never race a background compaction, which would write the snapshot back.
                        let lock = self.app.rooms.compaction_lock(&self.name);
                        let _held = lock
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        self.app.store.delete(&self.name).map_err(|e| e.to_string())
                    };
                    let flushed = match &result {
                        Ok(_) => self.app.durability.flush().await,
                        Err(_) => Ok(()),
                    };
                    let result = result.and_then(|existed| flushed.map(|()| existed));
                    if let Some(cluster) = &self.app.cluster {
                        cluster.publish_deleted(&self.name);
                    }
                    if result.as_ref().is_ok_and(|existed| *existed) {
                        self.app.feed.publish(
                            &self.name,
                            vec![by.to_string()],
                            vec![Change::new("document.deleted")],
                        );
                    }
                    let _ = reply.send(result);
                    refuse_pending(http_replies, edit_replies, false);
                    return false;
                }
            }
            if storage_error.is_some() {
                break;
            }
        }
        if storage_error.is_none() && appended > 0 {
            if let Err(e) = self.app.durability.flush().await {
                storage_error = Some(e);
            }
        }
        if let Some(cause) = storage_error {
            // Nothing of this batch is acknowledged. The in-memory document may now hold updates
            // the disk lacks, so the room stops: every socket is closed, the registry forgets the
            // room, and the next open reloads from what is durable.
            tracing::error!(doc = %self.name, cause = %cause, "storage failure; closing the room");
            self.app.mark_unhealthy(&cause);
            self.close_all(CloseCode::InternalError);
            self.app.rooms.remove(&self.name, self.generation);
            refuse_pending(http_replies, edit_replies, true);
            return false;
        }
        for reply in ready {
            let _ = reply.send(Ok(()));
        }
        for pending in http_replies {
            self.answer_http(pending);
        }
        for pending in edit_replies {
            let _ = pending.reply.send(pending.answer);
        }
        self.broadcast_presence(&mut out);
        self.deliver(out);
        if appended > 0 || remote_applied > 0 {
            self.publish_changes();
        }
        if appended > 0 {
            self.app
                .metrics
                .updates_persisted
                .fetch_add(appended, Relaxed);
            self.maybe_compact();
        }
        true
    }

    fn join(&mut self, peer: Peer, out: &mut Outbox) {
        let id = peer.id;
        // The server opens with its state vector, asking for what the client has that we lack,
        // then the presence of everyone already here.
        out.to(
            id,
            protocol::encode_sync_step1(&self.doc.transact().state_vector()),
        );
        for states in self.presence.snapshot() {
            out.to(id, protocol::encode_awareness(&states));
        }
        self.members.insert(
            id,
            Member {
                peer,
                resync_asked_at: None,
            },
        );
    }

    /// Handles one message; `Ok(true)` when it appended an update to the store.
    fn handle_message(
        &mut self,
        conn: ConnId,
        message: Inbound,
        out: &mut Outbox,
    ) -> Result<bool, String> {
        let Some(member) = self.members.get(&conn) else {
            return Ok(false); // sent before a close the room already handled
        };
        self.app.metrics.messages_in.fetch_add(1, Relaxed);
        match message {
            Inbound::SyncStep1(sv) => {
                match encode_diff(&self.doc, &sv) {
                    Some(diff) => out.to(conn, protocol::encode_sync_step2(&diff)),
                    None => {
                        tracing::error!(doc = %self.name, conn, "document does not encode");
                        self.close_member(conn, CloseCode::InternalError);
                    }
                }
                Ok(false)
            }
            Inbound::Update(update) if member.peer.can_write => {
                let author = Arc::clone(&member.peer.author);
                self.apply_client_update(conn, &author, update, out)
            }
            Inbound::Update(ClientUpdate { shape, .. }) | Inbound::ReadOnlyUpdate(shape) => {
                // A reader's SyncStep2 repeats what we hold (its whole delete set, at least):
                // only an update that would change the document is an edit to refuse.
                if self.would_change(&shape) {
                    self.app.metrics.updates_refused.fetch_add(1, Relaxed);
                    out.to(
                        conn,
                        protocol::encode_permission_denied("permission denied"),
                    );
                }
                Ok(false)
            }
            Inbound::Awareness(update) => {
                let author = Arc::clone(&member.peer.author);
                if let Some(stale) = self.presence.apply_local(conn, &author, update) {
                    out.to(conn, protocol::encode_awareness(&stale));
                }
                Ok(false)
            }
            Inbound::QueryAwareness => {
                for states in self.presence.snapshot() {
                    out.to(conn, protocol::encode_awareness(&states));
                }
                Ok(false)
            }
            Inbound::Auth | Inbound::Unknown(_) => Ok(false),
        }
    }

    /// True when applying an update of this shape would change the document.
    fn would_change(&self, shape: &UpdateShape) -> bool {
        if shape.is_empty() {
            return false;
        }
        let have = self.doc.transact().snapshot();
        !shape.is_known(&have.state_map, &have.delete_set)
    }

    fn apply_client_update(
        &mut self,
        conn: ConnId,
        author: &Arc<str>,
        update: ClientUpdate,
        out: &mut Outbox,
    ) -> Result<bool, String> {
        let bytes_len = update.bytes.len();
        let echo = protocol::encode_update(&update.bytes);
        match self.ingest(author, update, out)? {
            Ingest::Empty => Ok(false),
            Ingest::Applied => Ok(true),
            Ingest::Known => {
                // Nothing new (a resend): it is already durable, so only its author hears back.
                out.to(conn, echo);
                Ok(false)
            }
            Ingest::Gap => {
                // Ask again: the client answers our state vector with everything we lack, this
                // update's predecessors and the update itself.
                let sv = self.doc.transact().state_vector();
                let Some(member) = self.members.get_mut(&conn) else {
                    return Ok(false);
                };
                if member.resync_asked_at.as_ref() == Some(&sv) {
                    tracing::debug!(doc = %self.name, conn, "update still ahead of its dependencies; not asking again");
                } else {
                    tracing::debug!(doc = %self.name, conn, "update ahead of its dependencies; asking for a resync");
                    out.to(conn, protocol::encode_sync_step1(&sv));
                    member.resync_asked_at = Some(sv);
                }
                Ok(false)
            }
            Ingest::TooLarge => {
                tracing::warn!(doc = %self.name, conn, size = bytes_len, "update refused: document size limit");
                self.close_member(conn, CloseCode::DocumentTooLarge);
                Ok(false)
            }
            Ingest::Invalid(cause) => {
                tracing::warn!(doc = %self.name, conn, cause = %cause, "update refused: does not apply");
                self.close_member(conn, CloseCode::InvalidPayload);
                Ok(false)
            }
            Ingest::Foreign { client } => {
                tracing::warn!(doc = %self.name, conn, client, author = %author, "update refused: client ID of another author");
                out.to(conn, protocol::encode_permission_denied(FOREIGN_CLIENT_ID));
                Ok(false)
            }
        }
    }

    /// Applies, stores and broadcasts one update from any source (socket or HTTP). The caller
    /// decides what the outcome means for its client.
    fn ingest(
        &mut self,
        author: &Arc<str>,
        update: ClientUpdate,
        out: &mut Outbox,
    ) -> Result<Ingest, String> {
        let size = u64::try_from(update.bytes.len()).unwrap_or(u64::MAX);
        if update.decoded.is_empty() {
            return Ok(Ingest::Empty);
        }
        if self.doc_bytes.saturating_add(size) > self.app.config.limits.doc_size_max_bytes {
            self.app.metrics.updates_refused.fetch_add(1, Relaxed);
            return Ok(Ingest::TooLarge);
        }
        if has_gap(&self.doc, &update.shape.requires) {
            return Ok(Ingest::Gap);
        }
        let presence = &self.presence;
        let claim = self
            .authors
            .claim(
                &*self.app.store,
                &self.name,
                author,
                update.shape.writers(),
                self.doc.client_id(),
                |client| presence.author_of(client),
            )
            .map_err(|e| e.to_string())?;
        if let Claim::Taken { client } = claim {
            self.app.metrics.updates_refused.fetch_add(1, Relaxed);
            return Ok(Ingest::Foreign { client });
        }
        let depth_max = self.changed_depth_max(&update.shape);
        match apply_guarded(&self.doc, update.decoded, depth_max) {
            Ok(false) => Ok(Ingest::Known),
            Ok(true) => {
                self.app
                    .store
                    .append(&self.name, author, now_ms(), &update.bytes)
                    .map_err(|e| e.to_string())?;
                self.appended(author, size);
                // Everyone, the author included: the echo tells the author it is durable.
                out.all(protocol::encode_update(&update.bytes));
                Ok(Ingest::Applied)
            }
            Err(cause) => {
                // The update decoded but does not integrate. Part of it may have been applied,
                // so the document is rebuilt from the store (which never saw it) before anyone
                // reads it again.
                self.app.metrics.updates_refused.fetch_add(1, Relaxed);
                self.reload_doc()?;
                Ok(Ingest::Invalid(cause))
            }
        }
    }

    /// How deep the types an update of this shape changes may sit, so that the types it brings
    /// stay within `nesting_depth_max` ([`apply_guarded`]).
    fn changed_depth_max(&self, shape: &UpdateShape) -> u32 {
        self.app
            .config
            .limits
            .nesting_depth_max
            .saturating_sub(shape.type_depth)
    }

    /// Bookkeeping after an update is appended to the store.
    fn appended(&mut self, author: &Arc<str>, size: u64) {
        if self.doc_bytes == 0 {
            // The store records the author of a document's first update as its creator.
            self.authors.created_by(author);
        }
        self.doc_bytes = self.doc_bytes.saturating_add(size);
        self.bytes_since_compaction_start = self.bytes_since_compaction_start.saturating_add(size);
        if !self.batch_authors.iter().any(|a| a == author) {
            self.batch_authors.push(Arc::clone(author));
        }
    }

    /// Makes a REST edit on the document: whatever it changed is appended and broadcast like a
    /// client's update, and its answer waits for the batch's flush.
    fn edit(&mut self, edit: Edit, out: &mut Outbox) -> Result<(u64, PendingEdit), String> {
        let Edit {
            author,
            apply,
            reply,
        } = edit;
        let limits = &self.app.config.limits;
        // A made edit cannot be taken back, so the room must have space for the largest one
        // (an edit's update is at most a few times its JSON body) before it starts.
        let headroom = limits.rest_body_max_bytes.saturating_mul(4);
        if self.doc_bytes.saturating_add(headroom) > limits.doc_size_max_bytes {
            self.app.metrics.updates_refused.fetch_add(1, Relaxed);
            let answer = Err(EditError::TooLarge);
            return Ok((0, PendingEdit { answer, reply }));
        }
        if self.authors_stale {
            let record = self
                .app
                .store
                .authorship(&self.name)
                .map_err(|e| e.to_string())?;
            self.authors = Authors::from_record(record);
            self.authors_stale = false;
        }
        let own = self.doc.client_id();
        let own_clock_before = self.doc.transact().state_vector().get(&own);
        let made = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = Arc::clone(&made);
        let observing = self.doc.observe_update_v1("rest-edit", move |_, e| {
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(e.update.clone());
        });
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| apply(&self.doc, &self.authors)))
            .map_err(|_| ());
        if observing.is_ok() {
            let _ = self.doc.unobserve_update_v1("rest-edit");
        }
        let updates = std::mem::take(
            &mut *made
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let Ok(answer) = answer else {
            // Half an edit may be in the document: start again from what is durable.
            self.reload_doc()?;
            return Ok((
                0,
                PendingEdit {
                    answer: Err(EditError::Failed),
                    reply,
                },
            ));
        };
        let update = match updates.len() {
            0 => return Ok((0, PendingEdit { answer, reply })),
            1 => updates.into_iter().next().unwrap_or_default(),
            _ => yrs::merge_updates_v1(&updates).map_err(|e| e.to_string())?,
        };
        self.authors
            .record_own_edit(&*self.app.store, &self.name, own, own_clock_before, &author)
            .map_err(|e| e.to_string())?;
        self.app
            .store
            .append(&self.name, &author, now_ms(), &update)
            .map_err(|e| e.to_string())?;
        self.appended(&author, u64::try_from(update.len()).unwrap_or(u64::MAX));
        out.all(protocol::encode_update(&update));
        Ok((1, PendingEdit { answer, reply }))
    }

    /// Applies updates other nodes appended (cluster mode): they are durable already, so they
    /// are only applied and broadcast. One that does not fit (a gap, or yrs refusing it) means
    /// this node's copy is behind what the stream says: the document is reloaded from the store.
    fn apply_remote(
        &mut self,
        records: Vec<tandem_storage::UpdateRecord>,
        out: &mut Outbox,
    ) -> Result<u64, String> {
        let mut applied = 0;
        for record in records {
            let nesting_max = self.app.config.limits.nesting_depth_max;
            let Ok((update, shape)) = protocol::decode_update(&record.update, nesting_max) else {
                tracing::warn!(doc = %self.name, seq = record.seq, "remote update does not decode; skipped");
                continue;
            };
            if has_gap(&self.doc, &shape.requires) {
                self.reload_doc()?;
                continue;
            }
            match apply_guarded(&self.doc, update, self.changed_depth_max(&shape)) {
                Ok(true) => {
                    let size = u64::try_from(record.update.len()).unwrap_or(u64::MAX);
                    self.doc_bytes = self.doc_bytes.saturating_add(size);
                    if !self.batch_authors.iter().any(|a| **a == *record.author) {
                        self.batch_authors.push(Arc::from(record.author.as_str()));
                    }
                    out.all(protocol::encode_update(&record.update));
                    applied += 1;
                    // Another node bound its writers (and maybe the creator) in the store.
                    self.authors_stale = true;
                }
                Ok(false) => {}
                Err(_) => self.reload_doc()?,
            }
        }
        Ok(applied)
    }

    /// Presence from another node's sockets: applied and passed to ours.
    fn apply_remote_awareness(&mut self, node: &str, raw: &[u8]) {
        if let Ok(update) = AwarenessUpdate::decode_v1(raw) {
            self.presence.apply_remote(node, update);
        }
    }

    /// Sends the presence of this node's sockets to the other nodes (a room opened there).
    fn republish_awareness(&self) {
        if let (Some(cluster), Some(update)) = (&self.app.cluster, self.presence.local_states()) {
            cluster.publish_awareness(&self.name, &update.encode_v1());
        }
    }

    /// Broadcasts the presence changes coalesced since the last broadcast, if they are due, and
    /// shares this node's part of them with the other nodes.
    fn broadcast_presence(&mut self, out: &mut Outbox) {
        let Some((all, local)) = self.presence.take_due(Instant::now()) else {
            return;
        };
        out.all(protocol::encode_awareness(&all));
        if let (Some(cluster), Some(local)) = (&self.app.cluster, local) {
            cluster.publish_awareness(&self.name, &local.encode_v1());
        }
    }

    /// Describes the durable changes of this batch on the change feed (typed documents only).
    fn publish_changes(&mut self) {
        let by: Vec<String> = self
            .batch_authors
            .drain(..)
            .map(|a| a.to_string())
            .collect();
        let Some((kind, before)) = &mut self.typed else {
            return;
        };
        let kind = *kind;
        let after = typed::read(kind, &self.doc).0;
        let changes = typed::changes(kind, before, &after);
        *before = after;
        self.app.feed.publish(&self.name, by, changes);
    }

    /// One-round-trip sync: apply the caller's offline edits, then (after the batch is durable)
    /// answer with what it lacks and our state vector.
    fn http_sync(
        &mut self,
        request: HttpSync,
        out: &mut Outbox,
    ) -> Result<(u64, Option<PendingHttpReply>), String> {
        let HttpSync {
            state_vector,
            updates,
            read_only,
            author,
            if_none_match,
            reply,
        } = request;
        let mut appended = 0;
        let mut refused = read_only
            .iter()
            .filter(|shape| self.would_change(shape))
            .count();
        self.app
            .metrics
            .updates_refused
            .fetch_add(u64::try_from(refused).unwrap_or(u64::MAX), Relaxed);
        for update in updates {
            match self.ingest(&author, update, out)? {
                Ingest::Applied => appended += 1,
                // The answer carries our state vector: the client's next sync sends what is
                // missing from its edits' history.
                Ingest::Empty | Ingest::Known | Ingest::Gap => {}
                Ingest::Foreign { .. } => refused += 1,
                Ingest::TooLarge => {
                    let _ = reply.send(Err(HttpSyncError::TooLarge));
                    return Ok((appended, None));
                }
                Ingest::Invalid(cause) => {
                    let _ = reply.send(Err(HttpSyncError::Invalid(cause)));
                    return Ok((appended, None));
                }
            }
        }
        Ok((
            appended,
            Some(PendingHttpReply {
                state_vector,
                refused,
                if_none_match,
                reply,
            }),
        ))
    }

    fn answer_http(&self, pending: PendingHttpReply) {
        let server_sv = self.doc.transact().state_vector();
        let etag = state_tag(&server_sv);
        let unchanged =
            pending.refused == 0 && pending.if_none_match.as_deref() == Some(etag.as_str());
        let body = if unchanged {
            None
        } else {
            let Some(diff) = encode_diff(&self.doc, &pending.state_vector) else {
                let _ = pending.reply.send(Err(HttpSyncError::Invalid(
                    "the document does not encode".into(),
                )));
                return;
            };
            let mut body = protocol::encode_sync_step2(&diff);
            body.extend_from_slice(&protocol::encode_sync_step1(&server_sv));
            if pending.refused > 0 {
                body.extend_from_slice(&protocol::encode_permission_denied("permission denied"));
            }
            Some(body)
        };
        let _ = pending.reply.send(Ok(HttpSyncReply {
            body,
            etag,
            refused_updates: pending.refused,
        }));
    }

    /// Replaces the in-memory document with the stored one (blocking read, rare path).
    fn reload_doc(&mut self) -> Result<(), String> {
        let stored = self
            .app
            .store
            .load(&self.name)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let (doc, bytes) = tandem_crdt_model::doc::build(stored.updates())?;
        self.doc = doc;
        self.doc_bytes = bytes;
        if let Some(cluster) = &self.app.cluster {
            cluster.reset_tail(&self.name, last_seq_of(&stored));
        }
        Ok(())
    }

    fn leave(&mut self, conn: ConnId) {
        if self.members.remove(&conn).is_some() {
            self.presence.leave(conn);
        }
    }

    fn close_member(&mut self, conn: ConnId, code: CloseCode) {
        if let Some(member) = self.members.get(&conn) {
            let _ = member.peer.close.send(Some(code));
        }
        self.leave(conn);
    }

    fn close_all(&mut self, code: CloseCode) {
        for (_, member) in self.members.drain() {
            let _ = member.peer.close.send(Some(code));
        }
        self.conn_count.store(0, Relaxed);
    }

    /// Queues the outbox to the sockets. A socket whose queue is full is closed as a slow
    /// consumer; its departure reaches the others with the next presence broadcast.
    fn deliver(&mut self, out: Outbox) {
        let metrics = Arc::clone(&self.app.metrics);
        let mut overflowed = Vec::new();
        for (dest, frame) in out.0 {
            let mut send = |member: &Member| match member.peer.outbound.try_send(frame.clone()) {
                Ok(()) => {
                    metrics.messages_out.fetch_add(1, Relaxed);
                    metrics
                        .bytes_out
                        .fetch_add(u64::try_from(frame.len()).unwrap_or(0), Relaxed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => overflowed.push(member.peer.id),
                // The connection task is gone; its Leave is on the way.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            };
            match dest {
                Dest::One(conn) => {
                    if let Some(m) = self.members.get(&conn) {
                        send(m);
                    }
                }
                Dest::All => self.members.values().for_each(&mut send),
            }
        }
        overflowed.sort_unstable();
        overflowed.dedup();
        for conn in overflowed {
            tracing::warn!(doc = %self.name, conn, "closing slow consumer");
            metrics.slow_consumers_closed.fetch_add(1, Relaxed);
            self.close_member(conn, CloseCode::SlowConsumer);
        }
    }

    fn maybe_compact(&mut self) {
        if self.compacting {
            return;
        }
        match self.app.store.needs_compaction(&self.name) {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(doc = %self.name, cause = %e, "could not check compaction");
                return;
            }
        }
        let Some(inbox) = self.inbox_weak.upgrade() else {
            return;
        };
        self.compacting = true;
        self.bytes_since_compaction_start = 0;
        let store = Arc::clone(&self.app.store);
        let name = Arc::clone(&self.name);
        let lock = self.app.rooms.compaction_lock(&name);
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || {
                // One compaction per document at a time, even across a room unload and reload.
                let _held = lock
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                store.compact(&name)
            })
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(format!("compaction task failed: {e}"))));
            let _ = inbox.send(RoomCmd::Compacted(result)).await;
        });
    }

    fn compacted(&mut self, result: Result<CompactionReport, StoreError>) {
        self.compacting = false;
        match result {
            Ok(report) => {
                self.app.metrics.compactions.fetch_add(1, Relaxed);
                self.doc_bytes = report
                    .snapshot_bytes
                    .saturating_add(self.bytes_since_compaction_start);
                tracing::debug!(doc = %self.name, merged = report.merged_updates, bytes = report.snapshot_bytes, "compacted");
            }
            Err(e) => tracing::warn!(doc = %self.name, cause = %e, "compaction failed"),
        }
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Answers every queued command with the load error until the registry forgets the room.
async fn fail_all(
    app: &App,
    name: &Arc<str>,
    generation: u64,
    inbox: &mut mpsc::Receiver<RoomCmd>,
    err: &RoomError,
) {
    app.rooms.remove(name, generation);
    inbox.close();
    while let Some(cmd) = inbox.recv().await {
        match cmd {
            RoomCmd::Ready(reply) => {
                let _ = reply.send(Err(err.clone()));
            }
            RoomCmd::Join(peer, _) => {
                let _ = peer.close.send(Some(CloseCode::InternalError));
            }
            _ => {}
        }
    }
}

/// The document, its stored size, the last seq it includes, and who wrote it.
async fn load(app: &Arc<App>, name: &Arc<str>) -> Result<(Doc, u64, u64, Authors), RoomError> {
    let store = Arc::clone(&app.store);
    let key = Arc::clone(name);
    let load_err = |cause: String| RoomError::Load {
        doc: name.to_string(),
        cause,
    };
    // Reading and replaying a long log is blocking work: keep it off the async workers.
    tokio::task::spawn_blocking(move || {
        let stored = store
            .load(&key)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let (doc, bytes) = tandem_crdt_model::doc::build(stored.updates())?;
        let mut authors = Authors::from_record(store.authorship(&key).map_err(|e| e.to_string())?);
        authors
            .derive_from_log(&*store, &key, &stored.tail)
            .map_err(|e| e.to_string())?;
        Ok((doc, bytes, last_seq_of(&stored), authors))
    })
    .await
    .map_err(|e| load_err(e.to_string()))?
    .map_err(load_err)
}

fn last_seq_of(stored: &tandem_storage::StoredDoc) -> u64 {
    stored.tail.last().map_or(stored.snapshot_seq, |r| r.seq)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
