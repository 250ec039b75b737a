//! The two cluster-wide streams: `tandem:{changes}` (a pointer per update of any document, which
//! nodes follow to learn what other nodes changed) and `tandem:{events}` (the cluster's change
//! feed). Each has one hash tag, so it lives whole on one shard and one blocking read follows it.

use std::time::Duration;

use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use redis::Commands;

use super::{field, io, RedisConn, RedisStore};
use crate::StoreError;

/// Every update's pointer, cluster-wide.
pub(super) const CHANGES: &str = "tandem:{changes}";
/// The cluster's change feed, in one order for every node.
const EVENTS: &str = "tandem:{events}";

/// One entry of the event stream: its stream id and payload.
pub type StreamEvent = (String, Vec<u8>);

/// Entries of `stream` after id `cursor`, waiting up to `block` for the first one, with the id
/// to read after next. Blocks `conn`.
fn read_stream(
    conn: &mut RedisConn,
    stream: &str,
    cursor: &str,
    block: Duration,
    count: usize,
) -> Result<(Vec<StreamId>, String), StoreError> {
    let reply: Option<StreamReadReply> = redis::cmd("XREAD")
        .arg("COUNT")
        .arg(count)
        .arg("BLOCK")
        .arg(u64::try_from(block.as_millis()).unwrap_or(u64::MAX))
        .arg("STREAMS")
        .arg(stream)
        .arg(cursor)
        .query(conn)
        .map_err(io)?;
    let ids: Vec<StreamId> = reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .collect();
    let next = ids
        .last()
        .map_or_else(|| cursor.to_string(), |id| id.id.clone());
    Ok((ids, next))
}

fn event_of(id: StreamId) -> Option<StreamEvent> {
    let payload = field(&id, "e")?;
    Some((id.id, payload))
}

/// A pointer into a document's stream, read from `tandem:{changes}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub doc: String,
    pub seq: u64,
    pub node: String,
}

impl RedisStore {
    /// The id of the newest change (`0-0` if none): where a tailer that starts now begins.
    pub fn changes_head(&self) -> Result<String, StoreError> {
        let newest: StreamRangeReply = self.with(|c| c.xrevrange_count(CHANGES, "+", "-", 1))?;
        Ok(newest
            .ids
            .first()
            .map_or_else(|| "0-0".to_string(), |id| id.id.clone()))
    }

    /// Changes after stream id `cursor`, waiting up to `block` for the first one; returns them
    /// with the id to read after next. Uses `conn`, which it blocks.
    pub fn changes_after(
        conn: &mut RedisConn,
        cursor: &str,
        block: Duration,
        count: usize,
    ) -> Result<(Vec<Change>, String), StoreError> {
        let (ids, next) = read_stream(conn, CHANGES, cursor, block, count)?;
        let mut out = Vec::new();
        for id in ids {
            let text = |name: &str| field(&id, name).and_then(|v| String::from_utf8(v).ok());
            if let (Some(doc), Some(seq)) = (text("d"), text("q").and_then(|q| q.parse().ok())) {
                out.push(Change {
                    doc,
                    seq,
                    node: text("n").unwrap_or_default(),
                });
            }
        }
        Ok((out, next))
    }

    /// Appends one event to the cluster's feed (trimmed to about `len_max`); returns its id.
    pub fn add_event(&self, payload: &[u8], len_max: u64) -> Result<String, StoreError> {
        self.with(|c| {
            redis::cmd("XADD")
                .arg(EVENTS)
                .arg("MAXLEN")
                .arg(len_max)
                .arg("*")
                .arg("e")
                .arg(payload)
                .query(c)
        })
    }

    /// The newest `count` events, oldest first.
    pub fn newest_events(&self, count: usize) -> Result<Vec<StreamEvent>, StoreError> {
        let reply: StreamRangeReply = self.with(|c| c.xrevrange_count(EVENTS, "+", "-", count))?;
        Ok(reply.ids.into_iter().rev().filter_map(event_of).collect())
    }

    /// Events after stream id `cursor`, waiting up to `block` for the first one, with the id to
    /// read after next. Blocks `conn`.
    pub fn events_after(
        conn: &mut RedisConn,
        cursor: &str,
        block: Duration,
        count: usize,
    ) -> Result<(Vec<StreamEvent>, String), StoreError> {
        let (ids, next) = read_stream(conn, EVENTS, cursor, block, count)?;
        Ok((ids.into_iter().filter_map(event_of).collect(), next))
    }
}
