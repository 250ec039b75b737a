//! Durable per-document Yjs update logs.
//!
//! - [`DocStore`]: what the server needs from storage: append an update with its author and
//!   time, flush (the durability barrier), load (snapshot + log tail), compact, list, delete,
//!   history and past states.
//! - [`SledStore`]: the embedded implementation on `sled` (its layout: [`sled_store`]).
//! - [`authorship`]: who wrote a document (its creator, and the author each client ID belongs to).
//! - [`directory`]: the display name each `sub` last signed in with ([`Directory`]).
//! - [`inbox`]: each person's bounded inbox of notifications ([`Inbox`], half of every store).
//! - [`outbox`]: each webhook endpoint's bounded outbox of events and its dead ones ([`Outbox`]).
//! - [`record`]: the checksummed record format every stored value uses.
//! - [`memory::MemStore`]: the same contract in memory, for fuzzing and fast tests.
//! - [`fault`]: a wrapper that fails the k-th append or flush, for tests of error paths.
//!
//! Architecture invariant: this crate stores bytes. It reads a Yjs update only to compact (and
//! to rebuild a past state), and it never holds a document in memory beyond those calls.

pub mod authorship;
pub mod directory;
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;
pub mod inbox;
pub mod memory;
pub mod outbox;
pub mod record;
pub mod redis_store;
#[cfg(feature = "redis-testing")]
pub mod redis_testing;
pub mod sled_store;

pub use authorship::{Authorship, Binding};
pub use directory::{Directory, Person};
pub use inbox::{
    Inbox, InboxPage, InboxQuery, InboxRange, MarkRead, NewNotification, Notification,
};
pub use outbox::{HookEvent, NewHookEvent, Outbox, OutboxCounts};
pub use sled_store::SledStore;

use std::panic::AssertUnwindSafe;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// One stored update with who made it and when. `seq` is unique and increasing within a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRecord {
    pub seq: u64,
    pub author: String,
    pub time_ms: u64,
    pub update: Vec<u8>,
}

/// What `load` returns: the compacted snapshot and the log tail after it.
#[derive(Debug, Clone, Default)]
pub struct StoredDoc {
    pub snapshot: Option<Vec<u8>>,
    pub snapshot_seq: u64,
    pub tail: Vec<UpdateRecord>,
}

impl StoredDoc {
    /// The snapshot followed by the tail's updates, in order: what a room applies on load.
    pub fn updates(&self) -> impl Iterator<Item = &[u8]> {
        self.snapshot
            .iter()
            .map(Vec::as_slice)
            .chain(self.tail.iter().map(|r| r.update.as_slice()))
    }

    pub fn tail_bytes(&self) -> usize {
        self.tail.iter().map(|r| r.update.len()).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocInfo {
    pub name: String,
    pub log_len: u64,
    pub log_bytes: u64,
    pub snapshot_bytes: u64,
    pub last_seq: u64,
    pub updated_ms: u64,
}

/// One entry of a document's history (metadata only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub seq: u64,
    pub author: String,
    pub time_ms: u64,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionReport {
    pub merged_updates: u64,
    pub snapshot_bytes: u64,
    pub snapshot_seq: u64,
    pub removed_log_entries: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O failed: {0}")]
    Io(String),
    #[error("document {doc} is corrupt: {detail}")]
    Corrupt { doc: String, detail: String },
    #[error("stored update of {doc} does not decode: {detail}")]
    BadUpdate { doc: String, detail: String },
    #[error("injected fault: {0}")]
    Injected(String),
    /// Another process has the store open (sled holds an exclusive lock on it while open).
    #[error("another process holds the store at {0}")]
    Locked(std::path::PathBuf),
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Io(e.to_string())
    }
}

/// Tunables (the server fills them from its config).
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Compact when the log tail holds this many updates. A few hundred keystroke-sized updates
    /// replay in well under a millisecond, and compacting more often costs a full encode each time.
    pub compact_after_updates: u64,
    /// ... or this many bytes: a few large pastes should not wait for 500 updates.
    pub compact_after_bytes: u64,
    /// Merged updates kept in the log as history (per document, newest first). Each kept update
    /// costs its own size plus about 30 bytes; 10,000 keystrokes are about 0.5 MB. Older history
    /// is folded into a base state, so versions before the window can no longer be shown.
    pub history_keep_updates: u64,
    /// Notifications kept per person, newest; older ones are dropped as new ones arrive. About
    /// 150 bytes each, so 1,000 are ~150 KB per person: a week away from a busy workspace.
    pub inbox_len_max: u64,
    /// Webhook events kept waiting per endpoint (and as many dead ones); past it the oldest
    /// waiting one is parked as dead. An event is about 400 bytes, so 10,000 are ~4 MB per
    /// endpoint: at a busy workspace's few events a second, a receiver down for an hour.
    pub outbox_len_max: u64,
    /// Entries kept in the cluster-wide change stream (Redis only). It is
    /// how far a node may fall behind before it misses a pointer; a missed one is caught up at
    /// the document's next change. An entry is about 100 bytes in Redis, so 100,000 are ~10 MB:
    /// 100 s of a cluster taking 1,000 updates a second.
    pub changes_len_max: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compact_after_updates: 500,
            compact_after_bytes: 1024 * 1024,
            history_keep_updates: 10_000,
            inbox_len_max: 1_000,
            outbox_len_max: 10_000,
            changes_len_max: 100_000,
        }
    }
}

