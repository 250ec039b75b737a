//! A room: the single owner of one open document's state.
//!
//! One task per open document owns its `yrs::Doc`, its presence table and its members;
//! connections (and the HTTP API) talk to it only through a bounded inbox of [`RoomCmd`]s. The
//! task works in batches: it takes every command waiting in its inbox, handles them in order
//! while collecting what to send in an outbox, hands the batch's updates to the group commit,
//! and only then delivers the outbox. So nothing leaves the room (no echo, no broadcast, no
//! SyncStep2) that is not already durable: persist before broadcast.
//!
//! A room knows documents, not wires: members receive typed [`Outgoing`] messages and
//! [`Detach`] reasons, which each connection frames in its own dialect; a message is shared by
//! every member it goes to and encoded once per dialect ([`Message`]). Members never block the
//! room: messages go into each member's bounded [`Mailbox`] without waiting, and a full mailbox
//! detaches that member as a slow consumer.
//!
//! The room never waits on I/O on its own task: loading, reloading, deleting and compacting run
//! on blocking threads, and appends and flushes run in the group commit ([`crate::durability`]).
//!
//! Files, by job:
//! - `commands.rs`: the room's API ([`RoomCmd`], [`Member`], HTTP and REST requests).
//! - `outgoing.rs`: what members receive ([`Outgoing`], [`Message`], [`Detach`]).
//! - `mailbox.rs`: how it reaches them ([`Mailbox`]: bounded, empty costs nothing, taken whole).
//! - this file: loading, the loop and its batch.
//! - `members.rs`: joining, leaving, a member's messages, delivery, presence broadcasts.
//! - `ingest.rs`: the one way an update gets in, shared by sockets, HTTP sync and REST edits.
//! - `remote.rs`: cluster mode: other nodes' updates and presence.
//! - `describe.rs`: what changed, in whose name: the change feed's events and notifications.
//! - `upkeep.rs`: reloads, compaction, deletion.

mod commands;
mod describe;
mod ingest;
mod mailbox;
mod members;
mod outage;
mod outgoing;
mod remote;
mod upkeep;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tandem_crdt_model::deleted::Deleted;
use tandem_crdt_model::doc::encode_state;
use tandem_crdt_model::typed::{self, DocKind, Typed};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use yrs::{Doc, StateVector};

pub use commands::{
    Edit, EditError, EditFn, HttpSync, HttpSyncError, HttpSyncReply, Member, MemberId, Receives,
    RoomCmd, RoomError, READ_ONLY,
};
pub use mailbox::{mailbox, Delivery, Full, Mailbox, MailboxReader};
pub use outgoing::{Detach, Message, Outgoing, DIALECTS};

use crate::abuse::TokenBucket;
use crate::app::App;
use crate::authorship::Authors;
use crate::durability::Append;
use crate::presence::Presence;
use outgoing::Outbox;

/// The capacity, in commands, a room's batch buffer keeps between batches: a few, so a
/// steady trickle does not allocate per batch, and an idle room holds next to nothing.
const BATCH_KEPT: usize = 4;

/// A member as the room keeps it.
struct Attached {
    member: Member,
    /// The document state at which this member was last asked to resync after an update it
    /// sent had a gap. A client whose own document holds content it cannot complete (pending in
    /// Yjs, say from a second provider) answers every request with the same incomplete update;
    /// asking again only when the document has changed since keeps that from looping.
    /// Boxed: set only after such a gap, and every member's entry would otherwise carry a state
    /// vector's size (issue 16, idle sockets).
    resync_asked_at: Option<Box<StateVector>>,
    /// The member's sync requests (`sync_requests_per_min`): each costs an encoding of up to
    /// the whole document, held until the member's socket takes it.
    sync_requests: TokenBucket,
}

/// The stored log's length since the last compaction, as far as this room knows.
#[derive(Default)]
struct Tail {
    updates: u64,
    bytes: u64,
}

