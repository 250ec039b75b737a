//! Fault injection for tests: a [`DocStore`] wrapper whose k-th append or flush fails, whose
//! k-th append panics, or whose flushes hang until released.
//!
//! Compiled only for tests: this crate's own, and others' through the `fault-injection` feature
//! (the server's integration tests enable it as a dev-dependency).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::directory::{Directory, Person};
use crate::inbox::{Inbox, InboxPage, InboxQuery, MarkRead, NewNotification};
use crate::outbox::{HookEvent, NewHookEvent, Outbox, OutboxCounts};
use crate::{CompactionReport, DocInfo, DocStore, HistoryEntry, StoreError, StoredDoc};

pub struct FaultyStore<S> {
    inner: S,
    appends: AtomicU64,
    flushes: AtomicU64,
    fail_append_at: AtomicU64,
    panic_append_at: AtomicU64,
    fail_flush_at: AtomicU64,
    flushes_held: AtomicBool,
}

impl<S: DocStore> FaultyStore<S> {
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            appends: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            fail_append_at: AtomicU64::new(0),
            panic_append_at: AtomicU64::new(0),
            fail_flush_at: AtomicU64::new(0),
            flushes_held: AtomicBool::new(false),
        }
    }

    /// The k-th append from now on (counted from 1 since creation) fails; 0 disables.
    pub fn fail_append_at(&self, k: u64) {
        self.fail_append_at.store(k, Ordering::SeqCst);
    }

    /// The k-th append (counted like [`FaultyStore::fail_append_at`]) panics, as a bug in a
    /// store would; 0 disables.
    pub fn panic_append_at(&self, k: u64) {
        self.panic_append_at.store(k, Ordering::SeqCst);
    }

    /// The k-th flush (counted from 1 since creation) fails; 0 disables.
    pub fn fail_flush_at(&self, k: u64) {
        self.fail_flush_at.store(k, Ordering::SeqCst);
    }

    /// While held, every flush waits (as on a store that accepts but never answers).
    pub fn hold_flushes(&self, held: bool) {
        self.flushes_held.store(held, Ordering::SeqCst);
    }

    /// Flushes begun since creation, finished or not.
    pub fn flushes_begun(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }
}

fn hit(counter: &AtomicU64, target: &AtomicU64) -> bool {
    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
    n == target.load(Ordering::SeqCst)
}

/// Deliveries fail with the flush they precede; the inbox itself is passed through.
impl<S: DocStore> Inbox for FaultyStore<S> {
    fn deliver(&self, notifications: &[NewNotification]) -> Result<Vec<u64>, StoreError> {
        self.inner.deliver(notifications)
    }

    fn inbox(&self, recipient: &str, query: &InboxQuery) -> Result<InboxPage, StoreError> {
        self.inner.inbox(recipient, query)
    }

    fn mark_read(&self, recipient: &str, which: &MarkRead) -> Result<u64, StoreError> {
        self.inner.mark_read(recipient, which)
    }
}

impl<S: DocStore> Outbox for FaultyStore<S> {
    fn enqueue(&self, events: &[NewHookEvent]) -> Result<Vec<String>, StoreError> {
        self.inner.enqueue(events)
    }
    fn pending(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        self.inner.pending(endpoint, limit)
    }
    fn remove_delivered(&self, endpoint: &str, id: u64) -> Result<(), StoreError> {
        self.inner.remove_delivered(endpoint, id)
    }
    fn park(&self, endpoint: &str, id: u64, reason: &str) -> Result<bool, StoreError> {
        self.inner.park(endpoint, id, reason)
    }
    fn dead(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        self.inner.dead(endpoint, limit)
    }
    fn requeue_dead(&self, endpoint: &str) -> Result<u64, StoreError> {
        self.inner.requeue_dead(endpoint)
    }
    fn outbox_counts(&self, endpoint: &str) -> Result<OutboxCounts, StoreError> {
        self.inner.outbox_counts(endpoint)
    }
    fn outbox_lease(&self, endpoint: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        self.inner.outbox_lease(endpoint, ttl_ms)
    }
}

impl<S: DocStore> Directory for FaultyStore<S> {
    fn remember(&self, sub: &str, name: &str) -> Result<bool, StoreError> {
        self.inner.remember(sub, name)
    }

    fn people(&self, after: &str, limit: usize) -> Result<Vec<Person>, StoreError> {
        self.inner.people(after, limit)
    }
}

impl<S: DocStore> DocStore for FaultyStore<S> {
    fn append(
        &self,
        doc: &str,
        author: &str,
        time_ms: u64,
        update: &[u8],
    ) -> Result<u64, StoreError> {
        let n = self.appends.fetch_add(1, Ordering::SeqCst) + 1;
        assert!(
            n != self.panic_append_at.load(Ordering::SeqCst),
            "injected panic: append to {doc}"
        );
        if n == self.fail_append_at.load(Ordering::SeqCst) {
            return Err(StoreError::Injected(format!("append to {doc}")));
        }
        self.inner.append(doc, author, time_ms, update)
    }
    fn flush(&self) -> Result<(), StoreError> {
        if hit(&self.flushes, &self.fail_flush_at) {
            return Err(StoreError::Injected("flush".into()));
        }
        while self.flushes_held.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.inner.flush()
    }
    fn load(&self, doc: &str) -> Result<Option<StoredDoc>, StoreError> {
        self.inner.load(doc)
    }
    fn needs_compaction(&self, doc: &str) -> Result<bool, StoreError> {
        self.inner.needs_compaction(doc)
    }
    fn compact(&self, doc: &str) -> Result<CompactionReport, StoreError> {
        self.inner.compact(doc)
    }
    fn list(&self) -> Result<Vec<DocInfo>, StoreError> {
        self.inner.list()
    }
    fn info(&self, doc: &str) -> Result<Option<DocInfo>, StoreError> {
        self.inner.info(doc)
    }
    fn delete(&self, doc: &str) -> Result<bool, StoreError> {
        self.inner.delete(doc)
    }
    fn history(
        &self,
        doc: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        self.inner.history(doc, after, limit)
    }
    fn state_at(&self, doc: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.state_at(doc, seq)
    }
    fn bind(&self, doc: &str, client: u64, start: u32, author: &str) -> Result<String, StoreError> {
        self.inner.bind(doc, client, start, author)
    }
    fn authorship(&self, doc: &str) -> Result<crate::Authorship, StoreError> {
        self.inner.authorship(doc)
    }
}
