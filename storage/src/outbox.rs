//! Each webhook endpoint's outbox: the events waiting to be delivered to it, durable like the
//! update log (queued before the flush that makes the change behind them durable), in order,
//! bounded per endpoint, and the dead ones beside them (given up on, kept for inspection and a
//! retry).
//!
//! The store keeps bytes: an event is its type, its time and its JSON body, which the server
//! builds and this crate never reads. Ids only grow within an outbox, in the order events land,
//! across restarts too (sled takes them from one counter for the store, Redis from one per
//! endpoint), so an endpoint's outbox in id order is the order its events were made,
//! and a dead event re-queued goes back to its place.

use std::collections::{BTreeMap, HashMap};

use crate::record::{self, put_str16, put_u64, Reader, RecordError};
use crate::StoreError;

/// An event to queue on one endpoint's outbox; the store stamps it with an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHookEvent {
    /// The endpoint's id (the server derives it from the endpoint's configuration).
    pub endpoint: String,
    /// The event's type (`issue.status_changed`, ...).
    pub event: String,
    pub time_ms: u64,
    /// The event's JSON, opaque to the store.
    pub body: Vec<u8>,
}

/// A queued (or dead) event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookEvent {
    pub id: u64,
    pub event: String,
    pub time_ms: u64,
    pub body: Vec<u8>,
    /// Why it was parked; empty while it is pending.
    pub error: String,
}

/// How many events an endpoint has waiting and dead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub dead: u64,
}

/// Why the store parks an event by itself: its outbox passed its bound.
pub const OUTBOX_FULL: &str = "outbox full: parked to make room for newer events";

/// The outbox half of a store (every [`crate::DocStore`] is one). An endpoint keeps at most the
/// store's `outbox_len_max` pending events (past it the oldest are parked) and as many dead ones
/// (past it the oldest dead are dropped).
pub trait Outbox: Send + Sync {
    /// Queues events on their endpoints' outboxes, in order; returns the endpoint of every event
    /// the bound parked (one entry per event). Durable after the next successful `flush`.
    fn enqueue(&self, events: &[NewHookEvent]) -> Result<Vec<String>, StoreError>;
    /// The oldest pending events of `endpoint`, at most `limit`, oldest first.
    fn pending(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError>;
    /// Removes a delivered event, pending or dead (the bound may have parked it while it was
    /// being sent; delivered, it must not be sent again by a retry). No-op if it is gone.
    fn remove_delivered(&self, endpoint: &str, id: u64) -> Result<(), StoreError>;
    /// Parks a pending event as dead, with the reason; false (and nothing done) if it was not
    /// pending.
    fn park(&self, endpoint: &str, id: u64, reason: &str) -> Result<bool, StoreError>;
    /// The oldest dead events of `endpoint`, at most `limit`.
    fn dead(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError>;
    /// Moves dead events back to the outbox, oldest first and as many as its bound leaves room
    /// for; returns how many moved.
    fn requeue_dead(&self, endpoint: &str) -> Result<u64, StoreError>;
    fn outbox_counts(&self, endpoint: &str) -> Result<OutboxCounts, StoreError>;
    /// Whether this node may deliver `endpoint`'s events now: takes or renews a lease of
    /// `ttl_ms` in a shared store, so one node delivers each endpoint, in order. A store of one
    /// node always may.
    fn outbox_lease(&self, _endpoint: &str, _ttl_ms: u64) -> Result<bool, StoreError> {
        Ok(true)
    }
}

impl HookEvent {
    pub(crate) fn new(id: u64, e: &NewHookEvent) -> HookEvent {
        HookEvent {
            id,
            event: e.event.clone(),
            time_ms: e.time_ms,
            body: e.body.clone(),
            error: String::new(),
        }
    }

    /// The stored form (the endpoint and id live in the key).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + self.event.len() + self.body.len());
        put_u64(&mut out, self.time_ms);
        put_str16(&mut out, &self.event);
        put_str16(&mut out, &self.error);
        out.extend_from_slice(&self.body);
        record::seal(&out)
    }

    pub(crate) fn decode(id: u64, raw: &[u8]) -> Result<HookEvent, RecordError> {
        let mut r = Reader::new(record::open(raw)?);
        let time_ms = r.u64()?;
        let event = String::from_utf8_lossy(r.bytes16()?).into_owned();
        let error = String::from_utf8_lossy(r.bytes16()?).into_owned();
        Ok(HookEvent {
            id,
            event,
            time_ms,
            error,
            body: r.rest().to_vec(),
        })
    }
}

pub(crate) fn corrupt(endpoint: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        doc: format!("webhook outbox {endpoint}"),
        detail: e.to_string(),
    }
}