pub struct Room {
    name: Arc<str>,
    generation: u64,
    app: Arc<App>,
    doc: Doc,
    /// What `doc` has deleted, kept current: a reader's frame is checked against it without a
    /// walk of the document (`would_change`).
    deleted: Deleted,
    /// Presence, kept apart from `doc` so a reload can replace `doc` alone.
    presence: Presence,
    members: HashMap<MemberId, Attached>,
    /// Upper bound of the document's encoded size: stored snapshot + log bytes.
    doc_bytes: u64,
    /// The log since the last compaction; compaction starts when it passes the thresholds.
    tail: Tail,
    /// Bytes appended since the running compaction started (they may not be in its snapshot).
    bytes_since_compaction_start: u64,
    compacting: bool,
    inbox_weak: mpsc::WeakSender<RoomCmd>,
    /// Members counted in `/api/stats`, shared with the registry.
    member_count: Arc<std::sync::atomic::AtomicUsize>,
    /// For a typed document: its kind and the reading the change feed last described.
    typed: Option<(DocKind, Typed)>,
    /// Whose changes the document is taking now (`describe.rs`), and what closed ones described.
    segment: Option<describe::Segment>,
    described: describe::Described,
    /// Who wrote the document (creator, client IDs), by the server's own record.
    authors: Authors,
    /// Another node may have added to `authors` in the store (cluster mode): re-read it before
    /// a permission depends on it.
    authors_stale: bool,
    /// Updates applied in this batch and not yet handed to the group commit.
    pending: Vec<Append>,
    /// The document was changed in a way it must be rebuilt from the store after (an update that
    /// half-integrated, a REST edit that panicked, a remote update that does not fit).
    reload_needed: bool,
}

/// What a batch collected, answered once it is durable.
#[derive(Default)]
struct Batch {
    out: Outbox,
    ready: Vec<oneshot::Sender<Result<(), RoomError>>>,
    http: Vec<ingest::PendingHttpReply>,
    edits: Vec<ingest::PendingEdit>,
}

/// Whether the room goes on after a command.
enum Flow {
    Continue,
    /// The room stops (the document was deleted); the batch's answers were given.
    Stop,
}

