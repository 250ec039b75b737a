//! The change feed: typed events (`note.created`, `issue.status_changed`, `document.deleted`, ...)
//! published by rooms once the change they describe is durable, kept in a bounded ring for
//! `Last-Event-ID` resumption, and handed to the streams of `GET /api/events` (`events.rs`).
//!
//! Ids are strictly increasing, also across restarts: the first id of a process is its start time
//! in milliseconds × 1000, so an id from before a restart is older than every id kept now and the
//! client is told to `reset` rather than silently missing events.
//!
//! In cluster mode a node does not stamp its events: it forwards them ([`Feed::forward_to`]) to
//! the cluster's event stream in Redis, and every node's feed takes the stream's events back in
//! ([`Feed::insert`]) with ids made from the stream ids: one order and one set of ids on every
//! node, so a stream resumes on any node.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::{Deserialize, Serialize};
use tandem_crdt_model::typed::{Change, DocKind};
use tokio::sync::broadcast;

use crate::abuse::OpenSlots;

/// One event as clients receive it (the SSE `data:` JSON; its `type` is also the SSE `event:`).
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub id: u64,
    #[serde(flatten)]
    pub change: Change,
    /// The document the event is about.
    pub doc: Arc<str>,
    /// `note`, `contact` or `issue`; absent for untyped documents (`document.deleted` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<DocKind>,
    /// The typed id (the last segment of `doc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Who made the change: the `sub` of every author whose update went into it.
    pub by: Vec<String>,
    pub time_ms: u64,
}

/// Where a resuming client stands.
pub enum Resume {
    /// Every event after the client's id, in order.
    Replay(Vec<Arc<FeedEvent>>),
    /// The client's id is no longer (or never was) kept: it must re-read what it shows.
    Reset,
}

pub struct Feed {
    /// Open `/api/events` streams (bounded by `feed_streams_max`).
    pub streams: AtomicUsize,
    /// Open streams per user (`feed_streams_per_user_max`) and per client IP
    /// (`feed_streams_per_ip_max`).
    pub(crate) per_user: Arc<OpenSlots<Arc<str>>>,
    pub(crate) per_ip: Arc<OpenSlots<IpAddr>>,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<FeedEvent>>,
    kept: usize,
    /// Cluster mode: where unstamped events go instead of the ring.
    forward: OnceLock<Forward>,
}

/// Takes one unstamped event (its [`FeedEvent::to_wire`] bytes) to the cluster.
pub type Forward = Box<dyn Fn(Vec<u8>) + Send + Sync>;

/// An event as it travels between nodes: everything but its id (the stream gives it).
#[derive(Serialize, Deserialize)]
struct Wire {
    doc: String,
    by: Vec<String>,
    time_ms: u64,
    event: String,
    #[serde(default)]
    fields: Vec<String>,
    entry: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

impl FeedEvent {
    fn new(id: u64, doc: &Arc<str>, by: Vec<String>, change: Change, time_ms: u64) -> FeedEvent {
        let located = tandem_crdt_model::typed::locate(doc);
        FeedEvent {
            id,
            change,
            doc: Arc::clone(doc),
            kind: located.as_ref().map(|l| l.kind),
            item: located.as_ref().map(|l| l.id.to_string()),
            by,
            time_ms,
        }
    }

    /// The event without its id, for the cluster's event stream.
    pub fn to_wire(&self) -> Vec<u8> {
        let c = &self.change;
        serde_json::to_vec(&Wire {
            doc: self.doc.to_string(),
            by: self.by.clone(),
            time_ms: self.time_ms,
            event: c.event.clone(),
            fields: c.fields.clone(),
            entry: c.entry.clone(),
            from: c.from.clone(),
            to: c.to.clone(),
        })
        .unwrap_or_default()
    }

