//! The one way an update gets into a document, whoever sent it: a member's update, an HTTP
//! sync's edits and a REST edit all end in [`Room::store_update`], which records it for the
//! group commit and broadcasts it once the batch is durable.

use std::panic::AssertUnwindSafe;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use tandem_crdt_model::doc::{apply_guarded, encode_diff, has_gap, state_tag};
use tandem_crdt_model::protocol::ClientUpdate;
use tandem_crdt_model::shape::UpdateShape;
use tokio::sync::oneshot;
use yrs::{ReadTxn, StateVector, Transact};

use super::outgoing::Outbox;
use super::{
    Detach, Edit, EditError, HttpSync, HttpSyncError, HttpSyncReply, MemberId, Outgoing, Room,
    RoomError,
};
use crate::authorship::{Authors, Claim};
use crate::clock::now_ms;
use crate::durability::Append;

/// The reason sent with the permission-denied message for an update under another author's
/// client ID.
const FOREIGN_CLIENT_ID: &str = "permission denied: client ID belongs to another author";

/// What became of one incoming update.
pub(super) enum Ingest {
    /// It carried nothing (the empty update clients send when they have nothing to add).
    Empty,
    /// Everything in it was already in the document (its bytes, to echo to its sender).
    Known(Bytes),
    /// Applied and recorded for the commit; broadcast once durable.
    Applied,
    /// Refused: the document would pass `doc_size_max_bytes`.
    TooLarge,
    /// Not applied: it depends on content we lack (see `has_gap`).
    Gap,
    /// Refused: it does not integrate (the document is rebuilt from the store).
    Invalid(String),
    /// Refused: it writes under a client ID that belongs to another author ([`Authors::claim`]).
    Foreign { client: u64 },
}

/// A REST edit's answer waiting for its batch to be durable.
pub(super) struct PendingEdit {
    pub(super) answer: Result<serde_json::Value, EditError>,
    pub(super) reply: oneshot::Sender<Result<serde_json::Value, EditError>>,
}

/// An HTTP sync answer waiting for its batch to be durable.
pub(super) struct PendingHttpReply {
    state_vector: StateVector,
    refused: usize,
    if_none_match: Option<String>,
    reply: oneshot::Sender<Result<HttpSyncReply, HttpSyncError>>,
}

/// Answers the HTTP requests of a batch that will never be acknowledged: the store failed, or
/// the room is going away.
pub(super) fn refuse_pending(http: Vec<PendingHttpReply>, edits: Vec<PendingEdit>, storage: bool) {
    for pending in http {
        let _ = pending.reply.send(Err(if storage {
            HttpSyncError::Storage
        } else {
            HttpSyncError::Room(RoomError::Gone)
        }));
    }
    for pending in edits {
        let _ = pending.reply.send(Err(if storage {
            EditError::Storage
        } else {
            EditError::Room(RoomError::Gone)
        }));
    }
}

impl Room {
    /// True when applying an update of this shape would change the document.
    pub(super) fn would_change(&self, shape: &UpdateShape) -> bool {
        !self.deleted.knows(&self.doc, shape)
    }

    /// A member's update; true when it changed the document.
    pub(super) fn apply_member_update(
        &mut self,
        id: MemberId,
        author: &Arc<str>,
        update: ClientUpdate,
        out: &mut Outbox,
    ) -> Result<bool, String> {
        let size = update.bytes.len();
        match self.ingest(author, update, out)? {
            Ingest::Empty => {
                self.ack(id, true, out);
                Ok(false)
            }
            Ingest::Applied => {
                self.ack(id, true, out);
                Ok(true)
            }
            Ingest::Known(bytes) => {
                // Nothing new (a resend): it is already durable, so only its author hears back.
                out.to(id, Outgoing::Update(bytes));
                self.ack(id, true, out);
                Ok(false)
            }
            Ingest::Gap => {
                // Not applied, so refused; the SyncStep2 the resync brings carries it and is
                // acknowledged when it is applied.
                self.ack(id, false, out);
                // Ask again: the client answers our state vector with everything we lack, this
                // update's predecessors and the update itself.
                let sv = self.doc.transact().state_vector();
                if let Some(attached) = self.members.get_mut(&id) {
                    if attached.resync_asked_at.as_deref() == Some(&sv) {
                        tracing::debug!(doc = %self.name, member = id, "update still ahead of its dependencies; not asking again");
                    } else {
                        tracing::debug!(doc = %self.name, member = id, "update ahead of its dependencies; asking for a resync");
                        attached.resync_asked_at = Some(Box::new(sv.clone()));
                        out.to(id, Outgoing::SyncStep1(sv));
                    }
                }
                Ok(false)
            }
            Ingest::TooLarge => {
                tracing::warn!(doc = %self.name, member = id, size, "update refused: document size limit");
                self.detach(id, Detach::DocumentTooLarge);
                Ok(false)
            }
            Ingest::Invalid(cause) => {
                tracing::warn!(doc = %self.name, member = id, cause = %cause, "update refused: does not apply");
                self.detach(id, Detach::InvalidUpdate);
                Ok(false)
            }
            Ingest::Foreign { client } => {
                tracing::warn!(doc = %self.name, member = id, client, author = %author, "update refused: client ID of another author");
                out.to(id, Outgoing::PermissionDenied(FOREIGN_CLIENT_ID));
                self.ack(id, false, out);
                Ok(false)
            }
        }
    }

