//! `RedisStore`: the `DocStore` of cluster mode, shared by every node.
//!
//! Keys (the `{doc}` hash tag keeps one document's keys in one Redis Cluster slot):
//!
//! | key | type | content |
//! |---|---|---|
//! | `tandem:{<doc>}:log` | stream | one entry per update, id `<seq>-0`: `a` author, `t` time ms, `n` node, `u` update, `c` CRC32 of `u` |
//! | `tandem:{<doc>}:seq` | string | the last seq handed out (`INCR`, in the same script as the `XADD`) |
//! | `tandem:{<doc>}:snap` | hash | `s` merged state, `q` the last seq it covers, `c` CRC32 of `s` |
//! | `tandem:{<doc>}:lease` | string | the node compacting the document (`SET NX PX`) |
//! | `tandem:{<doc>}:authors` | hash | `c` the creator; `b:<client>:<start>` the author of each binding (`HSETNX`: the first wins) |
//! | `tandem:docs` | set | every document name (listings) |
//! | `tandem:{events}` | stream | the cluster's change feed: `e` one event (the server's JSON), the newest `--cluster-events-len-max` |
//! | `tandem:{changes}` | stream | one entry per update of any document: `d` document, `q` seq, `n` node (the newest `changes_len_max`) |
//!
//! The inboxes of notifications: [`inbox`]; the people directory: [`directory`]; one Redis or a
//! Redis Cluster: [`conn`].
//!
//! **On a Redis Cluster** every command, script and pipeline names keys of one hash slot: a
//! document's keys share `{<doc>}`, each global key is alone in its command (or shares a tag
//! with the keys it is used with, like `{people}`). A node follows other nodes' updates with one
//! blocking read of `tandem:{changes}` (cluster-wide, so one read whatever the shard count),
//! then reads the named documents' own streams from their seq. An append is two writes: the
//! entry into the document's stream (the durable one) and its small pointer into `{changes}`.
//! If a node dies between the two, the pointer is missing; the seq gap is caught up at the
//! document's next change, since a reader always reads the document's stream from its own seq.
//!
//! An append returns once Redis has executed it; how durable that is depends on Redis'
//! persistence (`appendonly yes` with `appendfsync always` makes it survive a Redis crash), so
//! `flush` has nothing left to do. Every record carries a CRC32 that is checked on read: a
//! corrupt record fails the load with the document named, never an empty document.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::streams::{StreamId, StreamRangeReply};
use redis::Commands;

pub mod conn;
mod directory;
mod feeds;

pub use feeds::{Change, StreamEvent};
mod ids;
mod inbox;
mod outbox;

use crate::{
    merge, Authorship, Binding, CompactionReport, DocInfo, DocStore, HistoryEntry, StoreConfig,
    StoreError, StoredDoc, UpdateRecord,
};

/// How long a compaction lease lasts: far longer than merging any document takes, short enough
/// that a node killed mid-compaction delays the next one only briefly.
const COMPACTION_LEASE_MS: u64 = 30_000;

/// The entry, and whether the document has its creator yet (set once it is registered).
const APPEND: &str = r"
local seq = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[1], seq .. '-0', 'a', ARGV[1], 't', ARGV[2], 'n', ARGV[3], 'u', ARGV[4], 'c', ARGV[5])
return {seq, redis.call('HEXISTS', KEYS[3], 'c')}";

/// Binds unless bound, and answers who holds the binding now.
const BIND: &str = r"
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return redis.call('HGET', KEYS[1], ARGV[1])";

/// Deletes the lease only if this node still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// One update read back from a stream, with the node that wrote it.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub node: String,
    pub record: UpdateRecord,
}

pub use conn::{RedisConn, RedisTarget};

pub struct RedisStore {
    target: RedisTarget,
    client: conn::Client,
    /// Idle connections; a call takes one (or opens one) and puts it back.
    pool: Mutex<Vec<RedisConn>>,
    node: String,
    config: StoreConfig,
    append: redis::Script,
    release: redis::Script,
    bind: redis::Script,
}