/// One endpoint's events held in memory.
#[derive(Default)]
struct Queues {
    pending: BTreeMap<u64, HookEvent>,
    dead: BTreeMap<u64, HookEvent>,
}

impl Queues {
    fn park(&mut self, id: u64, reason: &str, len_max: usize) -> bool {
        let Some(mut e) = self.pending.remove(&id) else {
            return false;
        };
        e.error = reason.to_string();
        self.dead.insert(id, e);
        while self.dead.len() > len_max {
            self.dead.pop_first();
        }
        true
    }
}

/// Outboxes held in memory (the memory store's).
#[derive(Default)]
pub(crate) struct Outboxes {
    next_id: u64,
    by_endpoint: HashMap<String, Queues>,
}

fn first(map: &BTreeMap<u64, HookEvent>, limit: usize) -> Vec<HookEvent> {
    map.values().take(limit).cloned().collect()
}

impl Outboxes {
    pub(crate) fn enqueue(&mut self, events: &[NewHookEvent], len_max: usize) -> Vec<String> {
        let mut parked = Vec::new();
        for e in events {
            self.next_id += 1;
            let queues = self.by_endpoint.entry(e.endpoint.clone()).or_default();
            queues
                .pending
                .insert(self.next_id, HookEvent::new(self.next_id, e));
            while queues.pending.len() > len_max {
                let Some(&oldest) = queues.pending.keys().next() else {
                    break;
                };
                queues.park(oldest, OUTBOX_FULL, len_max);
                parked.push(e.endpoint.clone());
            }
        }
        parked
    }

    pub(crate) fn pending(&self, endpoint: &str, limit: usize) -> Vec<HookEvent> {
        self.by_endpoint
            .get(endpoint)
            .map(|q| first(&q.pending, limit))
            .unwrap_or_default()
    }

    pub(crate) fn remove_delivered(&mut self, endpoint: &str, id: u64) {
        if let Some(q) = self.by_endpoint.get_mut(endpoint) {
            q.pending.remove(&id);
            q.dead.remove(&id);
        }
    }

    pub(crate) fn park(&mut self, endpoint: &str, id: u64, reason: &str, len_max: usize) -> bool {
        self.by_endpoint
            .get_mut(endpoint)
            .is_some_and(|q| q.park(id, reason, len_max))
    }

    pub(crate) fn dead(&self, endpoint: &str, limit: usize) -> Vec<HookEvent> {
        self.by_endpoint
            .get(endpoint)
            .map(|q| first(&q.dead, limit))
            .unwrap_or_default()
    }

    pub(crate) fn requeue_dead(&mut self, endpoint: &str, len_max: usize) -> u64 {
        let Some(q) = self.by_endpoint.get_mut(endpoint) else {
            return 0;
        };
        let mut moved = 0;
        while q.pending.len() < len_max {
            let Some((id, mut e)) = q.dead.pop_first() else {
                break;
            };
            e.error.clear();
            q.pending.insert(id, e);
            moved += 1;
        }
        moved
    }

    pub(crate) fn counts(&self, endpoint: &str) -> OutboxCounts {
        self.by_endpoint
            .get(endpoint)
            .map(|q| OutboxCounts {
                pending: q.pending.len() as u64,
                dead: q.dead.len() as u64,
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(endpoint: &str, n: u64) -> NewHookEvent {
        NewHookEvent {
            endpoint: endpoint.into(),
            event: "note.created".into(),
            time_ms: n,
            body: format!("{{\"n\":{n}}}").into_bytes(),
        }
    }

    #[test]
    fn a_record_round_trips_and_a_flipped_bit_is_caught() {
        let mut e = HookEvent::new(7, &event("a", 3));
        e.error = "HTTP 500".into();
        let raw = e.encode();
        assert_eq!(HookEvent::decode(7, &raw).expect("decodes"), e);
        let mut bad = raw.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(HookEvent::decode(7, &bad).is_err());
    }
}
