//! Durable per-document Yjs update logs.
//!
//! - [`DocStore`]: what the server needs from storage: append an update with its author and
//!   time, flush (the durability barrier), load (snapshot + log tail), compact, list, delete,
//!   history and past states.
//! - [`SledStore`]: the embedded implementation on `sled`.
//! - [`record`]: the checksummed record format every stored value uses.
//! - [`memory::MemStore`]: the same contract in memory, for fuzzing and fast tests.
//! - [`fault`]: a wrapper that fails the k-th append or flush, for tests of error paths.
//!
//! Architecture invariant: this crate stores bytes. It reads a Yjs update only to compact (and
//! to rebuild a past state), and it never holds a document in memory beyond those calls.
//!
//! ## Layout in sled
//! | tree | key | value (a [`record`]) |
//! |---|---|---|
//! | `log` | doc name, `0x00`, seq (u64 big-endian) | time ms, author, update |
//! | `snapshot` | doc name | seq it covers, merged state (a Yjs v1 update) |
//! | `base` | doc name | seq it covers, state before the oldest kept log entry |
//! | `meta` | doc name | tail count, tail bytes, last seq, updated ms, snapshot bytes |
//!
//! Doc names never contain `0x00` (the server allows only `[A-Za-z0-9._~/-]`), so the log
//! prefix of `notes/1` never matches `notes/10`. `meta` is advisory (counters for compaction and
//! listings); loading reads only `snapshot` and `log`, so a crash between two writes can skew a
//! counter but never a document.

#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;
pub mod memory;
pub mod record;
pub mod redis_store;

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use record::{put_str16, put_u64, Reader, RecordError};
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
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            compact_after_updates: 500,
            compact_after_bytes: 1024 * 1024,
            history_keep_updates: 10_000,
        }
    }
}

/// A durable per-document update log. Thread-safe and shared as `Arc<dyn DocStore>`; methods
/// block (the server calls the slow ones from `spawn_blocking`).
pub trait DocStore: Send + Sync + 'static {
    /// Appends one update; returns its seq. Durable after the next successful `flush`.
    fn append(
        &self,
        doc: &str,
        author: &str,
        time_ms: u64,
        update: &[u8],
    ) -> Result<u64, StoreError>;
    /// Makes every append that returned before this call durable. One flush serves all documents.
    fn flush(&self) -> Result<(), StoreError>;
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
}

/// Counters per document, in the `meta` tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Meta {
    tail_count: u64,
    tail_bytes: u64,
    last_seq: u64,
    updated_ms: u64,
    snapshot_bytes: u64,
}

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let mut body = Vec::with_capacity(40);
        for v in [
            self.tail_count,
            self.tail_bytes,
            self.last_seq,
            self.updated_ms,
            self.snapshot_bytes,
        ] {
            put_u64(&mut body, v);
        }
        record::seal(&body)
    }

    fn decode(raw: &[u8]) -> Result<Meta, RecordError> {
        let mut r = Reader::new(record::open(raw)?);
        let meta = Meta {
            tail_count: r.u64()?,
            tail_bytes: r.u64()?,
            last_seq: r.u64()?,
            updated_ms: r.u64()?,
            snapshot_bytes: r.u64()?,
        };
        r.end()?;
        Ok(meta)
    }
}

fn encode_log_value(time_ms: u64, author: &str, update: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(update.len() + author.len() + 10);
    put_u64(&mut body, time_ms);
    put_str16(&mut body, author);
    body.extend_from_slice(update);
    record::seal(&body)
}

fn decode_log_value(seq: u64, raw: &[u8]) -> Result<UpdateRecord, RecordError> {
    let mut r = Reader::new(record::open(raw)?);
    let time_ms = r.u64()?;
    let author = String::from_utf8_lossy(r.bytes16()?).into_owned();
    Ok(UpdateRecord {
        seq,
        author,
        time_ms,
        update: r.rest().to_vec(),
    })
}