fn key(doc: &str, what: &str) -> String {
    format!("tandem:{{{doc}}}:{what}")
}

const REGISTRY: &str = "tandem:docs";

fn io(e: impl std::fmt::Display) -> StoreError {
    StoreError::Io(format!("redis: {e}"))
}

impl RedisStore {
    /// Connects to one Redis (and checks the connection) for node `node`.
    pub fn open(url: &str, node: &str, config: StoreConfig) -> Result<Self, StoreError> {
        Self::open_target(RedisTarget::Single(url.to_string()), node, config)
    }

    /// Connects to one Redis or a Redis Cluster (and checks the connection) for node `node`.
    pub fn open_target(
        target: RedisTarget,
        node: &str,
        config: StoreConfig,
    ) -> Result<Self, StoreError> {
        let client = target.client().map_err(io)?;
        let mut conn = client.connection().map_err(io)?;
        redis::cmd("PING").query::<String>(&mut conn).map_err(io)?;
        if matches!(target, RedisTarget::Single(_)) {
            directory::migrate(&mut conn).map_err(io)?;
        }
        Ok(RedisStore {
            target,
            client,
            pool: Mutex::new(vec![conn]),
            node: node.to_string(),
            config,
            append: redis::Script::new(APPEND),
            release: redis::Script::new(RELEASE),
            bind: redis::Script::new(BIND),
        })
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// A dedicated connection (for blocking reads).
    pub fn connection(&self) -> Result<RedisConn, StoreError> {
        self.client.connection().map_err(io)
    }

    /// A dedicated connection for pub/sub (see [`conn`]).
    pub fn pubsub_connection(&self) -> Result<redis::Connection, StoreError> {
        self.target.pubsub_connection().map_err(io)
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut RedisConn) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = self
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connection()?,
        };
        let result = f(&mut conn);
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        match &result {
            Ok(_) if pool.len() < 16 => pool.push(conn),
            Ok(_) => {}
            // A connection that failed may be broken: drop it rather than pool it. One dropped
            // by the server (Redis restarted) means the idle ones are dead too: drop them all,
            // or each would fail one more call (one more refused edit) after Redis is back.
            Err(e) if e.is_connection_dropped() || e.is_io_error() => pool.clear(),
            Err(_) => {}
        }
        drop(pool);
        result.map_err(io)
    }

    /// The entries of `doc`'s stream after seq `after`, at most `count`.
    pub fn entries_after(
        &self,
        doc: &str,
        after: u64,
        count: usize,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        self.entries(doc, after, Some(count))
    }

    /// Publishes `payload` on a channel (cross-node awareness).
    pub fn publish(&self, channel: &str, payload: &[u8]) -> Result<(), StoreError> {
        self.with(|c| c.publish::<_, _, ()>(channel, payload))
    }

    /// Sets this node's liveness key for `ttl`.
    pub fn heartbeat(&self, ttl: Duration) -> Result<(), StoreError> {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.with(|c| {
            redis::cmd("SET")
                .arg(format!("tandem:node:{}", self.node))
                .arg(1)
                .arg("PX")
                .arg(ms)
                .query::<()>(c)
        })
    }

    /// True while `node`'s liveness key exists.
    pub fn node_alive(&self, node: &str) -> Result<bool, StoreError> {
        self.with(|c| c.exists::<_, bool>(format!("tandem:node:{node}")))
    }

    fn entries(
        &self,
        doc: &str,
        after: u64,
        limit: Option<usize>,
    ) -> Result<Vec<StreamEntry>, StoreError> {
        let start = format!("{}-0", after.saturating_add(1));
        let reply: StreamRangeReply = self.with(|c| match limit {
            Some(n) => c.xrange_count(key(doc, "log"), start, "+", n),
            None => c.xrange(key(doc, "log"), start, "+"),
        })?;
        reply.ids.iter().map(|id| entry_of(doc, id)).collect()
    }

    fn snapshot(&self, doc: &str) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
        let fields: HashMap<String, Vec<u8>> = self.with(|c| c.hgetall(key(doc, "snap")))?;
        if fields.is_empty() {
            return Ok(None);
        }
        let corrupt = |detail: &str| StoreError::Corrupt {
            doc: doc.to_string(),
            detail: format!("snapshot: {detail}"),
        };
        let state = fields.get("s").ok_or_else(|| corrupt("no state"))?;
        let seq = parse_u64(fields.get("q")).ok_or_else(|| corrupt("no seq"))?;
        let crc = parse_u64(fields.get("c")).ok_or_else(|| corrupt("no checksum"))?;
        if u64::from(crc32fast::hash(state)) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        Ok(Some((seq, state.clone())))
    }
}