/// A durable per-document update log. Thread-safe and shared as `Arc<dyn DocStore>`; methods
/// block (the server calls the slow ones from `spawn_blocking`).
pub trait DocStore: Inbox + Outbox + Directory + Send + Sync + 'static {
    /// Appends one update; returns its seq. Durable after the next successful `flush`. The
    /// author of a document's first update is recorded as its creator ([`Authorship`]).
    fn append(
        &self,
        doc: &str,
        author: &str,
        time_ms: u64,
        update: &[u8],
    ) -> Result<u64, StoreError>;
    /// Makes every append that returned before this call durable. One flush serves all documents.
    fn flush(&self) -> Result<(), StoreError>;
    /// Whether the store works now, asked after a failure to learn that it recovered (so the
    /// server's `/health` turns ok again). Cheap and side-effect free: a flush by default (what
    /// failed on a local disk), a `PING` where flushing does not touch the backend.
    fn probe(&self) -> Result<(), StoreError> {
        self.flush()
    }
    /// Snapshot + tail; `Ok(None)` if the document was never written (or was deleted).
    fn load(&self, doc: &str) -> Result<Option<StoredDoc>, StoreError>;
    /// True when the tail passed the configured thresholds (reads counters only).
    fn needs_compaction(&self, doc: &str) -> Result<bool, StoreError>;
    /// Merges snapshot + log into a new snapshot; appends racing with it are kept.
    fn compact(&self, doc: &str) -> Result<CompactionReport, StoreError>;
    fn list(&self) -> Result<Vec<DocInfo>, StoreError>;
    /// Documents whose names start with `prefix` and sort after `after`, in name order, at most
    /// `limit` of them (a page of a listing).
    fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<DocInfo>, StoreError> {
        let mut all: Vec<DocInfo> = self
            .list()?
            .into_iter()
            .filter(|d| d.name.starts_with(prefix) && d.name.as_str() > after)
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all.truncate(limit);
        Ok(all)
    }
    fn info(&self, doc: &str) -> Result<Option<DocInfo>, StoreError>;
    /// Removes the document entirely; true if it existed.
    fn delete(&self, doc: &str) -> Result<bool, StoreError>;
    /// History metadata, ascending seq, entries with seq > `after`, at most `limit`.
    fn history(&self, doc: &str, after: u64, limit: usize)
        -> Result<Vec<HistoryEntry>, StoreError>;
    /// The document as of `seq` (inclusive) as one update, if the history reaching it is kept.
    fn state_at(&self, doc: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError>;
    /// Binds clocks `start..` of `client` to `author` unless that `(client, start)` is bound
    /// already (the first binding wins, across nodes too); returns the author it is bound to
    /// now. Durable after the next successful `flush`, like an append; deleted with the document.
    fn bind(&self, doc: &str, client: u64, start: u32, author: &str) -> Result<String, StoreError>;
    /// The document's creator and bindings.
    fn authorship(&self, doc: &str) -> Result<Authorship, StoreError>;
}

/// Applies updates to a fresh document and encodes its state. Guarded: a `yrs` error or panic
/// is an error, never a crash.
fn merge<'a>(doc: &str, updates: impl Iterator<Item = &'a [u8]>) -> Result<Vec<u8>, StoreError> {
    let bad = |detail: String| StoreError::BadUpdate {
        doc: doc.to_string(),
        detail,
    };
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let ydoc = Doc::new();
        for bytes in updates {
            let update = Update::decode_v1(bytes).map_err(|e| e.to_string())?;
            ydoc.transact_mut()
                .apply_update(update)
                .map_err(|e| e.to_string())?;
        }
        let state = ydoc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        // Pair assertion: a snapshot that would not load is never written (fuzzing found
        // updates after which yrs encodes bytes it cannot decode).
        Update::decode_v1(&state).map_err(|e| format!("merged state does not decode: {e}"))?;
        Ok::<_, String>(state)
    }));
    match result {
        Ok(Ok(state)) => Ok(state),
        Ok(Err(e)) => Err(bad(e)),
        Err(_) => Err(bad("merging panicked".into())),
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
