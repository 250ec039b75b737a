//! Cluster mode: several nodes serving the same documents through one Redis (`--redis`) or a
//! Redis Cluster (`--redis-cluster`); the code is the same for both.
//!
//! - Updates: every node appends to the document's Redis stream and a pointer to the
//!   cluster-wide change stream (`RedisStore`). One tailer thread per node follows the change
//!   stream (one `XREAD BLOCK`, whatever the number of documents or shards); for a document it
//!   has open that another node changed, it reads the document's stream from the seq it holds
//!   (so nothing is missed when a node is slow or a pointer is lost) and hands the entries to
//!   the room, which applies them (idempotent: a CRDT update applied twice changes nothing) and
//!   broadcasts them. A newly opened room is caught up from the seq it loaded.
//! - Awareness: rooms publish their sockets' presence on `tandem:{<doc>}:aw`; one subscriber
//!   thread receives every node's (pattern subscription; on a Redis Cluster a classic `PUBLISH`
//!   reaches every shard's subscribers, so one subscription on one seed node hears them all:
//!   presence is small and best effort, so the broadcast costs little) and hands it to the open
//!   rooms. Each
//!   node keeps a liveness key (`tandem:node:<id>`, refreshed every second, 5 s TTL); presence
//!   that came from a node whose key expired is removed.
//! - Deletes and a room's "who is here?" on opening travel on the same channel.
//!
//! Everything that talks to Redis runs on its own thread, so a slow Redis never stalls a room's
//! task; rooms only enqueue.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{mpsc as std_mpsc, Arc, Mutex, PoisonError};
use std::time::Instant;

use tandem_storage::redis_store::{RedisConn, RedisStore};
use tandem_storage::UpdateRecord;
use tokio::sync::mpsc;

use crate::config::ClusterConfig;
use crate::room::RoomCmd;

mod feed;

/// What travels on a document's awareness channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An awareness update (y-protocols encoding) of the sending node's sockets.
    Awareness = 0,
    /// A room just opened: others republish their sockets' presence.
    Hello = 1,
    /// The document was deleted: others close their rooms.
    Deleted = 2,
}

/// Counters for `/metrics` and `/api/stats`.
#[derive(Default)]
pub struct ClusterMetrics {
    pub remote_updates: AtomicU64,
    pub awareness_in: AtomicU64,
    pub awareness_out: AtomicU64,
    /// Time from a remote append to this node reading it, of the latest entry read (ms).
    pub stream_lag_ms: AtomicU64,
    pub node_lease_ok: AtomicBool,
    pub nodes_expired: AtomicU64,
    pub redis_errors: AtomicU64,
    /// Feed events written to the cluster's stream, read from it, and dropped because the queue
    /// to the stream was full.
    pub feed_out: AtomicU64,
    pub feed_in: AtomicU64,
    pub feed_dropped: AtomicU64,
}

struct Tail {
    /// The last seq of the document's stream the room holds.
    after: u64,
    inbox: mpsc::WeakSender<RoomCmd>,
    /// The document's stream must be read from `after` whatever the change stream says: the
    /// room just opened, or a read failed.
    catch_up: bool,
}