/// A state with the seq it covers (`snapshot` and `base` trees).
fn encode_state(seq: u64, state: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(state.len() + 8);
    put_u64(&mut body, seq);
    body.extend_from_slice(state);
    record::seal(&body)
}

fn decode_state(raw: &[u8]) -> Result<(u64, Vec<u8>), RecordError> {
    let mut r = Reader::new(record::open(raw)?);
    let seq = r.u64()?;
    Ok((seq, r.rest().to_vec()))
}

fn log_prefix(doc: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(doc.len() + 9);
    k.extend_from_slice(doc.as_bytes());
    k.push(0);
    k
}

fn log_key(doc: &str, seq: u64) -> Vec<u8> {
    let mut k = log_prefix(doc);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of_key(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    snapshot: sled::Tree,
    base: sled::Tree,
    meta: sled::Tree,
    config: StoreConfig,
    flushes: AtomicU64,
    /// Serialises read-modify-writes of `meta` (appends, compactions, deletes). Held only for
    /// in-memory sled operations, never across a flush or a document rebuild.
    meta_lock: Mutex<()>,
}

impl SledStore {
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            // We flush explicitly (group commit); sled's own periodic flush is only a backstop.
            .flush_every_ms(Some(1000))
            .open()?;
        Ok(SledStore {
            log: db.open_tree("log")?,
            snapshot: db.open_tree("snapshot")?,
            base: db.open_tree("base")?,
            meta: db.open_tree("meta")?,
            db,
            config,
            flushes: AtomicU64::new(0),
            meta_lock: Mutex::new(()),
        })
    }

    /// Flushes done so far (the benchmark reports fsyncs per update with it).
    pub fn flush_count(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }

    /// The raw database, for tests that corrupt records on purpose.
    #[doc(hidden)]
    pub fn raw_db(&self) -> &sled::Db {
        &self.db
    }

    fn corrupt(doc: &str, what: &str, e: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt {
            doc: doc.to_string(),
            detail: format!("{what}: {e}"),
        }
    }

    fn read_meta(&self, doc: &str) -> Result<Option<Meta>, StoreError> {
        match self.meta.get(doc.as_bytes())? {
            Some(raw) => Meta::decode(&raw)
                .map(Some)
                .map_err(|e| Self::corrupt(doc, "meta", e)),
            None => Ok(None),
        }
    }

    fn read_state(
        &self,
        tree: &sled::Tree,
        doc: &str,
        what: &str,
    ) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        match tree.get(doc.as_bytes())? {
            Some(raw) => decode_state(&raw)
                .map(Some)
                .map_err(|e| Self::corrupt(doc, what, e)),
            None => Ok(None),
        }
    }

    /// Log entries of `doc` with seq in `(after, upto]`, in order, checksums verified.
    fn read_log(&self, doc: &str, after: u64, upto: u64) -> Result<Vec<UpdateRecord>, StoreError> {
        let start = log_key(doc, after.saturating_add(1));
        let end = log_key(doc, upto);
        let mut out = Vec::new();
        if after >= upto {
            return Ok(out);
        }
        for kv in self.log.range(start..=end) {
            let (key, value) = kv?;
            let seq = seq_of_key(&key).ok_or_else(|| Self::corrupt(doc, "log key", "short key"))?;
            out.push(
                decode_log_value(seq, &value)
                    .map_err(|e| Self::corrupt(doc, &format!("log entry {seq}"), e))?,
            );
        }
        Ok(out)
    }
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

