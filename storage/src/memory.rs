//! An in-memory [`DocStore`]: nothing survives the process. For fuzzing and tests that exercise
//! the server's logic at speed; it keeps the same contract as [`crate::SledStore`] (ordering,
//! compaction that keeps racing appends, history window) minus durability.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::directory::{Directory, People, Person};
use crate::inbox::{Inbox, InboxPage, InboxQuery, Inboxes, MarkRead, NewNotification};
use crate::outbox::{HookEvent, NewHookEvent, Outbox, OutboxCounts, Outboxes};
use crate::{
    merge, Authorship, Binding, CompactionReport, DocInfo, DocStore, HistoryEntry, StoreConfig,
    StoreError, StoredDoc, UpdateRecord,
};

#[derive(Default)]
struct Doc {
    snapshot: Option<(u64, Vec<u8>)>,
    log: BTreeMap<u64, UpdateRecord>,
    updated_ms: u64,
    creator: Option<String>,
    bindings: BTreeMap<(u64, u32), String>,
}

pub struct MemStore {
    docs: Mutex<HashMap<String, Doc>>,
    next_seq: Mutex<u64>,
    inboxes: Mutex<Inboxes>,
    outboxes: Mutex<Outboxes>,
    people: Mutex<People>,
    config: StoreConfig,
}

impl MemStore {
    pub fn new(config: StoreConfig) -> Self {
        MemStore {
            docs: Mutex::default(),
            next_seq: Mutex::new(1),
            inboxes: Mutex::default(),
            outboxes: Mutex::default(),
            people: Mutex::default(),
            config,
        }
    }
}

impl Inbox for MemStore {
    fn deliver(&self, notifications: &[NewNotification]) -> Result<Vec<u64>, StoreError> {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inboxes.deliver(notifications, self.config.inbox_len_max))
    }

    fn inbox(&self, recipient: &str, query: &InboxQuery) -> Result<InboxPage, StoreError> {
        let inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inboxes.inbox(recipient, query))
    }

    fn mark_read(&self, recipient: &str, which: &MarkRead) -> Result<u64, StoreError> {
        let mut inboxes = self.inboxes.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(inboxes.mark_read(recipient, which))
    }
}

impl MemStore {
    fn outboxes(&self) -> std::sync::MutexGuard<'_, Outboxes> {
        self.outboxes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn outbox_len_max(&self) -> usize {
        usize::try_from(self.config.outbox_len_max).unwrap_or(usize::MAX)
    }
}

impl Outbox for MemStore {
    fn enqueue(&self, events: &[NewHookEvent]) -> Result<Vec<String>, StoreError> {
        let len_max = self.outbox_len_max();
        Ok(self.outboxes().enqueue(events, len_max))
    }
    fn pending(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        Ok(self.outboxes().pending(endpoint, limit))
    }
    fn remove_delivered(&self, endpoint: &str, id: u64) -> Result<(), StoreError> {
        self.outboxes().remove_delivered(endpoint, id);
        Ok(())
    }
    fn park(&self, endpoint: &str, id: u64, reason: &str) -> Result<bool, StoreError> {
        let len_max = self.outbox_len_max();
        Ok(self.outboxes().park(endpoint, id, reason, len_max))
    }
    fn dead(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        Ok(self.outboxes().dead(endpoint, limit))
    }
    fn requeue_dead(&self, endpoint: &str) -> Result<u64, StoreError> {
        let len_max = self.outbox_len_max();
        Ok(self.outboxes().requeue_dead(endpoint, len_max))
    }
    fn outbox_counts(&self, endpoint: &str) -> Result<OutboxCounts, StoreError> {
        Ok(self.outboxes().counts(endpoint))
    }
}

impl Directory for MemStore {
    fn remember(&self, sub: &str, name: &str) -> Result<bool, StoreError> {
        let mut people = self.people.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(people.remember(sub, name))
    }

    fn people(&self, after: &str, limit: usize) -> Result<Vec<Person>, StoreError> {
        let people = self.people.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(people.people(after, limit))
    }
}