fn parse_u64(raw: Option<&Vec<u8>>) -> Option<u64> {
    std::str::from_utf8(raw?).ok()?.parse().ok()
}

fn field(id: &StreamId, name: &str) -> Option<Vec<u8>> {
    id.map
        .get(name)
        .and_then(|v| redis::from_redis_value_ref::<Vec<u8>>(v).ok())
}

fn entry_of(doc: &str, id: &StreamId) -> Result<StreamEntry, StoreError> {
    let corrupt = |detail: String| StoreError::Corrupt {
        doc: doc.to_string(),
        detail: format!("log entry {}: {detail}", id.id),
    };
    let seq = id
        .id
        .split('-')
        .next()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| corrupt("bad id".into()))?;
    let update = field(id, "u").ok_or_else(|| corrupt("no update".into()))?;
    let crc = field(id, "c")
        .and_then(|c| String::from_utf8(c).ok())
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or_else(|| corrupt("no checksum".into()))?;
    if u64::from(crc32fast::hash(&update)) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    let text = |name: &str| field(id, name).and_then(|v| String::from_utf8(v).ok());
    Ok(StreamEntry {
        node: text("n").unwrap_or_default(),
        record: UpdateRecord {
            seq,
            author: text("a").unwrap_or_default(),
            time_ms: text("t").and_then(|t| t.parse().ok()).unwrap_or(0),
            update,
        },
    })
}