    /// An event read back from the cluster's stream, with the id the stream gave it; `None`
    /// for bytes that are not one (never written by tandem).
    pub fn from_wire(id: u64, bytes: &[u8]) -> Option<FeedEvent> {
        let w: Wire = serde_json::from_slice(bytes).ok()?;
        let change = Change {
            event: w.event,
            fields: w.fields,
            entry: w.entry,
            from: w.from,
            to: w.to,
        };
        Some(FeedEvent::new(
            id,
            &Arc::from(w.doc),
            w.by,
            change,
            w.time_ms,
        ))
    }
}

struct Ring {
    events: VecDeque<Arc<FeedEvent>>,
    next_id: u64,
}

impl Feed {
    pub fn new(kept: usize) -> Self {
        let start_ms = crate::clock::now_ms();
        let kept = kept.max(1);
        Feed {
            streams: AtomicUsize::new(0),
            per_user: Arc::default(),
            per_ip: Arc::default(),
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(kept.min(1024)),
                next_id: start_ms.saturating_mul(1000).max(1),
            }),
            // A subscriber further behind than this is lagging: it gets `reset`, like one
            // resuming from too far back.
            live: broadcast::channel(kept.min(4096)).0,
            kept,
            forward: OnceLock::new(),
        }
    }

    /// How many events the ring keeps.
    pub fn kept(&self) -> usize {
        self.kept
    }

    /// Cluster mode: from now on events go to `forward`, and come back through [`Feed::insert`].
    pub fn forward_to(&self, forward: Forward) {
        let _ = self.forward.set(forward);
    }

    /// Takes in an event stamped elsewhere (the cluster's stream); one not newer than the last
    /// taken is a repeat and is ignored.
    pub fn insert(&self, event: FeedEvent) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.events.back().is_some_and(|last| event.id <= last.id) {
            return;
        }
        ring.next_id = event.id.saturating_add(1);
        self.push(&mut ring, Arc::new(event));
    }

    fn push(&self, ring: &mut Ring, event: Arc<FeedEvent>) {
        if ring.events.len() == self.kept {
            ring.events.pop_front();
        }
        ring.events.push_back(Arc::clone(&event));
        // Sent under the lock, so a subscriber taken with `resume` sees each event once.
        let _ = self.live.send(event);
    }

    /// Stamps and publishes the changes of one document.
    pub fn publish(&self, doc: &Arc<str>, by: Vec<String>, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let time_ms = crate::clock::now_ms();
        if let Some(forward) = self.forward.get() {
            for change in changes {
                forward(FeedEvent::new(0, doc, by.clone(), change, time_ms).to_wire());
            }
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            let event = FeedEvent::new(ring.next_id, doc, by.clone(), change, time_ms);
            ring.next_id += 1;
            self.push(&mut ring, Arc::new(event));
        }
    }

    /// The events after `last_id` (all kept ones if `None` means "only new ones") and a receiver
    /// of everything published from now on, taken atomically.
    pub fn resume(&self, last_id: Option<u64>) -> (Resume, broadcast::Receiver<Arc<FeedEvent>>) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let live = self.live.subscribe();
        let Some(last) = last_id else {
            return (Resume::Replay(Vec::new()), live);
        };
        let oldest_kept = ring.events.front().map_or(ring.next_id, |e| e.id);
        // `last` may be the event just before the oldest kept one, or any later one we issued.
        if last.saturating_add(1) < oldest_kept || last >= ring.next_id {
            return (Resume::Reset, live);
        }
        let replay = ring
            .events
            .iter()
            .filter(|e| e.id > last)
            .cloned()
            .collect();
        (Resume::Replay(replay), live)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(event: &str) -> Change {
        Change::new(event)
    }

    #[test]
    fn resumes_after_an_id_and_resets_when_too_old() {
        let feed = Feed::new(3);
        let doc: Arc<str> = Arc::from("notes/1");
        assert!(
            matches!(feed.resume(Some(1)).0, Resume::Reset),
            "an id from long ago"
        );
        feed.publish(&doc, vec!["ada".into()], vec![change("a"), change("b")]);
        feed.publish(&doc, vec![], vec![change("c"), change("d")]);
        let ids: Vec<u64> = {
            let ring = feed.ring.lock().expect("lock");
            ring.events.iter().map(|e| e.id).collect()
        };
        assert_eq!(ids.len(), 3, "the ring keeps the last three");
        let after = |id: u64| match feed.resume(Some(id)).0 {
            Resume::Replay(v) => Some(v.iter().map(|e| e.change.event.clone()).collect::<Vec<_>>()),
            Resume::Reset => None,
        };
        assert_eq!(
            after(ids[0] - 1),
            Some(vec!["b".into(), "c".into(), "d".into()])
        );
        assert_eq!(after(ids[0]), Some(vec!["c".into(), "d".into()]));
        assert_eq!(after(ids[2]), Some(vec![]));
        assert_eq!(after(ids[0] - 2), None, "a fell out of the ring");
        assert_eq!(after(ids[2] + 1), None, "an id never issued");
        let Resume::Replay(fresh) = feed.resume(None).0 else {
            panic!("a fresh subscriber never resets");
        };
        assert!(fresh.is_empty());
    }
}