pub struct Cluster {
    pub node: String,
    config: ClusterConfig,
    pub store: Arc<RedisStore>,
    pub metrics: ClusterMetrics,
    tails: Mutex<HashMap<Arc<str>, Tail>>,
    outbox: std_mpsc::SyncSender<(String, Vec<u8>)>,
    /// Nodes whose presence rooms hold, checked for liveness.
    remote_nodes: Mutex<HashSet<String>>,
    stop: AtomicBool,
    /// The tailer, subscriber and publisher, joined by [`Cluster::stop`].
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

/// A fresh node id (16 hex digits, made like every other id: `doc_name::new_id`).
pub fn new_node_id() -> String {
    crate::doc_name::new_id()
}

fn channel(doc: &str) -> String {
    format!("tandem:{{{doc}}}:aw")
}

fn frame(kind: Kind, node: &str, payload: &[u8]) -> Vec<u8> {
    let node = &node.as_bytes()[..node.len().min(255)];
    let mut out = Vec::with_capacity(2 + node.len() + payload.len());
    out.push(kind as u8);
    out.push(u8::try_from(node.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(node);
    out.extend_from_slice(payload);
    out
}

fn unframe(raw: &[u8]) -> Option<(Kind, &str, &[u8])> {
    let (&kind, rest) = raw.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    let node = std::str::from_utf8(rest.get(..len)?).ok()?;
    let kind = match kind {
        0 => Kind::Awareness,
        1 => Kind::Hello,
        2 => Kind::Deleted,
        _ => return None,
    };
    Some((kind, node, &rest[len..]))
}

impl Cluster {
    /// Starts the tailer, subscriber and publisher threads.
    pub fn start(store: Arc<RedisStore>, config: ClusterConfig) -> anyhow::Result<Arc<Cluster>> {
        let (outbox, queued) = std_mpsc::sync_channel(config.publish_queue_len_max);
        let cluster = Arc::new(Cluster {
            node: store.node().to_string(),
            config,
            store,
            metrics: ClusterMetrics::default(),
            tails: Mutex::new(HashMap::new()),
            outbox,
            remote_nodes: Mutex::new(HashSet::new()),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        cluster.store.heartbeat(cluster.config.node_lease)?;
        cluster.metrics.node_lease_ok.store(true, Relaxed);
        let mut tail_conn = cluster.store.connection()?;
        let mut sub_conn = cluster.store.pubsub_connection()?;
        sub_conn.set_read_timeout(Some(cluster.config.heartbeat_interval))?;
        let c = Arc::clone(&cluster);
        let tail = std::thread::Builder::new()
            .name("cluster-tail".into())
            .spawn(move || c.tail_loop(&mut tail_conn))?;
        let c = Arc::clone(&cluster);
        let sub = std::thread::Builder::new()
            .name("cluster-sub".into())
            .spawn(move || c.subscribe_loop(&mut sub_conn))?;
        let c = Arc::clone(&cluster);
        let publish = std::thread::Builder::new()
            .name("cluster-pub".into())
            .spawn(move || c.publish_loop(&queued))?;
        *cluster
            .threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = vec![tail, sub, publish];
        Ok(cluster)
    }

    /// Stops the cluster threads and waits for them (blocking: call it from a blocking thread).
    /// Each checks the stop flag at least once per heartbeat interval or read block; see
    /// [`Cluster::stop_bound`].
    pub fn stop(&self) {
        self.stop.store(true, Relaxed);
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let name = thread.thread().name().unwrap_or("cluster").to_string();
            if thread.join().is_err() {
                tracing::error!(thread = %name, "cluster thread panicked");
            }
        }
    }

    /// How long [`Cluster::stop`] should take at most: every thread wakes within one heartbeat
    /// interval (the subscriber's read timeout, the publisher's wait) or one read block (the
    /// tailer), and a retry after a Redis error sleeps as long once more.
    pub fn stop_bound(&self) -> std::time::Duration {
        (self.config.heartbeat_interval + self.config.read_block) * 2
    }

    /// How long a room retries a commit Redis failed (`--cluster-outage-grace-s`).
    pub fn outage_grace(&self) -> std::time::Duration {
        self.config.outage_grace
    }

    /// Whether [`Cluster::stop`] has joined every thread (tests).
    pub fn stopped(&self) -> bool {
        self.stop.load(Relaxed)
            && self
                .threads
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .is_empty()
    }

    /// A room opened with its document loaded up to `after`: tail its stream from there and ask
    /// the other nodes who is present.
    pub fn register(&self, doc: &Arc<str>, after: u64, inbox: mpsc::WeakSender<RoomCmd>) {
        self.tails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                Arc::clone(doc),
                Tail {
                    after,
                    inbox,
                    catch_up: true,
                },
            );
        self.enqueue(doc, Kind::Hello, &[]);
    }

    pub fn unregister(&self, doc: &str) {
        self.tails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(doc);
    }

    /// Shares an awareness update of this node's sockets.
    pub fn publish_awareness(&self, doc: &str, update: &[u8]) {
        self.enqueue(doc, Kind::Awareness, update);
    }

    pub fn publish_deleted(&self, doc: &str) {
        self.enqueue(doc, Kind::Deleted, &[]);
    }

    fn enqueue(&self, doc: &str, kind: Kind, payload: &[u8]) {
        let message = (channel(doc), frame(kind, &self.node, payload));
        if self.outbox.try_send(message).is_ok() && kind == Kind::Awareness {
            self.metrics.awareness_out.fetch_add(1, Relaxed);
        }
    }

    fn room(&self, doc: &str) -> Option<mpsc::Sender<RoomCmd>> {
        let tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        tails.get(doc)?.inbox.upgrade()
    }

    fn tail_loop(&self, conn: &mut RedisConn) {
        // Read block plus a margin: the reply of a blocking read is late by design.
        let read_timeout =
            self.config.read_block + tandem_storage::redis_store::conn::RESPONSE_TIMEOUT;
        let _ = conn.set_read_timeout(read_timeout);
        let mut cursor = None;
        while !self.stop.load(Relaxed) {
            let from = match &cursor {
                Some(c) => Ok(String::clone(c)),
                None => self.store.changes_head(),
            };
            let read = from.and_then(|from| {
                self.catch_up_marked();
                RedisStore::changes_after(
                    conn,
                    &from,
                    self.config.read_block,
                    self.config.read_len_max,
                )
            });
            let (changes, next) = match read {
                Ok(read) => read,
                Err(e) => {
                    self.metrics.redis_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "reading the change stream failed; retrying");
                    std::thread::sleep(self.config.read_block);
                    if let Ok(fresh) = self.store.connection() {
                        let _ = fresh.set_read_timeout(read_timeout);
                        *conn = fresh;
                    }
                    // Whatever happened while Redis was away, every open room catches up.
                    self.mark_all();
                    continue;
                }
            };
            cursor = Some(next);
            let mut changed = HashSet::new();
            {
                let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
                for change in changes {
                    let Some(tail) = tails.get_mut(change.doc.as_str()) else {
                        continue;
                    };
                    if change.node == self.node && change.seq == tail.after + 1 {
                        // Our own append, next in line: nothing to read for it.
                        tail.after = change.seq;
                    } else if change.seq > tail.after {
                        changed.insert(change.doc);
                    }
                }
            }
            for doc in changed {
                self.catch_up(&doc);
            }
        }
    }

    fn mark_all(&self) {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        for tail in tails.values_mut() {
            tail.catch_up = true;
        }
    }

    /// Catches up the rooms marked for it (opened, or a read failed).
    fn catch_up_marked(&self) {
        let marked: Vec<String> = {
            let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
            tails
                .iter_mut()
                .filter(|(_, t)| t.catch_up)
                .map(|(d, t)| {
                    t.catch_up = false;
                    d.to_string()
                })
                .collect()
        };
        for doc in marked {
            self.catch_up(&doc);
        }
    }

    /// Reads `doc`'s stream from the seq its room holds to the end and hands the room what other
    /// nodes wrote. A failed read marks the room to try again at the next turn.
    fn catch_up(&self, doc: &str) {
        loop {
            let Some(after) = self
                .tails
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(doc)
                .map(|t| t.after)
            else {
                return;
            };
            let entries = match self
                .store
                .entries_after(doc, after, self.config.read_len_max)
            {
                Ok(entries) => entries,
                Err(e) => {
                    self.metrics.redis_errors.fetch_add(1, Relaxed);
                    tracing::warn!(doc = %doc, error = %e, "reading a document stream failed; retrying");
                    if let Some(tail) = self
                        .tails
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_mut(doc)
                    {
                        tail.catch_up = true;
                    }
                    return;
                }
            };
            let Some(last) = entries.last().map(|e| e.record.seq) else {
                return;
            };
            let full = entries.len() >= self.config.read_len_max;
            let remote: Vec<UpdateRecord> = entries
                .into_iter()
                .filter(|e| e.node != self.node)
                .map(|e| e.record)
                .collect();
            if let Some(newest) = remote.last() {
                let now = crate::clock::now_ms();
                self.metrics
                    .stream_lag_ms
                    .store(now.saturating_sub(newest.time_ms), Relaxed);
                self.metrics
                    .remote_updates
                    .fetch_add(u64::try_from(remote.len()).unwrap_or(0), Relaxed);
                // The room's inbox is bounded: waiting here slows the tail, never drops.
                if let Some(room) = self.room(doc) {
                    let _ = room.blocking_send(RoomCmd::Remote(remote));
                }
            }
            let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(tail) = tails.get_mut(doc) {
                tail.after = tail.after.max(last);
            }
            if !full {
                return;
            }
        }
    }

    /// The room reloaded its document from the store, up to `after`.
    pub fn reset_tail(&self, doc: &str, after: u64) {
        let mut tails = self.tails.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tail) = tails.get_mut(doc) {
            tail.after = after;
        }
    }

    fn subscribe_loop(&self, conn: &mut redis::Connection) {
        let mut last_check = Instant::now();
        loop {
            if self.stop.load(Relaxed) {
                return;
            }
            let mut pubsub = conn.as_pubsub();
            if let Err(e) = pubsub.psubscribe("tandem:{*}:aw") {
                self.metrics.redis_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "subscribing to presence failed; retrying");
                drop(pubsub);
                // The lease (and so `/health`) follows Redis while it is away too.
                if last_check.elapsed() >= self.config.heartbeat_interval {
                    last_check = Instant::now();
                    self.check_nodes();
                }
                std::thread::sleep(self.config.heartbeat_interval);
                if let Ok(fresh) = self.store.pubsub_connection() {
                    let _ = fresh.set_read_timeout(Some(self.config.heartbeat_interval));
                    *conn = fresh;
                }
                continue;
            }
            loop {
                if self.stop.load(Relaxed) {
                    return;
                }
                match pubsub.get_message() {
                    Ok(msg) => self.received(msg.get_channel_name(), msg.get_payload_bytes()),
                    Err(e) if e.is_timeout() => {}
                    Err(e) => {
                        self.metrics.redis_errors.fetch_add(1, Relaxed);
                        tracing::warn!(error = %e, "presence subscription broke; resubscribing");
                        break;
                    }
                }
                if last_check.elapsed() >= self.config.heartbeat_interval {
                    last_check = Instant::now();
                    self.check_nodes();
                }
            }
        }
    }

