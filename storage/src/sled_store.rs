//! [`SledStore`]: the embedded [`DocStore`] on `sled`.
//!
//! ## Layout in sled
//! | tree | key | value (a [`record`]) |
//! |---|---|---|
//! | `log` | doc name, `0x00`, seq (u64 big-endian) | time ms, author, update |
//! | `snapshot` | doc name | seq it covers, merged state (a Yjs v1 update) |
//! | `base` | doc name | seq it covers, state before the oldest kept log entry |
//! | `meta` | doc name | tail count, tail bytes, last seq, updated ms, snapshot bytes |
//! | `authors` | doc name, `0x00`, `c` | the creator (the author of the first append) |
//! | `authors` | doc name, `0x00`, `b`, client (u64 BE), start (u32 BE) | the author of that binding |
//! | `people` | `sub` | the name it last signed in with ([`directory`]) |
//! | `inbox` | recipient length (u16 BE), recipient, id (u64 BE) | a notification ([`inbox`]) |
//! | `outbox` | endpoint length (u16 BE), endpoint, `p` or `d`, id (u64 BE) | a pending or dead webhook event ([`outbox`]) |
//!
//! Doc names never contain `0x00` (the server allows only `[A-Za-z0-9._~/-]`), so the log
//! prefix of `notes/1` never matches `notes/10`. `meta` is advisory (counters for compaction and
//! listings); loading reads only `snapshot` and `log`, so a crash between two writes can skew a
//! counter but never a document.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::authorship::{decode_author, encode_author};
use crate::record::{self, put_str16, put_u64, Reader, RecordError};
use crate::{
    len_u64, merge, Authorship, Binding, CompactionReport, DocInfo, DocStore, HistoryEntry,
    StoreConfig, StoreError, StoredDoc, UpdateRecord,
};

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

fn creator_key(doc: &str) -> Vec<u8> {
    let mut k = log_prefix(doc);
    k.push(b'c');
    k
}

fn binding_key(doc: &str, client: u64, start: u32) -> Vec<u8> {
    let mut k = log_prefix(doc);
    k.push(b'b');
    k.extend_from_slice(&client.to_be_bytes());
    k.extend_from_slice(&start.to_be_bytes());
    k
}

pub struct SledStore {
    db: sled::Db,
    log: sled::Tree,
    snapshot: sled::Tree,
    base: sled::Tree,
    meta: sled::Tree,
    authors: sled::Tree,
    inbox: sled::Tree,
    outbox: sled::Tree,
    people: sled::Tree,
    config: StoreConfig,
    flushes: AtomicU64,
    /// Serialises read-modify-writes of `meta` (appends, compactions, deletes). Held only for
    /// in-memory sled operations, never across a flush or a document rebuild.
    meta_lock: Mutex<()>,
    /// Serialises changes of an inbox (deliveries and marking read) with its bound, and holds
    /// each inbox's length once counted (one scan per person per process), so keeping the bound
    /// costs one removal, not a scan, per delivery.
    inbox_lock: Mutex<std::collections::HashMap<String, usize>>,
    /// The same for the webhook outboxes: each (endpoint, pending or dead) queue's length.
    outbox_lock: Mutex<std::collections::HashMap<(String, u8), usize>>,
}

impl SledStore {
    pub fn open(path: &Path, config: StoreConfig) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            // We flush explicitly (group commit); sled's own periodic flush is only a backstop.
            .flush_every_ms(Some(1000))
            .open()
            .map_err(|e| locked(path, e))?;
        Ok(SledStore {
            log: db.open_tree("log")?,
            snapshot: db.open_tree("snapshot")?,
            base: db.open_tree("base")?,
            meta: db.open_tree("meta")?,
            authors: db.open_tree("authors")?,
            inbox: db.open_tree("inbox")?,
            outbox: db.open_tree("outbox")?,
            people: db.open_tree("people")?,
            db,
            config,
            flushes: AtomicU64::new(0),
            meta_lock: Mutex::new(()),
            inbox_lock: Mutex::default(),
            outbox_lock: Mutex::default(),
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
        let existing = self.read_meta(doc)?;
        if existing.is_none() {
            // The first append of a document (or of one deleted before): its author created it.
            let _ = self.authors.compare_and_swap(
                creator_key(doc),
                None::<&[u8]>,
                Some(encode_author(author)),
            )?;
        }
        let mut meta = existing.unwrap_or_default();
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
        // One key at a time, not one `apply_batch`: sled's batches and transactions take a
        // process-wide write lock that, queued behind a flush holding its read side, starves sled's
        // own flusher thread (a deadlock seen with several stores in one test process, and
        // reported under load: spacejam/sled#1412). Order already makes this crash-safe: the
        // snapshot and base above cover every entry removed here.
        for r in dropped {
            self.log.remove(log_key(doc, r.seq))?;
        }
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
        // Key by key (no `apply_batch`, see `compact`), in an order that a crash at any point
        // leaves loadable: the log newest first, so what remains is the snapshot and an older
        // prefix of its tail (an earlier state, never a document with holes); the snapshot last.
        let existed = self.meta.remove(doc.as_bytes())?.is_some();
        let log: Vec<sled::IVec> = self
            .log
            .scan_prefix(log_prefix(doc))
            .keys()
            .collect::<Result<_, _>>()?;
        for key in log.iter().rev() {
            self.log.remove(key)?;
        }
        for key in self.authors.scan_prefix(log_prefix(doc)).keys() {
            self.authors.remove(key?)?;
        }
        self.base.remove(doc.as_bytes())?;
        let had_snapshot = self.snapshot.remove(doc.as_bytes())?.is_some();
        Ok(existed || had_snapshot || !log.is_empty())
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

    fn bind(&self, doc: &str, client: u64, start: u32, author: &str) -> Result<String, StoreError> {
        let key = binding_key(doc, client, start);
        match self
            .authors
            .compare_and_swap(&key, None::<&[u8]>, Some(encode_author(author)))?
        {
            Ok(()) => Ok(author.to_string()),
            Err(held) => match held.current {
                Some(raw) => decode_author(&raw).map_err(|e| Self::corrupt(doc, "binding", e)),
                None => Err(StoreError::Io("binding vanished while set".into())),
            },
        }
    }

    fn authorship(&self, doc: &str) -> Result<Authorship, StoreError> {
        let prefix = log_prefix(doc);
        let mut record = Authorship::default();
        for entry in self.authors.scan_prefix(&prefix) {
            let (key, raw) = entry?;
            let author = decode_author(&raw).map_err(|e| Self::corrupt(doc, "authorship", e))?;
            match key.get(prefix.len()..) {
                Some([b'c']) => record.creator = Some(author),
                Some([b'b', rest @ ..]) if rest.len() == 12 => {
                    let (client, start) = rest.split_at(8);
                    record.bindings.push(Binding {
                        client: u64::from_be_bytes(client.try_into().unwrap_or_default()),
                        start: u32::from_be_bytes(start.try_into().unwrap_or_default()),
                        author,
                    });
                }
                _ => return Err(Self::corrupt(doc, "authorship", "unknown key")),
            }
        }
        Ok(record)
    }
}

/// sled refuses a second opener of the same directory (an exclusive file lock) with a plain
/// I/O error of this wording (sled 0.34.7, `Config::open`): told apart so the server can say
/// that another tandem holds the directory, not show a lock error.
fn locked(path: &Path, e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io) if io.to_string().starts_with("could not acquire lock on") => {
            StoreError::Locked(path.to_path_buf())
        }
        _ => e.into(),
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

mod directory;
mod inbox;
mod outbox;
#[cfg(test)]
mod tests;
