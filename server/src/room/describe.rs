//! Describing what changed in a typed document, for the change feed and for notifications.
//!
//! A batch may hold edits of several people. The room reads the document before each run of one
//! person's edits (a *segment*), so each typed change is told in the name of the one who made it,
//! and a person is never notified of their own change because someone else's landed in the same
//! batch. Updates from other nodes form segments of their own: the feed describes them, but their
//! notifications were derived, and delivered, by the node that accepted them.
//!
//! Segments close before the group commit, so a batch's notifications go to the store in the
//! same commit as its updates, and its feed events are published once that commit is durable.

use std::sync::Arc;

use tandem_crdt_model::typed::{self, Change};
use tandem_storage::NewNotification;

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
        let by = match &segment {
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
                vec![author.to_string()]
            }
            Segment::Remote(authors) => authors.clone(),
        };
        self.described.feed.push((by, changes));
        *before = after;
    }

    /// The batch is durable: its feed events go out.
    pub(super) fn publish_described(&mut self) {
        for (by, changes) in std::mem::take(&mut self.described.feed) {
            self.app.feed.publish(&self.name, by, changes);
        }
    }
}