impl DocStore for RedisStore {
    fn append(
        &self,
        doc: &str,
        author: &str,
        time_ms: u64,
        update: &[u8],
    ) -> Result<u64, StoreError> {
        let (seq, has_creator): (u64, bool) = self.with(|c| {
            self.append
                .key(key(doc, "log"))
                .key(key(doc, "seq"))
                .key(key(doc, "authors"))
                .arg(author)
                .arg(time_ms)
                .arg(&self.node)
                .arg(update)
                .arg(u64::from(crc32fast::hash(update)))
                .invoke(c)
        })?;
        // The update is durable from here on. A failure below fails the append, and the room
        // retries it: the update is appended again under a new seq (applying it twice changes
        // nothing). So a new document is registered until it is, not only at seq 1: the
        // creator is set last, once the document is in `tandem:docs` (another slot than the
        // document's keys: its own command).
        if !has_creator {
            self.with(|c| c.sadd::<_, _, ()>(REGISTRY, doc))?;
            self.with(|c| c.hset_nx::<_, _, _, ()>(key(doc, "authors"), "c", author))?;
        }
        // The pointer other nodes follow. Its own command: `{changes}` is another slot than the
        // document's keys. A failure leaves the update durable and the append successful (a
        // retry would only append it again); readers catch the gap up at the document's next
        // change, or at once when their own read of `{changes}` failed too, as it does while
        // its shard is away.
        let pointed = self.with(|c| {
            redis::cmd("XADD")
                .arg(feeds::CHANGES)
                .arg("MAXLEN")
                .arg(self.config.changes_len_max)
                .arg("*")
                .arg("d")
                .arg(doc)
                .arg("q")
                .arg(seq)
                .arg("n")
                .arg(&self.node)
                .query::<()>(c)
        });
        if let Err(e) = pointed {
            tracing::warn!(doc = %doc, seq, error = %e, "the change pointer was not written; other nodes catch the update up at the document's next change");
        }
        Ok(seq)
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every append is executed by Redis before it returns; durability is Redis' AOF policy.
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        // `flush` never reaches Redis; a PING does (on a pooled connection, so a working one
        // also proves the pool healthy again).
        self.with(|c| redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }

    fn load(&self, doc: &str) -> Result<Option<StoredDoc>, StoreError> {
        let snapshot = self.snapshot(doc)?;
        let snapshot_seq = snapshot.as_ref().map_or(0, |(seq, _)| *seq);
        let tail: Vec<UpdateRecord> = self
            .entries(doc, snapshot_seq, None)?
            .into_iter()
            .map(|e| e.record)
            .collect();
        if snapshot.is_none() && tail.is_empty() {
            return Ok(None);
        }
        Ok(Some(StoredDoc {
            snapshot: snapshot.map(|(_, s)| s),
            snapshot_seq,
            tail,
        }))
    }

    fn needs_compaction(&self, doc: &str) -> Result<bool, StoreError> {
        let snapshot_seq: Option<u64> = self.with(|c| c.hget(key(doc, "snap"), "q"))?;
        let last: Option<u64> = self.with(|c| c.get(key(doc, "seq")))?;
        Ok(last.unwrap_or(0).saturating_sub(snapshot_seq.unwrap_or(0))
            >= self.config.compact_after_updates)
    }

    fn compact(&self, doc: &str) -> Result<CompactionReport, StoreError> {
        let lease = key(doc, "lease");
        let won: Option<String> = self.with(|c| {
            redis::cmd("SET")
                .arg(&lease)
                .arg(&self.node)
                .arg("NX")
                .arg("PX")
                .arg(COMPACTION_LEASE_MS)
                .query(c)
        })?;
        if won.is_none() {
            // Another node is compacting this document.
            return Ok(CompactionReport {
                merged_updates: 0,
                snapshot_bytes: 0,
                snapshot_seq: 0,
                removed_log_entries: 0,
            });
        }
        let result = self.compact_holding_lease(doc);
        let _ = self.with(|c| self.release.key(&lease).arg(&self.node).invoke::<i64>(c));
        result
    }

    fn list(&self) -> Result<Vec<DocInfo>, StoreError> {
        let names: Vec<String> = self.with(|c| c.smembers(REGISTRY))?;
        let mut out = Vec::new();
        for name in names {
            if let Some(info) = self.info(&name)? {
                out.push(info);
            }
        }
        Ok(out)
    }

    fn info(&self, doc: &str) -> Result<Option<DocInfo>, StoreError> {
        let last: Option<u64> = self.with(|c| c.get(key(doc, "seq")))?;
        let Some(last_seq) = last else {
            return Ok(None);
        };
        let log_len: u64 = self.with(|c| c.xlen(key(doc, "log")))?;
        let snapshot_bytes: u64 = self.with(|c| {
            redis::cmd("HSTRLEN")
                .arg(key(doc, "snap"))
                .arg("s")
                .query(c)
        })?;
        let newest: StreamRangeReply =
            self.with(|c| c.xrevrange_count(key(doc, "log"), "+", "-", 1))?;
        let updated_ms = newest
            .ids
            .first()
            .and_then(|id| field(id, "t"))
            .and_then(|t| String::from_utf8(t).ok()?.parse().ok())
            .unwrap_or(0);
        Ok(Some(DocInfo {
            name: doc.to_string(),
            log_len,
            log_bytes: 0,
            snapshot_bytes,
            last_seq,
            updated_ms,
        }))
    }

    fn delete(&self, doc: &str) -> Result<bool, StoreError> {
        let removed: u64 = self.with(|c| {
            c.del(vec![
                key(doc, "log"),
                key(doc, "seq"),
                key(doc, "snap"),
                key(doc, "lease"),
                key(doc, "authors"),
            ])
        })?;
        self.with(|c| c.srem::<_, _, ()>(REGISTRY, doc))?;
        Ok(removed > 0)
    }

    fn history(
        &self,
        doc: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, StoreError> {
        Ok(self
            .entries(doc, after, Some(limit))?
            .into_iter()
            .map(|e| HistoryEntry {
                seq: e.record.seq,
                author: e.record.author,
                time_ms: e.record.time_ms,
                size: u64::try_from(e.record.update.len()).unwrap_or(u64::MAX),
            })
            .collect())
    }

    fn state_at(&self, doc: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        // Versions from the snapshot on can be rebuilt; the kept history before it is metadata.
        let snapshot = self.snapshot(doc)?;
        let from = snapshot.as_ref().map_or(0, |(s, _)| *s);
        if seq < from {
            return Ok(None);
        }
        let entries = self.entries(doc, from, None)?;
        if !entries.iter().any(|e| e.record.seq == seq) && seq != from {
            return Ok(None);
        }
        let updates = snapshot.iter().map(|(_, s)| s.as_slice()).chain(
            entries
                .iter()
                .filter(|e| e.record.seq <= seq)
                .map(|e| e.record.update.as_slice()),
        );
        merge(doc, updates).map(Some)
    }

    fn bind(&self, doc: &str, client: u64, start: u32, author: &str) -> Result<String, StoreError> {
        self.with(|c| {
            self.bind
                .key(key(doc, "authors"))
                .arg(format!("b:{client}:{start}"))
                .arg(author)
                .invoke(c)
        })
    }

    fn authorship(&self, doc: &str) -> Result<Authorship, StoreError> {
        let fields: HashMap<String, String> = self.with(|c| c.hgetall(key(doc, "authors")))?;
        let mut record = Authorship::default();
        for (field, author) in fields {
            if field == "c" {
                record.creator = Some(author);
                continue;
            }
            let parsed = field.strip_prefix("b:").and_then(|rest| {
                let (client, start) = rest.split_once(':')?;
                Some((client.parse().ok()?, start.parse().ok()?))
            });
            let Some((client, start)) = parsed else {
                return Err(StoreError::Corrupt {
                    doc: doc.to_string(),
                    detail: format!("authorship field {field}"),
                });
            };
            record.bindings.push(Binding {
                client,
                start,
                author,
            });
        }
        Ok(record)
    }
}

impl RedisStore {
    fn compact_holding_lease(&self, doc: &str) -> Result<CompactionReport, StoreError> {
        let snapshot = self.snapshot(doc)?;
        let from = snapshot.as_ref().map_or(0, |(s, _)| *s);
        let entries = self.entries(doc, from, None)?;
        let Some(upto) = entries.last().map(|e| e.record.seq) else {
            return Ok(CompactionReport {
                merged_updates: 0,
                snapshot_bytes: snapshot.map_or(0, |(_, s)| u64::try_from(s.len()).unwrap_or(0)),
                snapshot_seq: from,
                removed_log_entries: 0,
            });
        };
        let state = merge(
            doc,
            snapshot
                .iter()
                .map(|(_, s)| s.as_slice())
                .chain(entries.iter().map(|e| e.record.update.as_slice())),
        )?;
        let crc = u64::from(crc32fast::hash(&state));
        self.with(|c| {
            redis::cmd("HSET")
                .arg(key(doc, "snap"))
                .arg("s")
                .arg(state.as_slice())
                .arg("q")
                .arg(upto)
                .arg("c")
                .arg(crc)
                .query::<()>(c)
        })?;
        // Entries merged into the snapshot and older than the history window go. Entries
        // appended during the merge have seqs above `upto` and are never touched.
        let keep = self.config.history_keep_updates;
        let min_kept = upto.saturating_sub(keep).saturating_add(1);
        let removed: u64 = self.with(|c| {
            redis::cmd("XTRIM")
                .arg(key(doc, "log"))
                .arg("MINID")
                .arg(format!("{min_kept}-0"))
                .query(c)
        })?;
        Ok(CompactionReport {
            merged_updates: u64::try_from(entries.len()).unwrap_or(u64::MAX),
            snapshot_bytes: u64::try_from(state.len()).unwrap_or(u64::MAX),
            snapshot_seq: upto,
            removed_log_entries: removed,
        })
    }
}
