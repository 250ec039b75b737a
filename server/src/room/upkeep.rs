//! Looking after a document: loading and rebuilding it, describing its changes on the feed,
//! compacting its log, deleting it. Everything that reads or writes the store runs on a
//! blocking thread, never on the room's task.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};

use tandem_crdt_model::deleted::Deleted;
use tandem_crdt_model::typed::Change;
use tandem_storage::{CompactionReport, StoreError, StoredDoc};
use yrs::Doc;

use super::{Room, RoomCmd, RoomError, Tail};
use crate::app::App;
use crate::authorship::Authors;

/// A document as loaded from the store.
pub(super) struct Loaded {
    pub(super) doc: Doc,
    pub(super) deleted: Deleted,
    /// Its stored size (snapshot plus log).
    pub(super) bytes: u64,
    /// The last seq it includes (cluster mode tails the stream from there).
    pub(super) last_seq: u64,
    pub(super) authors: Authors,
    pub(super) tail: Tail,
}

/// Loads a document and who wrote it, on a blocking thread: reading and replaying a long log
/// is slow work.
pub(super) async fn load(app: &Arc<App>, name: &Arc<str>) -> Result<Loaded, RoomError> {
    let store = Arc::clone(&app.store);
    let key = Arc::clone(name);
    let load_err = |cause: String| RoomError::Load {
        doc: name.to_string(),
        cause,
    };
    tokio::task::spawn_blocking(move || {
        let stored = store
            .load(&key)
            .map_err(|e| e.to_string())?
            .unwrap_or_default();
        let (doc, bytes) = tandem_crdt_model::doc::build(stored.updates())?;
        let deleted = Deleted::track(&doc)?;
        let record = store.authorship(&key).map_err(|e| e.to_string())?;
        let mut authors = Authors::from_record(record);
        authors
            .derive_from_log(&*store, &key, &stored.tail)
            .map_err(|e| e.to_string())?;
        Ok(Loaded {
            doc,
            deleted,
            bytes,
            last_seq: last_seq_of(&stored),
            authors,
            tail: tail_of(&stored),
        })
    })
    .await
    .map_err(|e| load_err(e.to_string()))?
    .map_err(load_err)
}

fn last_seq_of(stored: &StoredDoc) -> u64 {
    stored.tail.last().map_or(stored.snapshot_seq, |r| r.seq)
}

fn tail_of(stored: &StoredDoc) -> Tail {
    Tail {
        updates: u64::try_from(stored.tail.len()).unwrap_or(u64::MAX),
        bytes: u64::try_from(stored.tail_bytes()).unwrap_or(u64::MAX),
    }
}

impl Room {
    /// Replaces the in-memory document with the stored one.
    pub(super) async fn reload_doc(&mut self) -> Result<(), String> {
        let loaded = load(&self.app, &self.name)
            .await
            .map_err(|e| e.to_string())?;
        self.doc = loaded.doc;
        self.deleted = loaded.deleted;
        self.doc_bytes = loaded.bytes;
        self.tail = loaded.tail;
        self.authors = loaded.authors;
        if let Some(cluster) = &self.app.cluster {
            cluster.reset_tail(&self.name, loaded.last_seq);
        }
        Ok(())
    }

    /// Starts a background compaction once the log since the last one passes the thresholds.
    pub(super) fn maybe_compact(&mut self) {
        let thresholds = &self.app.config.store;
        let due = self.tail.updates >= thresholds.compact_after_updates
            || self.tail.bytes >= thresholds.compact_after_bytes;
        if self.compacting || !due {
            return;
        }
        let Some(inbox) = self.inbox_weak.upgrade() else {
            return;
        };
        self.compacting = true;
        self.bytes_since_compaction_start = 0;
        self.tail = Tail::default();
        let store = Arc::clone(&self.app.store);
        let name = Arc::clone(&self.name);
        let lock = self.app.rooms.compaction_lock(&name);
        // Shutdown flushes after this compaction, not in its middle.
        let tracked = self.app.tasks.track();
        tokio::spawn(async move {
            let _tracked = tracked;
            let result = tokio::task::spawn_blocking(move || {
                // One compaction per document at a time, even across a room unload and reload.
                let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
                store.compact(&name)
            })
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(format!("compaction task failed: {e}"))));
            let _ = inbox.send(RoomCmd::Compacted(result)).await;
        });
    }

    pub(super) fn compacted(&mut self, result: Result<CompactionReport, StoreError>) {
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

    /// Deletes the document from the store (off the room's task, never racing a compaction,
    /// which would write the snapshot back) and says so on the feed and to the other nodes.
    pub(super) async fn delete(&mut self, by: &str) -> Result<bool, String> {
        let store = Arc::clone(&self.app.store);
        let name = Arc::clone(&self.name);
        let lock = self.app.rooms.compaction_lock(&name);
        let existed = tokio::task::spawn_blocking(move || {
            let _held = lock.lock().unwrap_or_else(PoisonError::into_inner);
            store.delete(&name)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
        // Its webhook event is durable with the deletion (the flush after it), before the
        // caller hears of it.
        let by = vec![by.to_string()];
        let deleted = vec![Change::new("document.deleted")];
        let hooks = match existed {
            true => self.app.webhooks.entries(&self.name, &by, &deleted, None),
            false => Vec::new(),
        };
        let woken: Vec<String> = hooks.iter().map(|h| h.endpoint.clone()).collect();
        self.app
            .durability
            .commit(Vec::new(), Vec::new(), hooks)
            .await?;
        self.app.webhooks.wake(&woken);
        if let Some(cluster) = &self.app.cluster {
            cluster.publish_deleted(&self.name);
        }
        if existed {
            self.app.feed.publish(&self.name, by, deleted);
        }
        Ok(existed)
    }
}
