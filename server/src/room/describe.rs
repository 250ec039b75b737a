//! Describing what changed in a typed document, for the change feed and for notifications.
//!
//! A batch may hold edits of several people. The room reads the document before each run of one
//! person's edits (a *segment*), so each typed change is told in the name of the one who made it,
//! and a person is never notified of their own change because someone else's landed in the same
//! batch. Updates from other nodes form segments of their own, which derive nothing: their feed
//! events, notifications and webhook events were derived, and written, by the node that
//! accepted them (the feed through the cluster's event stream, `cluster::feed`).
//!
//! Segments close before the group commit, so a batch's notifications and webhook events go to
//! the store in the same commit as its updates, and its feed events are published once that
//! commit is durable. Webhook events, like notifications, are queued by the node that accepted
//! the change only: each event enters the (shared) outbox once.

use std::sync::Arc;

use tandem_crdt_model::typed::{self, Change};
use tandem_storage::{NewHookEvent, NewNotification};

use super::Room;
use crate::clock::now_ms;

/// Whose edits the document is taking now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Segment {
    /// One author's edits on this node.
    Local(Arc<str>),
    /// Updates another node accepted (by these authors).
    Remote(Vec<String>),
}

/// What the segments of a batch described, waiting for the batch to be durable.
#[derive(Default)]
pub(super) struct Described {
    /// Feed events, with the authors of each.
    pub feed: Vec<(Vec<String>, Vec<Change>)>,
    /// Inbox entries, committed with the batch.
    pub notifications: Vec<NewNotification>,
    /// Webhook outbox entries, committed with the batch.
    pub hooks: Vec<NewHookEvent>,
}

impl Room {
    /// Called before a change is applied on behalf of `author` (on this node).
    pub(super) fn local_change(&mut self, author: &Arc<str>) {
        if self.typed.is_none() {
            return;
        }
        match &self.segment {
            Some(Segment::Local(open)) if open == author => {}
            _ => {
                self.close_segment();
                self.segment = Some(Segment::Local(Arc::clone(author)));
            }
        }
    }

    /// Called before an update from another node, written by `author`, is applied.
    pub(super) fn remote_change(&mut self, author: &str) {
        if self.typed.is_none() {
            return;
        }
        match &mut self.segment {
            Some(Segment::Remote(authors)) => {
                if !authors.iter().any(|a| a == author) {
                    authors.push(author.to_string());
                }
            }
            _ => {
                self.close_segment();
                self.segment = Some(Segment::Remote(vec![author.to_string()]));
            }
        }
    }

    /// Reads the document and describes the open segment's changes (one typed read).
    pub(super) fn close_segment(&mut self) {
        let Some(segment) = self.segment.take() else {
            return;
        };
        let Some((kind, before)) = &mut self.typed else {
            return;
        };
        let kind = *kind;
        let after = typed::read(kind, &self.doc).0;
        let changes = typed::changes(kind, before, &after);
        if changes.is_empty() {
            *before = after;
            return;
        }
        match &segment {
            Segment::Local(author) => {
                let found = crate::people::notices::derive(
                    &self.name,
                    before,
                    &after,
                    author,
                    self.authors.creator(),
                    now_ms(),
                );
                self.described.notifications.extend(found);
                let by = vec![author.to_string()];
                let hooks = self.app.webhooks.entries(&self.name, &by, &changes, None);
                self.described.hooks.extend(hooks);
                self.described.feed.push((by, changes));
            }
            // The node that accepted these updates published their events to the cluster's
            // feed, which every node's feed carries: describing them here too would repeat them.
            Segment::Remote(_) => {}
        }
        *before = after;
    }

    /// With `--webhook-document-updates`: the batch's own updates (not other nodes') as one
    /// `document.updated` event, with the state vector after them, queued before the typed
    /// events the same updates make.
    pub(super) fn describe_updates(&mut self) {
        if !self.app.webhooks.wants_document_updates() || self.pending.is_empty() {
            return;
        }
        let mut by: Vec<String> = Vec::new();
        for a in &self.pending {
            if !by.iter().any(|b| **b == *a.author) {
                by.push(a.author.to_string());
            }
        }
        let update = if self.pending.len() == 1 {
            self.pending[0].update.to_vec()
        } else {
            let updates: Vec<&[u8]> = self.pending.iter().map(|a| &a.update[..]).collect();
            match yrs::merge_updates_v1(&updates) {
                Ok(merged) => merged,
                Err(e) => {
                    tracing::error!(doc = %self.name, cause = %e, "merging a batch for a webhook failed");
                    return;
                }
            }
        };
        let state_vector = {
            use yrs::updates::encoder::Encode;
            use yrs::{ReadTxn, Transact};
            self.doc.transact().state_vector().encode_v1()
        };
        let yjs = crate::webhooks::DocumentUpdate {
            update: &update,
            state_vector: &state_vector,
        };
        let change = Change::new("document.updated");
        let hooks = self
            .app
            .webhooks
            .entries(&self.name, &by, &[change], Some(yjs));
        self.described.hooks.splice(0..0, hooks);
    }

    /// The batch is durable: its feed events go out.
    pub(super) fn publish_described(&mut self) {
        for (by, changes) in std::mem::take(&mut self.described.feed) {
            self.app.feed.publish(&self.name, by, changes);
        }
    }
}