impl Room {
    /// Loads the document and serves the inbox until the room unloads or the server stops.
    pub(crate) async fn run(
        app: Arc<App>,
        name: Arc<str>,
        generation: u64,
        inbox_weak: mpsc::WeakSender<RoomCmd>,
        mut inbox: mpsc::Receiver<RoomCmd>,
        member_count: Arc<std::sync::atomic::AtomicUsize>,
    ) {
        app.metrics.rooms_open.fetch_add(1, Relaxed);
        let loaded = match upkeep::load(&app, &name).await {
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
        let typed = typed::locate(&name).map(|l| (l.kind, typed::read(l.kind, &loaded.doc).0));
        let mut room = Room {
            name,
            generation,
            app,
            doc: loaded.doc,
            deleted: loaded.deleted,
            presence,
            members: HashMap::new(),
            doc_bytes: loaded.bytes,
            tail: loaded.tail,
            bytes_since_compaction_start: 0,
            compacting: false,
            inbox_weak,
            member_count,
            typed,
            segment: None,
            described: describe::Described::default(),
            authors: loaded.authors,
            authors_stale: false,
            pending: Vec::new(),
            reload_needed: false,
        };
        if let Some(cluster) = &room.app.cluster {
            cluster.register(&room.name, loaded.last_seq, room.inbox_weak.clone());
        }
        room.serve(inbox).await;
        if let Some(cluster) = &room.app.cluster {
            cluster.unregister(&room.name);
        }
        room.app.metrics.rooms_open.fetch_sub(1, Relaxed);
    }

    async fn serve(&mut self, mut inbox: mpsc::Receiver<RoomCmd>) {
        let mut shutdown = self.app.shutdown.clone();
        let grace = self.app.config.timing.room_idle_grace;
        let batch_len_max = self.app.config.limits.room_batch_len_max;
        let mut idle_since: Option<Instant> = Some(Instant::now());
        // Grows with the batches that arrive and shrinks after each: sized for the largest
        // batch up front, it held `room_batch_len_max` commands' worth (32 KiB) in every open
        // room for its whole life, busy or not (issue 16, idle sockets).
        let mut batch = Vec::new();
        loop {
            let idle_deadline = idle_since.map(|t| t + grace);
            tokio::select! {
                _ = sleep_until_opt(self.presence.due_at()) => {
                    let mut out = Outbox::default();
                    self.broadcast_presence(&mut out);
                    self.deliver(out);
                    continue;
                }
                received = inbox.recv_many(&mut batch, batch_len_max) => {
                    if received == 0 {
                        return; // every sender is gone: nothing can reach this room any more
                    }
                }
                _ = shutdown.wait_for(|stop| *stop) => {
                    self.detach_all(Detach::Restart);
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
            // Boxed: a batch's work is the largest await of the room's life, and an idle room
            // (most of them, most of the time) would otherwise keep its size.
            if !Box::pin(self.handle_batch(&mut batch)).await {
                return;
            }
            batch.shrink_to(BATCH_KEPT);
            idle_since = if self.members.is_empty() {
                Some(idle_since.unwrap_or_else(Instant::now))
            } else {
                None
            };
            self.member_count.store(self.members.len(), Relaxed);
        }
    }

    /// Handles one batch; false when the room stopped (deleted, or a storage failure).
    async fn handle_batch(&mut self, commands: &mut Vec<RoomCmd>) -> bool {
        let mut batch = Batch::default();
        for command in commands.drain(..) {
            match self.handle(command, &mut batch).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return false,
                Err(cause) => {
                    self.fail(&cause, batch);
                    return false;
                }
            }
        }
        if let Err(cause) = self.commit().await {
            self.fail(&cause, batch);
            return false;
        }
        self.finish(batch);
        true
    }

    async fn handle(&mut self, command: RoomCmd, batch: &mut Batch) -> Result<Flow, String> {
        match command {
            RoomCmd::Ready(reply) => batch.ready.push(reply),
            RoomCmd::Join(member, reply) => {
                self.join(member, &mut batch.out);
                let _ = reply.send(());
            }
            RoomCmd::Inbound { member, messages } => {
                for message in messages {
                    if let (tandem_crdt_model::protocol::Inbound::Update(update), Some(attached)) =
                        (&message, self.members.get(&member))
                    {
                        if attached.member.can_write {
                            let author = Arc::clone(&attached.member.author);
                            self.prebind(&author, update).await?;
                        }
                    }
                    self.handle_message(member, message, &mut batch.out)?;
                    self.reload_if_needed().await?;
                }
            }
            RoomCmd::Leave { member } => self.leave(member),
            RoomCmd::Compacted(result) => self.compacted(result),
            RoomCmd::HttpSync(request) => {
                let author = Arc::clone(&request.author);
                for update in &request.updates {
                    self.prebind(&author, update).await?;
                }
                let (_, pending) = self.http_sync(*request, &mut batch.out)?;
                batch.http.extend(pending);
                self.reload_if_needed().await?;
            }
            RoomCmd::Edit(edit) => {
                let (_, pending) = self.edit(edit, &mut batch.out).await?;
                batch.edits.push(pending);
                self.reload_if_needed().await?;
            }
            RoomCmd::Remote(records) => {
                self.apply_remote(records, &mut batch.out);
                self.reload_if_needed().await?;
            }
            RoomCmd::RemoteAwareness { node, update } => {
                self.apply_remote_awareness(&node, &update);
            }
            RoomCmd::AwarenessHello => self.republish_awareness(),
            RoomCmd::NodeGone(node) => self.presence.drop_node(&node),
            RoomCmd::State(reply) => {
                let _ = reply.send(encode_state(&self.doc));
            }
            RoomCmd::RemoteDeleted => {
                self.stop(Detach::Deleted, std::mem::take(batch));
                return Ok(Flow::Stop);
            }
            RoomCmd::Delete { by, reply } => {
                // Earlier edits of this batch go with the document, so nothing of them is
                // delivered.
                self.stop(Detach::Deleted, std::mem::take(batch));
                let _ = reply.send(self.delete(&by).await);
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Continue)
    }

    /// Hands the batch's updates to the group commit and waits until they are durable.
    /// The changes' notifications go with them; streams waiting for them are woken once they
    /// are durable.
    async fn commit(&mut self) -> Result<(), String> {
        self.close_segment();
        self.describe_updates();
        let notifications = std::mem::take(&mut self.described.notifications);
        let hooks = std::mem::take(&mut self.described.hooks);
        if self.pending.is_empty() && notifications.is_empty() && hooks.is_empty() {
            return Ok(());
        }
        let appends = std::mem::take(&mut self.pending);
        let count = u64::try_from(appends.len()).unwrap_or(u64::MAX);
        let woken: Vec<String> = hooks.iter().map(|h| h.endpoint.clone()).collect();
        // A retry may append again an update a failed attempt had written: applying it twice
        // changes nothing.
        let durability = &self.app.durability;
        outage::hold(&self.app, &self.name, || {
            durability.commit(appends.clone(), notifications.clone(), hooks.clone())
        })
        .await?;
        self.app.metrics.updates_persisted.fetch_add(count, Relaxed);
        self.app.notifier.delivered(&notifications);
        self.app.webhooks.wake(&woken);
        Ok(())
    }

    /// A half-applied change is undone by rebuilding the document from the store, once what
    /// this batch applied before it is durable (so the rebuild keeps it).
    async fn reload_if_needed(&mut self) -> Result<(), String> {
        if !self.reload_needed {
            return Ok(());
        }
        self.reload_needed = false;
        self.commit().await?;
        self.reload_doc().await
    }

    /// The batch is durable: answer, deliver, and look after the document.
    fn finish(&mut self, batch: Batch) {
        for reply in batch.ready {
            let _ = reply.send(Ok(()));
        }
        for pending in batch.http {
            self.answer_http(pending);
        }
        for pending in batch.edits {
            let _ = pending.reply.send(pending.answer);
        }
        let mut out = batch.out;
        self.broadcast_presence(&mut out);
        self.deliver(out);
        self.publish_described();
        self.maybe_compact();
    }

    /// Storage failed: nothing of this batch is acknowledged. The in-memory document may hold
    /// updates the disk lacks, so the room stops: every member is detached, the registry forgets
    /// the room, and the next open reloads what is durable. `/health` reports the failure until
    /// the store works again.
    fn fail(&mut self, cause: &str, batch: Batch) {
        tracing::error!(doc = %self.name, cause = %cause, "storage failure; closing the room");
        // Reported until a probe finds the store working again (see `health`).
        self.app.health.store_failed(cause);
        self.pending.clear();
        self.segment = None;
        self.described = describe::Described::default();
        ingest::refuse_pending(batch.http, batch.edits, true);
        self.detach_all(Detach::StorageFailure);
        self.app.rooms.remove(&self.name, self.generation);
    }

    /// The room stops for `why`, answering what the batch was waiting for.
    fn stop(&mut self, why: Detach, batch: Batch) {
        self.pending.clear();
        self.segment = None;
        self.described = describe::Described::default();
        ingest::refuse_pending(batch.http, batch.edits, false);
        self.detach_all(why);
        self.app.rooms.remove(&self.name, self.generation);
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
            RoomCmd::Join(member, _) => member.mailbox.detach(Detach::StorageFailure),
            _ => {}
        }
    }
}