    /// Applies one update from a member or an HTTP sync, records it for the commit and queues
    /// its broadcast. The caller decides what the outcome means for its client.
    pub(super) fn ingest(
        &mut self,
        author: &Arc<str>,
        update: ClientUpdate,
        out: &mut Outbox,
    ) -> Result<Ingest, String> {
        if let Some(refused) = self.refused_before_claim(&update) {
            if matches!(refused, Ingest::TooLarge) {
                self.app.metrics.updates_refused.fetch_add(1, Relaxed);
            }
            return Ok(refused);
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
        let depth_max = self
            .app
            .config
            .limits
            .nesting_depth_max
            .saturating_sub(update.shape.type_depth);
        self.local_change(author);
        match apply_guarded(&self.doc, update.decoded, depth_max) {
            Ok(false) => Ok(Ingest::Known(Bytes::from(update.bytes))),
            Ok(true) => {
                self.store_update(author, Bytes::from(update.bytes), out);
                Ok(Ingest::Applied)
            }
            Err(cause) => {
                // The update decoded but does not integrate. Part of it may have been applied,
                // so the document is rebuilt from the store (which never saw it) before anyone
                // reads it again.
                self.app.metrics.updates_refused.fetch_add(1, Relaxed);
                self.reload_needed = true;
                Ok(Ingest::Invalid(cause))
            }
        }
    }

    /// An update now in the document: recorded for the group commit and broadcast to every
    /// member (its author included: the echo tells the author it is durable), which happens
    /// only once the batch is durable.
    pub(super) fn store_update(&mut self, author: &Arc<str>, update: Bytes, out: &mut Outbox) {
        let size = u64::try_from(update.len()).unwrap_or(u64::MAX);
        if self.doc_bytes == 0 {
            // The store records the author of a document's first update as its creator.
            self.authors.created_by(author);
        }
        self.doc_bytes = self.doc_bytes.saturating_add(size);
        self.tail.updates += 1;
        self.tail.bytes = self.tail.bytes.saturating_add(size);
        self.bytes_since_compaction_start = self.bytes_since_compaction_start.saturating_add(size);
        self.pending.push(Append {
            doc: Arc::clone(&self.name),
            author: Arc::clone(author),
            time_ms: now_ms(),
            update: update.clone(),
        });
        out.update(update);
    }

    /// One-round-trip sync: apply the caller's offline edits, then (after the batch is durable)
    /// answer with what it lacks and our state vector. True when it changed the document.
    pub(super) fn http_sync(
        &mut self,
        request: HttpSync,
        out: &mut Outbox,
    ) -> Result<(bool, Option<PendingHttpReply>), String> {
        let HttpSync {
            state_vector,
            updates,
            read_only,
            author,
            if_none_match,
            reply,
        } = request;
        let mut changed = false;
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
                Ingest::Applied => changed = true,
                // The answer carries our state vector: the client's next sync sends what is
                // missing from its edits' history.
                Ingest::Empty | Ingest::Known(_) | Ingest::Gap => {}
                Ingest::Foreign { .. } => refused += 1,
                Ingest::TooLarge => {
                    let _ = reply.send(Err(HttpSyncError::TooLarge));
                    return Ok((changed, None));
                }
                Ingest::Invalid(cause) => {
                    let _ = reply.send(Err(HttpSyncError::Invalid(cause)));
                    return Ok((changed, None));
                }
            }
        }
        let pending = PendingHttpReply {
            state_vector,
            refused,
            if_none_match,
            reply,
        };
        Ok((changed, Some(pending)))
    }

    pub(super) fn answer_http(&self, pending: PendingHttpReply) {
        let state_vector = self.doc.transact().state_vector();
        let tag = state_tag(&state_vector);
        let unchanged =
            pending.refused == 0 && pending.if_none_match.as_deref() == Some(tag.as_str());
        let diff = if unchanged {
            None
        } else {
            let Some(diff) = encode_diff(&self.doc, &pending.state_vector) else {
                let _ = pending.reply.send(Err(HttpSyncError::Invalid(
                    "the document does not encode".into(),
                )));
                return;
            };
            Some(diff)
        };
        let _ = pending.reply.send(Ok(HttpSyncReply {
            diff,
            state_vector,
            tag,
            refused_updates: pending.refused,
        }));
    }

    /// What `ingest` answers an update before any client ID is claimed for it, if it stops there.
    fn refused_before_claim(&self, update: &ClientUpdate) -> Option<Ingest> {
        let size = u64::try_from(update.bytes.len()).unwrap_or(u64::MAX);
        if update.decoded.is_empty() {
            return Some(Ingest::Empty);
        }
        if self.doc_bytes.saturating_add(size) > self.app.config.limits.doc_size_max_bytes {
            return Some(Ingest::TooLarge);
        }
        has_gap(&self.doc, &update.shape.requires).then_some(Ingest::Gap)
    }

    /// Binds in the store, off the room's task, the client IDs an update of `author` writes under
    /// that the room's record does not hold yet (each ID's first writer keeps it, across nodes;
    /// with Redis that is a network round trip), for an update `ingest` will get to claiming
    /// for. `ingest` then decides from memory.
    pub(super) async fn prebind(
        &mut self,
        author: &Arc<str>,
        update: &ClientUpdate,
    ) -> Result<(), String> {
        if self.refused_before_claim(update).is_some() {
            return Ok(());
        }
        let presence = &self.presence;
        let to_bind = self.authors.to_bind(
            author,
            update.shape.writers(),
            self.doc.client_id(),
            |client| presence.author_of(client),
        );
        for (client, owner) in self.bind_off_task(author, to_bind, 0).await? {
            self.authors.bound(client, 0, owner);
        }
        Ok(())
    }

    /// `store.bind` for each of `clients` from `start`, on a blocking thread.
    async fn bind_off_task(
        &self,
        author: &Arc<str>,
        clients: Vec<u64>,
        start: u32,
    ) -> Result<Vec<(u64, Arc<str>)>, String> {
        if clients.is_empty() {
            return Ok(Vec::new());
        }
        super::outage::hold(&self.app, &self.name, || {
            let (store, doc, who, clients) = (
                Arc::clone(&self.app.store),
                self.name.to_string(),
                author.to_string(),
                clients.clone(),
            );
            async move {
                tokio::task::spawn_blocking(move || {
                    clients
                        .into_iter()
                        .map(|c| store.bind(&doc, c, start, &who).map(|o| (c, Arc::from(o))))
                        .collect::<Result<Vec<_>, _>>()
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())
            }
        })
        .await
    }

    /// Re-reads the authorship record (another node may have added to it), off the room's task.
    async fn refresh_authors(&mut self) -> Result<(), String> {
        if !self.authors_stale {
            return Ok(());
        }
        let record = super::outage::hold(&self.app, &self.name, || {
            let (store, doc) = (Arc::clone(&self.app.store), self.name.to_string());
            async move {
                tokio::task::spawn_blocking(move || store.authorship(&doc))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())
            }
        })
        .await?;
        self.authors = Authors::from_record(record);
        self.authors_stale = false;
        Ok(())
    }

    /// Makes a REST edit on the document: whatever it changed is stored and broadcast like a
    /// member's update, and its answer waits for the batch's commit. True when it changed the
    /// document.
    pub(super) async fn edit(
        &mut self,
        edit: Edit,
        out: &mut Outbox,
    ) -> Result<(bool, PendingEdit), String> {
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
            return Ok((false, PendingEdit { answer, reply }));
        }
        self.refresh_authors().await?;
        let own = self.doc.client_id();
        let own_clock_before = self.doc.transact().state_vector().get(&own);
        let made = Arc::new(Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = Arc::clone(&made);
        let observing = self.doc.observe_update_v1("rest-edit", move |_, e| {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(e.update.clone());
        });
        self.local_change(&author);
        let answer = std::panic::catch_unwind(AssertUnwindSafe(|| apply(&self.doc, &self.authors)))
            .map_err(|_| ());
        if observing.is_ok() {
            let _ = self.doc.unobserve_update_v1("rest-edit");
        }
        let updates = std::mem::take(&mut *made.lock().unwrap_or_else(PoisonError::into_inner));
        let Ok(answer) = answer else {
            // Half an edit may be in the document: start again from what is durable.
            self.reload_needed = true;
            let answer = Err(EditError::Failed);
            return Ok((false, PendingEdit { answer, reply }));
        };
        let update = match updates.len() {
            0 => return Ok((false, PendingEdit { answer, reply })),
            1 => updates.into_iter().next().unwrap_or_default(),
            _ => yrs::merge_updates_v1(&updates).map_err(|e| e.to_string())?,
        };
        if let Some(start) = self
            .authors
            .own_edit_to_bind(own, own_clock_before, &author)
        {
            for (client, owner) in self.bind_off_task(&author, vec![own.get()], start).await? {
                self.authors.bound(client, start, owner);
            }
        }
        self.store_update(&author, Bytes::from(update), out);
        Ok((true, PendingEdit { answer, reply }))
    }
}
