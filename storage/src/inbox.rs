//! Each person's inbox of notifications: durable like the update log (written before the flush
//! that makes the change behind them durable), bounded per person (the oldest go first), read
//! newest first in pages, and marked read.
//!
//! Ids only grow within an inbox, in the order notifications land, across restarts too (sled
//! takes them from one counter for the store, Redis from one per inbox), so an id
//! doubles as the resume point of a notification stream (`Last-Event-ID`).

use std::collections::{HashMap, VecDeque};

use crate::record::{self, put_str16, put_u64, Reader, RecordError};
use crate::StoreError;

/// A notification to deliver; the store stamps it with an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    pub recipient: String,
    /// `assigned`, `mentioned`, `replied`, `commented`, `status_changed`.
    pub kind: String,
    pub doc: String,
    /// The reply or comment it is about, if any.
    pub item: Option<String>,
    /// The `sub` whose change it reports.
    pub by: String,
    pub at_ms: u64,
    /// The document's title then.
    pub title: String,
    /// For a status change: the new status.
    pub status: Option<String>,
}

/// A delivered notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: u64,
    pub kind: String,
    pub doc: String,
    pub item: Option<String>,
    pub by: String,
    pub at_ms: u64,
    pub title: String,
    pub status: Option<String>,
    pub read: bool,
}

/// Which part of an inbox to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxRange {
    /// Newest first, ids below `before` (all when `None`): a page of the list.
    Older { before: Option<u64> },
    /// Oldest first, ids above `after`: what a resuming stream missed.
    Newer { after: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InboxQuery {
    pub range: InboxRange,
    pub unread_only: bool,
    pub limit: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxPage {
    pub notifications: Vec<Notification>,
    /// Unread notifications in the whole inbox.
    pub unread: u64,
}

/// Which notifications to mark read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MarkRead {
    Ids(Vec<u64>),
    All,
}

/// The inbox half of a store (every [`crate::DocStore`] is one).
pub trait Inbox: Send + Sync {
    /// Adds notifications to their recipients' inboxes, each inbox keeping at most the store's
    /// `inbox_len_max` (oldest dropped first); returns their ids, in order. Durable after the
    /// next successful `flush`, like an append.
    fn deliver(&self, notifications: &[NewNotification]) -> Result<Vec<u64>, StoreError>;
    /// A page of `recipient`'s inbox and its unread count.
    fn inbox(&self, recipient: &str, query: &InboxQuery) -> Result<InboxPage, StoreError>;
    /// Marks notifications of `recipient` read (an id names one of its own: ids are per inbox
    /// in Redis); returns the unread count after.
    fn mark_read(&self, recipient: &str, which: &MarkRead) -> Result<u64, StoreError>;
}

impl Notification {
    pub(crate) fn new(id: u64, n: &NewNotification) -> Notification {
        Notification {
            id,
            kind: n.kind.clone(),
            doc: n.doc.clone(),
            item: n.item.clone(),
            by: n.by.clone(),
            at_ms: n.at_ms,
            title: n.title.clone(),
            status: n.status.clone(),
            read: false,
        }
    }

    /// The stored form (id and recipient live in the key).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(64 + self.title.len() + self.doc.len());
        put_u64(&mut body, self.at_ms);
        put_u64(&mut body, u64::from(self.read));
        for s in [&self.kind, &self.doc, &self.by, &self.title] {
            put_str16(&mut body, s);
        }
        for s in [&self.item, &self.status] {
            put_str16(&mut body, s.as_deref().unwrap_or_default());
        }
        record::seal(&body)
    }

    pub(crate) fn decode(id: u64, raw: &[u8]) -> Result<Notification, RecordError> {
        let mut r = Reader::new(record::open(raw)?);
        let at_ms = r.u64()?;
        let read = r.u64()? != 0;
        let mut text = || -> Result<String, RecordError> {
            Ok(String::from_utf8_lossy(r.bytes16()?).into_owned())
        };
        let (kind, doc, by, title) = (text()?, text()?, text()?, text()?);
        let optional = |s: String| (!s.is_empty()).then_some(s);
        let (item, status) = (optional(text()?), optional(text()?));
        r.end()?;
        Ok(Notification {
            id,
            kind,
            doc,
            item,
            by,
            at_ms,
            title,
            status,
            read,
        })
    }
}

impl InboxQuery {
    /// Whether `n` belongs in the answer (range and unread filter; not the limit).
    pub(crate) fn admits(&self, n: &Notification) -> bool {
        let in_range = match self.range {
            InboxRange::Older { before } => before.is_none_or(|b| n.id < b),
            InboxRange::Newer { after } => n.id > after,
        };
        in_range && (!self.unread_only || !n.read)
    }

    /// Picks the page from one inbox listed oldest first.
    pub(crate) fn page<'a>(
        &self,
        oldest_first: impl DoubleEndedIterator<Item = &'a Notification>,
    ) -> Vec<Notification> {
        let admitted = |n: &&Notification| self.admits(n);
        match self.range {
            InboxRange::Older { .. } => oldest_first
                .rev()
                .filter(admitted)
                .take(self.limit)
                .cloned()
                .collect(),
            InboxRange::Newer { .. } => oldest_first
                .filter(admitted)
                .take(self.limit)
                .cloned()
                .collect(),
        }
    }
}

/// Inboxes held in memory (the memory store's).
#[derive(Default)]
pub(crate) struct Inboxes {
    next_id: u64,
    by_recipient: HashMap<String, VecDeque<Notification>>,
}

impl Inboxes {
    pub(crate) fn deliver(&mut self, notifications: &[NewNotification], len_max: u64) -> Vec<u64> {
        let len_max = usize::try_from(len_max).unwrap_or(usize::MAX);
        notifications
            .iter()
            .map(|n| {
                self.next_id += 1;
                let inbox = self.by_recipient.entry(n.recipient.clone()).or_default();
                inbox.push_back(Notification::new(self.next_id, n));
                while inbox.len() > len_max {
                    inbox.pop_front();
                }
                self.next_id
            })
            .collect()
    }

    pub(crate) fn inbox(&self, recipient: &str, query: &InboxQuery) -> InboxPage {
        let Some(inbox) = self.by_recipient.get(recipient) else {
            return InboxPage::default();
        };
        InboxPage {
            notifications: query.page(inbox.iter()),
            unread: unread(inbox.iter()),
        }
    }

    pub(crate) fn mark_read(&mut self, recipient: &str, which: &MarkRead) -> u64 {
        let Some(inbox) = self.by_recipient.get_mut(recipient) else {
            return 0;
        };
        for n in inbox.iter_mut() {
            if which.covers(n.id) {
                n.read = true;
            }
        }
        unread(inbox.iter())
    }
}

impl MarkRead {
    pub(crate) fn covers(&self, id: u64) -> bool {
        match self {
            MarkRead::All => true,
            MarkRead::Ids(ids) => ids.contains(&id),
        }
    }
}

pub(crate) fn unread<'a>(inbox: impl Iterator<Item = &'a Notification>) -> u64 {
    inbox.filter(|n| !n.read).count() as u64
}