impl DocStore for SledStore {
    fn append(
        &self,
        doc: &str,
        author: &str,
        time_ms: u64,
        update: &[u8],
    ) -> Result<u64, StoreError> {
        let seq = self.db.generate_id()?.saturating_add(1);
        let _held = self
            .meta_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut meta = self.read_meta(doc)?.unwrap_or_default();
        meta.tail_count += 1;
        meta.tail_bytes = meta.tail_bytes.saturating_add(len_u64(update.len()));
        meta.last_seq = meta.last_seq.max(seq);
        meta.updated_ms = time_ms;
        // Meta first: a document with log entries is always listed, even after a crash here.
        self.meta.insert(doc.as_bytes(), meta.encode())?;
        self.log
            .insert(log_key(doc, seq), encode_log_value(time_ms, author, update))?;
        Ok(seq)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn load(&self, doc: &str) -> Result<Option<StoredDoc>, StoreError> {
        let (snapshot_seq, snapshot) = match self.read_state(&self.snapshot, doc, "snapshot")? {
            Some((seq, state)) => (seq, Some(state)),
            None => (0, None),
        };
        let tail = self.read_log(doc, snapshot_seq, u64::MAX)?;
        if snapshot.is_none() && tail.is_empty() {
            return Ok(None);
        }
        Ok(Some(StoredDoc {
            snapshot,
            snapshot_seq,
            tail,
        }))
    }

    fn needs_compaction(&self, doc: &str) -> Result<bool, StoreError> {
        Ok(self.read_meta(doc)?.is_some_and(|m| {
            m.tail_count >= self.config.compact_after_updates
                || m.tail_bytes >= self.config.compact_after_bytes
        }))
    }

    fn compact(&self, doc: &str) -> Result<CompactionReport, StoreError> {
        // 1. Read what there is now; appends that land later get higher seqs and stay in the tail.
        let old = self.read_state(&self.snapshot, doc, "snapshot")?;
        let old_seq = old.as_ref().map_or(0, |(s, _)| *s);
        let merged = self.read_log(doc, old_seq, u64::MAX)?;
        let Some(last) = merged.last().map(|r| r.seq) else {
            return Ok(CompactionReport {
                merged_updates: 0,
                snapshot_bytes: len_u64(old.as_ref().map_or(0, |(_, s)| s.len())),
                snapshot_seq: old_seq,
                removed_log_entries: 0,
            });
        };
        // 2. Merge outside any lock: this is the slow part.
        let state = merge(
            doc,
            old.iter()
                .map(|(_, s)| s.as_slice())
                .chain(merged.iter().map(|r| r.update.as_slice())),
        )?;
        let merged_bytes: u64 = merged.iter().map(|r| len_u64(r.update.len())).sum();
        // 3. Decide which history to drop: every log entry up to `last` except the newest
        //    `history_keep_updates`; fold the dropped ones into the base state.
        let keep = usize::try_from(self.config.history_keep_updates).unwrap_or(usize::MAX);
        let covered = self.read_log(doc, 0, last)?;
        let drop_n = covered.len().saturating_sub(keep);
        let dropped = &covered[..drop_n];
        let new_base = match dropped.last() {
            Some(last_dropped) => {
                let base = self.read_state(&self.base, doc, "history base")?;
                let state = merge(
                    doc,
                    base.iter()
                        .map(|(_, s)| s.as_slice())
                        .chain(dropped.iter().map(|r| r.update.as_slice())),
                )?;
                Some((last_dropped.seq, state))
            }
            None => None,
        };
        // 4. Write: snapshot (and base) before removing anything they cover, so a crash at any
        //    point leaves a loadable store (load skips log entries the snapshot covers).
        let _held = self
            .meta_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.read_meta(doc)?.is_none() {
            // Deleted meanwhile: write nothing back.
            return Ok(CompactionReport {
                merged_updates: 0,
                snapshot_bytes: 0,
                snapshot_seq: 0,
                removed_log_entries: 0,
            });
        }
        self.snapshot
            .insert(doc.as_bytes(), encode_state(last, &state))?;
        if let Some((seq, base)) = &new_base {
            self.base.insert(doc.as_bytes(), encode_state(*seq, base))?;
        }
        let mut meta = self.read_meta(doc)?.unwrap_or_default();
        meta.tail_count = meta.tail_count.saturating_sub(len_u64(merged.len()));
        meta.tail_bytes = meta.tail_bytes.saturating_sub(merged_bytes);
        meta.snapshot_bytes = len_u64(state.len());
        self.meta.insert(doc.as_bytes(), meta.encode())?;
        let mut batch = sled::Batch::default();
        for r in dropped {
            batch.remove(log_key(doc, r.seq));
        }
        self.log.apply_batch(batch)?;
        Ok(CompactionReport {
            merged_updates: len_u64(merged.len()),
            snapshot_bytes: len_u64(state.len()),
            snapshot_seq: last,
            removed_log_entries: len_u64(drop_n),
        })
    }

    fn list(&self) -> Result<Vec<DocInfo>, StoreError> {
        let mut out = Vec::new();
        for kv in self.meta.iter() {
            let (key, value) = kv?;
            let name = String::from_utf8_lossy(&key).into_owned();
            let meta = Meta::decode(&value).map_err(|e| Self::corrupt(&name, "meta", e))?;
            out.push(info_of(name, meta));
        }
        Ok(out)
    }

    fn list_page(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<DocInfo>, StoreError> {
        // Names are the meta tree's keys, so a page is one ordered range scan.
        let mut out = Vec::new();
        let start = if after > prefix { after } else { prefix };
        for kv in self.meta.range(start.as_bytes()..) {
            let (key, value) = kv?;
            if !key.starts_with(prefix.as_bytes()) || out.len() == limit {
                break;
            }
            if &*key == after.as_bytes() {
                continue;
            }
            let name = String::from_utf8_lossy(&key).into_owned();
            let meta = Meta::decode(&value).map_err(|e| Self::corrupt(&name, "meta", e))?;
            out.push(info_of(name, meta));
        }
        Ok(out)
    }

    fn info(&self, doc: &str) -> Result<Option<DocInfo>, StoreError> {
        Ok(self.read_meta(doc)?.map(|m| info_of(doc.to_string(), m)))
    }

    fn delete(&self, doc: &str) -> Result<bool, StoreError> {
        let _held = self
            .meta_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let existed = self.meta.remove(doc.as_bytes())?.is_some();
        let had_snapshot = self.snapshot.remove(doc.as_bytes())?.is_some();
        self.base.remove(doc.as_bytes())?;
        let mut batch = sled::Batch::default();
        let mut had_log = false;
        for key in self.log.scan_prefix(log_prefix(doc)).keys() {
            batch.remove(key?);
            had_log = true;
        }
        self.log.apply_batch(batch)?;
        Ok(existed || had_snapshot || had_log)
    }

    fn history(
        &self,
        doc: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        let mut out = Vec::new();
        for kv in self
            .log
            .range(log_key(doc, after.saturating_add(1))..=log_key(doc, u64::MAX))
        {
            if out.len() >= limit {
                break;
            }
            let (key, value) = kv?;
            let seq = seq_of_key(&key).ok_or_else(|| Self::corrupt(doc, "log key", "short key"))?;
            let r = decode_log_value(seq, &value)
                .map_err(|e| Self::corrupt(doc, &format!("log entry {seq}"), e))?;
            out.push(HistoryEntry {
                seq,
                author: r.author,
                time_ms: r.time_ms,
                size: len_u64(r.update.len()),
            });
        }
        Ok(out)
    }

    fn state_at(&self, doc: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        // The kept history is: the base state (everything up to base_seq), then every log entry
        // after it. A version inside that window is base + entries up to it.
        let base = self.read_state(&self.base, doc, "history base")?;
        let base_seq = base.as_ref().map_or(0, |(s, _)| *s);
        if seq < base_seq {
            return Ok(None);
        }
        let entries = self.read_log(doc, base_seq, seq)?;
        let exact = seq == base_seq || entries.last().is_some_and(|r| r.seq == seq);
        if !exact {
            return Ok(None);
        }
        merge(
            doc,
            base.iter()
                .map(|(_, s)| s.as_slice())
                .chain(entries.iter().map(|r| r.update.as_slice())),
        )
        .map(Some)
    }
}

fn info_of(name: String, m: Meta) -> DocInfo {
    DocInfo {
        name,
        log_len: m.tail_count,
        log_bytes: m.tail_bytes,
        snapshot_bytes: m.snapshot_bytes,
        last_seq: m.last_seq,
        updated_ms: m.updated_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Array, GetString, Text};

    fn store_with(config: StoreConfig) -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db"), config).expect("opens");
        (dir, store)
    }

    fn store() -> (tempfile::TempDir, SledStore) {
        store_with(StoreConfig::default())
    }

    /// An update inserting `s` at the start of text `t`, from its own client.
    fn insert(client: u64, s: &str) -> Vec<u8> {
        let doc = Doc::with_client_id(client);
        doc.get_or_insert_text("t")
            .insert(&mut doc.transact_mut(), 0, s);
        let u = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        u
    }

    fn text_of(updates: impl Iterator<Item = Vec<u8>>) -> String {
        let doc = Doc::new();
        for u in updates {
            doc.transact_mut()
                .apply_update(Update::decode_v1(&u).expect("decodes"))
                .expect("applies");
        }
        let t = doc.get_or_insert_text("t");
        let s = t.get_string(&doc.transact());
        s
    }

    fn loaded_text(store: &SledStore, doc: &str) -> String {
        let stored = store.load(doc).expect("loads").unwrap_or_default();
        text_of(stored.updates().map(<[u8]>::to_vec))
    }

    // Appends come back in order with their author and time; unknown documents are None.
    #[test]
    fn append_load_round_trip() {
        let (_dir, s) = store();
        assert!(s.load("nope").expect("loads").is_none());
        let a = s.append("d", "ada", 10, &insert(1, "a")).expect("appends");
        let b = s.append("d", "bob", 20, &insert(2, "b")).expect("appends");
        assert!(b > a);
        let stored = s.load("d").expect("loads").expect("exists");
        assert_eq!(stored.tail.len(), 2);
        assert_eq!(
            (stored.tail[0].author.as_str(), stored.tail[0].time_ms),
            ("ada", 10)
        );
        assert_eq!(
            (stored.tail[1].author.as_str(), stored.tail[1].seq),
            ("bob", b)
        );
        assert_eq!(loaded_text(&s, "d").len(), 2);
    }

    // A listing page is the names under a prefix after a cursor, in order; the sled range scan
    // and the trait's default (used by the other stores) agree.
    #[test]
    fn list_page_by_prefix_and_cursor() {
        let (_dir, s) = store();
        let mem = memory::MemStore::new(StoreConfig::default());
        for name in [
            "issues/1",
            "notes/b",
            "notes/a",
            "notes/c",
            "notesx",
            "private/ada/notes/z",
        ] {
            s.append(name, "ada", 1, &insert(1, "x")).expect("appends");
            mem.append(name, "ada", 1, &insert(1, "x"))
                .expect("appends");
        }
        let names = |page: Vec<DocInfo>| page.into_iter().map(|d| d.name).collect::<Vec<_>>();
        for store in [&s as &dyn DocStore, &mem] {
            assert_eq!(
                names(store.list_page("notes/", "", 2).expect("lists")),
                ["notes/a", "notes/b"]
            );
            assert_eq!(
                names(store.list_page("notes/", "notes/b", 10).expect("lists")),
                ["notes/c"]
            );
            assert_eq!(
                names(store.list_page("notes/", "a", 1).expect("lists")),
                ["notes/a"]
            );
            assert!(store
                .list_page("notes/", "notes/c", 10)
                .expect("lists")
                .is_empty());
            assert!(store
                .list_page("nothing/", "", 10)
                .expect("lists")
                .is_empty());
        }
    }

    // Compaction merges into a snapshot that loads to the same content, and counters reset.
    #[test]
    fn compaction_preserves_content() {
        let (_dir, s) = store_with(StoreConfig {
            compact_after_updates: 3,
            compact_after_bytes: u64::MAX,
            history_keep_updates: 0,
        });
        for i in 0..5u64 {
            s.append("d", "a", i, &insert(i + 1, &format!("{i}")))
                .expect("appends");
        }
        let before = loaded_text(&s, "d");
        assert!(s.needs_compaction("d").expect("counts"));
        let report = s.compact("d").expect("compacts");
        assert_eq!(report.merged_updates, 5);
        assert_eq!(report.removed_log_entries, 5);
        assert!(!s.needs_compaction("d").expect("counts"));
        let stored = s.load("d").expect("loads").expect("exists");
        assert!(stored.snapshot.is_some() && stored.tail.is_empty());
        assert_eq!(loaded_text(&s, "d"), before);
        s.append("d", "a", 9, &insert(9, "z")).expect("appends");
        assert_eq!(s.load("d").expect("loads").expect("exists").tail.len(), 1);
    }

    // One thread appends distinct inserts while another compacts over and over: nothing is lost.
    #[test]
    fn compaction_racing_appends_loses_nothing() {
        let (_dir, s) = store_with(StoreConfig {
            compact_after_updates: 1,
            compact_after_bytes: 1,
            history_keep_updates: 10,
        });
        let s = std::sync::Arc::new(s);
        let n = 400u64;
        let writer = {
            let s = std::sync::Arc::clone(&s);
            std::thread::spawn(move || {
                for i in 0..n {
                    let doc = Doc::with_client_id(1000 + i);
                    doc.get_or_insert_array("a")
                        .push_back(&mut doc.transact_mut(), i64::try_from(i).unwrap_or(0));
                    let u = doc
                        .transact()
                        .encode_state_as_update_v1(&StateVector::default());
                    s.append("d", "w", i, &u).expect("appends");
                }
            })
        };
        let mut compactions = 0;
        while !writer.is_finished() {
            s.compact("d").expect("compacts");
            compactions += 1;
        }
        writer.join().expect("writer");
        s.compact("d").expect("compacts");
        let stored = s.load("d").expect("loads").expect("exists");
        let doc = Doc::new();
        for u in stored.updates() {
            doc.transact_mut()
                .apply_update(Update::decode_v1(u).expect("decodes"))
                .expect("applies");
        }
        let arr = doc.get_or_insert_array("a");
        assert_eq!(
            u64::from(arr.len(&doc.transact())),
            n,
            "after {compactions} compactions"
        );
    }

    // History lists every update with author and time, paginated by seq.
    #[test]
    fn history_pagination() {
        let (_dir, s) = store();
        let seqs: Vec<u64> = (0..7u64)
            .map(|i| {
                s.append("d", &format!("u{i}"), i, &insert(i + 1, "x"))
                    .expect("appends")
            })
            .collect();
        let page1 = s.history("d", 0, 3).expect("lists");
        assert_eq!(page1.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[..3]);
        let page2 = s.history("d", page1[2].seq, 3).expect("lists");
        assert_eq!(page2.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[3..6]);
        assert_eq!(page2[0].author, "u3");
        assert_eq!(s.history("d", seqs[6], 3).expect("lists").len(), 0);
    }

    // A past state is exact before and after compaction while its history is kept, and None
    // once it was folded into the base.
    #[test]
    fn state_at_across_compaction() {
        let (_dir, s) = store_with(StoreConfig {
            compact_after_updates: 1,
            compact_after_bytes: 1,
            history_keep_updates: 3,
        });
        let seqs: Vec<u64> = ["a", "b", "c", "d", "e"]
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let doc = Doc::with_client_id(7);
                // One client appending at the end: version k holds the first k+1 letters.
                let text = doc.get_or_insert_text("t");
                text.insert(&mut doc.transact_mut(), 0, &"abcde"[..i]);
                let sv = doc.transact().state_vector();
                text.insert(&mut doc.transact_mut(), u32::try_from(i).unwrap_or(0), t);
                let u = doc.transact().encode_state_as_update_v1(&sv);
                s.append("d", "a", 0, &u).expect("appends")
            })
            .collect();
        let at = |seq| {
            s.state_at("d", seq)
                .expect("reads")
                .map(|u| text_of(std::iter::once(u)))
        };
        assert_eq!(at(seqs[1]).as_deref(), Some("ab"));
        s.compact("d").expect("compacts");
        assert_eq!(at(seqs[4]).as_deref(), Some("abcde"));
        assert_eq!(at(seqs[2]).as_deref(), Some("abc"));
        assert_eq!(
            at(seqs[1]).as_deref(),
            Some("ab"),
            "the base covers exactly the dropped entries"
        );
        assert_eq!(at(seqs[0]), None, "folded into the base");
        assert_eq!(loaded_text(&s, "d"), "abcde");
    }

    // Deleting notes/1 leaves notes/10 alone.
    #[test]
    fn delete_is_isolated() {
        let (_dir, s) = store();
        s.append("notes/1", "a", 0, &insert(1, "one"))
            .expect("appends");
        s.append("notes/10", "a", 0, &insert(2, "ten"))
            .expect("appends");
        s.compact("notes/1").expect("compacts");
        assert!(s.delete("notes/1").expect("deletes"));
        assert!(!s.delete("notes/1").expect("deletes"));
        assert!(s.load("notes/1").expect("loads").is_none());
        assert_eq!(loaded_text(&s, "notes/10"), "ten");
        let names: Vec<_> = s
            .list()
            .expect("lists")
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, vec!["notes/10".to_string()]);
    }

    // A flipped byte in a stored record is reported as corruption naming the document.
    #[test]
    fn corruption_is_loud() {
        let (_dir, s) = store();
        s.append("notes/7", "a", 0, &insert(1, "precious"))
            .expect("appends");
        let log = s.raw_db().open_tree("log").expect("tree");
        let (key, value) = log.iter().next().expect("entry").expect("reads");
        let mut bad = value.to_vec();
        let last = bad.len() - 1;
        bad[last] ^= 0x40;
        log.insert(key, bad).expect("writes");
        match s.load("notes/7") {
            Err(StoreError::Corrupt { doc, .. }) => assert_eq!(doc, "notes/7"),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    // Closing and reopening keeps everything that was flushed.
    #[test]
    fn reopen_preserves() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let s = SledStore::open(&dir.path().join("db"), StoreConfig::default()).expect("opens");
            s.append("d", "a", 0, &insert(1, "kept")).expect("appends");
            s.flush().expect("flushes");
            assert_eq!(s.flush_count(), 1);
        }
        let s = SledStore::open(&dir.path().join("db"), StoreConfig::default()).expect("reopens");
        assert_eq!(loaded_text(&s, "d"), "kept");
        assert_eq!(s.info("d").expect("info").expect("exists").log_len, 1);
    }

    // The fault wrapper fails exactly the k-th call and passes the others through.
    #[test]
    fn faulty_store_fails_the_kth_call() {
        let (_dir, s) = store();
        let f = fault::FaultyStore::new(s);
        f.fail_append_at(2);
        f.fail_flush_at(1);
        assert!(f.append("d", "a", 0, &insert(1, "a")).is_ok());
        assert!(matches!(
            f.append("d", "a", 0, &insert(2, "b")),
            Err(StoreError::Injected(_))
        ));
        assert!(f.append("d", "a", 0, &insert(3, "c")).is_ok());
        assert!(matches!(f.flush(), Err(StoreError::Injected(_))));
        assert!(f.flush().is_ok());
        assert_eq!(
            f.inner()
                .load("d")
                .expect("loads")
                .expect("exists")
                .tail
                .len(),
            2
        );
    }

    // A stored update that does not decode makes compaction fail with an error, not a panic.
    #[test]
    fn bad_update_fails_compaction_cleanly() {
        let (_dir, s) = store();
        s.append("d", "a", 0, &[0xff, 0xff, 0xff]).expect("appends");
        assert!(matches!(s.compact("d"), Err(StoreError::BadUpdate { .. })));
        assert!(s.load("d").expect("still loads").is_some());
    }
}