impl DocStore for MemStore {
    fn append(
        &self,
        doc: &str,
        author: &str,
        time_ms: u64,
        update: &[u8],
    ) -> Result<u64, StoreError> {
        let seq = {
            let mut next = self.next_seq.lock().unwrap_or_else(PoisonError::into_inner);
            let seq = *next;
            *next += 1;
            seq
        };
        let mut docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        let d = docs.entry(doc.to_string()).or_default();
        d.updated_ms = time_ms;
        d.creator.get_or_insert_with(|| author.to_string());
        d.log.insert(
            seq,
            UpdateRecord {
                seq,
                author: author.to_string(),
                time_ms,
                update: update.to_vec(),
            },
        );
        Ok(seq)
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn load(&self, doc: &str) -> Result<Option<StoredDoc>, StoreError> {
        let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(docs.get(doc).map(|d| {
            let snapshot_seq = d.snapshot.as_ref().map_or(0, |(s, _)| *s);
            StoredDoc {
                snapshot: d.snapshot.as_ref().map(|(_, s)| s.clone()),
                snapshot_seq,
                tail: d
                    .log
                    .range(snapshot_seq + 1..)
                    .map(|(_, r)| r.clone())
                    .collect(),
            }
        }))
    }

    fn needs_compaction(&self, doc: &str) -> Result<bool, StoreError> {
        let stored = self.load(doc)?.unwrap_or_default();
        Ok(
            crate::len_u64(stored.tail.len()) >= self.config.compact_after_updates
                || crate::len_u64(stored.tail_bytes()) >= self.config.compact_after_bytes,
        )
    }

    fn compact(&self, doc: &str) -> Result<CompactionReport, StoreError> {
        let Some(stored) = self.load(doc)? else {
            return Ok(CompactionReport {
                merged_updates: 0,
                snapshot_bytes: 0,
                snapshot_seq: 0,
                removed_log_entries: 0,
            });
        };
        let last = stored.tail.last().map_or(stored.snapshot_seq, |r| r.seq);
        let state = merge(doc, stored.updates())?;
        let mut docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(d) = docs.get_mut(doc) {
            d.snapshot = Some((last, state.clone()));
        }
        Ok(CompactionReport {
            merged_updates: crate::len_u64(stored.tail.len()),
            snapshot_bytes: crate::len_u64(state.len()),
            snapshot_seq: last,
            removed_log_entries: 0,
        })
    }

    fn list(&self) -> Result<Vec<DocInfo>, StoreError> {
        let names: Vec<String> = self
            .docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        names
            .iter()
            .filter_map(|n| self.info(n).transpose())
            .collect()
    }

    fn info(&self, doc: &str) -> Result<Option<DocInfo>, StoreError> {
        let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(docs.get(doc).map(|d| {
            let snapshot_seq = d.snapshot.as_ref().map_or(0, |(s, _)| *s);
            let tail: Vec<_> = d.log.range(snapshot_seq + 1..).map(|(_, r)| r).collect();
            DocInfo {
                name: doc.to_string(),
                log_len: crate::len_u64(tail.len()),
                log_bytes: tail.iter().map(|r| crate::len_u64(r.update.len())).sum(),
                snapshot_bytes: d
                    .snapshot
                    .as_ref()
                    .map_or(0, |(_, s)| crate::len_u64(s.len())),
                last_seq: d.log.keys().next_back().copied().unwrap_or(snapshot_seq),
                updated_ms: d.updated_ms,
            }
        }))
    }

    fn delete(&self, doc: &str) -> Result<bool, StoreError> {
        Ok(self
            .docs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(doc)
            .is_some())
    }

    fn history(
        &self,
        doc: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(docs.get(doc).map_or_else(Vec::new, |d| {
            d.log
                .range(after.saturating_add(1)..)
                .take(limit)
                .map(|(_, r)| HistoryEntry {
                    seq: r.seq,
                    author: r.author.clone(),
                    time_ms: r.time_ms,
                    size: crate::len_u64(r.update.len()),
                })
                .collect()
        }))
    }

    fn state_at(&self, doc: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let updates: Vec<Vec<u8>> = {
            let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(d) = docs.get(doc) else {
                return Ok(None);
            };
            if !d.log.contains_key(&seq) {
                return Ok(None);
            }
            d.log.range(..=seq).map(|(_, r)| r.update.clone()).collect()
        };
        merge(doc, updates.iter().map(Vec::as_slice)).map(Some)
    }

    fn bind(&self, doc: &str, client: u64, start: u32, author: &str) -> Result<String, StoreError> {
        let mut docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        let d = docs.entry(doc.to_string()).or_default();
        Ok(d.bindings
            .entry((client, start))
            .or_insert_with(|| author.to_string())
            .clone())
    }

    fn authorship(&self, doc: &str) -> Result<Authorship, StoreError> {
        let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(docs
            .get(doc)
            .map_or_else(Authorship::default, |d| Authorship {
                creator: d.creator.clone(),
                bindings: d
                    .bindings
                    .iter()
                    .map(|(&(client, start), author)| Binding {
                        client,
                        start,
                        author: author.clone(),
                    })
                    .collect(),
            }))
    }
}