    fn received(&self, channel: &str, payload: &[u8]) {
        let Some(doc) = channel
            .strip_prefix("tandem:{")
            .and_then(|c| c.strip_suffix("}:aw"))
        else {
            return;
        };
        let Some((kind, node, body)) = unframe(payload) else {
            return;
        };
        if node == self.node {
            return;
        }
        let Some(room) = self.room(doc) else {
            return;
        };
        let cmd = match kind {
            Kind::Awareness => {
                self.metrics.awareness_in.fetch_add(1, Relaxed);
                self.remote_nodes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(node.to_string());
                RoomCmd::RemoteAwareness {
                    node: node.to_string(),
                    update: body.to_vec(),
                }
            }
            Kind::Hello => RoomCmd::AwarenessHello,
            Kind::Deleted => RoomCmd::RemoteDeleted,
        };
        // Presence is best effort: a full room inbox drops it rather than stall every document.
        let _ = room.try_send(cmd);
    }

    /// Refreshes this node's liveness key and drops the presence of nodes whose key expired.
    fn check_nodes(&self) {
        let ok = self.store.heartbeat(self.config.node_lease).is_ok();
        self.metrics.node_lease_ok.store(ok, Relaxed);
        let nodes: Vec<String> = self
            .remote_nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        for node in nodes {
            if matches!(self.store.node_alive(&node), Ok(false)) {
                self.metrics.nodes_expired.fetch_add(1, Relaxed);
                tracing::info!(node = %node, "node lease expired; removing its presence");
                self.remote_nodes
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&node);
                let rooms: Vec<mpsc::Sender<RoomCmd>> = self
                    .tails
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .filter_map(|t| t.inbox.upgrade())
                    .collect();
                for room in rooms {
                    let _ = room.try_send(RoomCmd::NodeGone(node.clone()));
                }
            }
        }
    }

    fn publish_loop(&self, queued: &std_mpsc::Receiver<(String, Vec<u8>)>) {
        while !self.stop.load(Relaxed) {
            let Ok((channel, payload)) = queued.recv_timeout(self.config.heartbeat_interval) else {
                continue;
            };
            if let Err(e) = self.store.publish(&channel, &payload) {
                self.metrics.redis_errors.fetch_add(1, Relaxed);
                tracing::warn!(error = %e, "publishing presence failed");
            }
        }
    }

    /// Prometheus lines.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        let open = self
            .tails
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        format!(
            "# HELP tandem_cluster_remote_updates_total Updates from other nodes applied here.\n\
             # TYPE tandem_cluster_remote_updates_total counter\n\
             tandem_cluster_remote_updates_total {}\n\
             # HELP tandem_cluster_awareness_messages_total Presence messages across nodes.\n\
             # TYPE tandem_cluster_awareness_messages_total counter\n\
             tandem_cluster_awareness_messages_total{{direction=\"in\"}} {}\n\
             tandem_cluster_awareness_messages_total{{direction=\"out\"}} {}\n\
             # HELP tandem_cluster_stream_lag_ms Append-to-read delay of the latest remote update.\n\
             # TYPE tandem_cluster_stream_lag_ms gauge\n\
             tandem_cluster_stream_lag_ms {}\n\
             # HELP tandem_cluster_node_lease_ok 1 while this node's liveness key is refreshed.\n\
             # TYPE tandem_cluster_node_lease_ok gauge\n\
             tandem_cluster_node_lease_ok {}\n\
             # HELP tandem_cluster_streams_tailed Document streams this node reads.\n\
             # TYPE tandem_cluster_streams_tailed gauge\n\
             tandem_cluster_streams_tailed {}\n\
             # HELP tandem_cluster_nodes_expired_total Other nodes whose lease expired.\n\
             # TYPE tandem_cluster_nodes_expired_total counter\n\
             tandem_cluster_nodes_expired_total {}\n\
             # HELP tandem_cluster_redis_errors_total Failed Redis calls of the cluster threads.\n\
             # TYPE tandem_cluster_redis_errors_total counter\n\
             tandem_cluster_redis_errors_total {}\n\
             # HELP tandem_cluster_feed_events_total Feed events written to and read from the cluster's stream.\n\
             # TYPE tandem_cluster_feed_events_total counter\n\
             tandem_cluster_feed_events_total{{direction=\"out\"}} {}\n\
             tandem_cluster_feed_events_total{{direction=\"in\"}} {}\n\
             # HELP tandem_cluster_feed_events_dropped_total Feed events dropped: the queue to Redis was full.\n\
             # TYPE tandem_cluster_feed_events_dropped_total counter\n\
             tandem_cluster_feed_events_dropped_total {}\n",
            m.remote_updates.load(Relaxed),
            m.awareness_in.load(Relaxed),
            m.awareness_out.load(Relaxed),
            m.stream_lag_ms.load(Relaxed),
            u8::from(m.node_lease_ok.load(Relaxed)),
            open,
            m.nodes_expired.load(Relaxed),
            m.redis_errors.load(Relaxed),
            m.feed_out.load(Relaxed),
            m.feed_in.load(Relaxed),
            m.feed_dropped.load(Relaxed),
        )
    }

    pub fn stats(&self) -> serde_json::Value {
        let m = &self.metrics;
        serde_json::json!({
            "node": self.node,
            "streams_tailed": self.tails.lock().unwrap_or_else(PoisonError::into_inner).len(),
            "remote_updates": m.remote_updates.load(Relaxed),
            "awareness_in": m.awareness_in.load(Relaxed),
            "awareness_out": m.awareness_out.load(Relaxed),
            "stream_lag_ms": m.stream_lag_ms.load(Relaxed),
            "node_lease_ok": m.node_lease_ok.load(Relaxed),
        })
    }
}
