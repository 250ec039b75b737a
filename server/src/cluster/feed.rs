//! The cluster's change feed: the events a node's rooms derive go to one Redis stream
//! (`tandem:{events}`), and every node's feed takes that stream's events back in, so each
//! node's `/api/events` carries the whole cluster's events in one order with the same ids.
//!
//! An event is derived once, by the node whose room made its change durable (a room applying
//! another node's update derives nothing from it, see `room::describe`), and written once. Ids
//! are made from the stream ids (`<ms>-<n>` → `ms × 2,000 + n`): increasing, the same on every
//! node, larger than any id of a single node's own feed (`ms × 1,000` and up), and exact in
//! JavaScript (below 2^53 until the year 2112; `ms × 1,000,000` was not, so a browser reading
//! the JSON merged events of one millisecond into one id). A stream holds far fewer than 2,000
//! events per millisecond (one `XADD` each); more would share the last id of that millisecond.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc as std_mpsc, Arc, PoisonError};

use tandem_storage::redis_store::RedisStore;

use super::Cluster;
use crate::feed::{Feed, FeedEvent};

/// `<ms>-<n>` as one number; `None` for an id that is not one.
pub(crate) fn event_id(stream_id: &str) -> Option<u64> {
    let (ms, n) = stream_id.split_once('-')?;
    let (ms, n) = (ms.parse::<u64>().ok()?, n.parse::<u64>().ok()?);
    ms.checked_mul(2_000)?.checked_add(n.min(1_999))
}

impl Cluster {
    /// Sends `feed`'s events to the cluster's stream and feeds it the stream's events (two
    /// threads, joined by [`Cluster::stop`]).
    pub fn attach_feed(self: &Arc<Self>, feed: &Arc<Feed>) -> std::io::Result<()> {
        let (out, queued) = std_mpsc::sync_channel::<Vec<u8>>(self.config.publish_queue_len_max);
        let weak = Arc::downgrade(self);
        feed.forward_to(Box::new(move |event| {
            if out.try_send(event).is_err() {
                if let Some(cluster) = weak.upgrade() {
                    cluster.metrics.feed_dropped.fetch_add(1, Relaxed);
                }
            }
        }));
        let c = Arc::clone(self);
        let writer = std::thread::Builder::new()
            .name("cluster-feed-out".into())
            .spawn(move || c.feed_out_loop(&queued))?;
        let c = Arc::clone(self);
        let feed = Arc::clone(feed);
        let reader = std::thread::Builder::new()
            .name("cluster-feed-in".into())
            .spawn(move || c.feed_in_loop(&feed))?;
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend([writer, reader]);
        Ok(())
    }

    /// Writes each event, in order; while Redis is away it retries the one at hand, and the
    /// bounded queue behind it drops what overflows (`tandem_cluster_feed_events_dropped_total`).
    fn feed_out_loop(&self, queued: &std_mpsc::Receiver<Vec<u8>>) {
        while !self.stop.load(Relaxed) {
            let Ok(event) = queued.recv_timeout(self.config.heartbeat_interval) else {
                continue;
            };
            while !self.stop.load(Relaxed) {
                match self.store.add_event(&event, self.config.events_len_max) {
                    Ok(_) => {
                        self.metrics.feed_out.fetch_add(1, Relaxed);
                        break;
                    }
                    Err(e) => {
                        self.metrics.redis_errors.fetch_add(1, Relaxed);
                        tracing::warn!(error = %e, "writing a feed event failed; retrying");
                        std::thread::sleep(self.config.heartbeat_interval);
                    }
                }
            }
        }
    }

    /// Takes the newest events the feed keeps, then follows the stream.
    fn feed_in_loop(&self, feed: &Feed) {
        let mut cursor: Option<String> = None;
        let mut conn = None;
        let read_timeout =
            self.config.read_block + tandem_storage::redis_store::conn::RESPONSE_TIMEOUT;
        while !self.stop.load(Relaxed) {
            let read = match (&cursor, &mut conn) {
                (None, _) => self.store.newest_events(feed.kept()).map(|events| {
                    let next = events
                        .last()
                        .map_or_else(|| "0-0".into(), |(id, _)| id.clone());
                    (events, next)
                }),
                (Some(_), None) => match self.store.connection() {
                    Ok(c) => {
                        let _ = c.set_read_timeout(read_timeout);
                        conn = Some(c);
                        continue;
                    }
                    Err(e) => Err(e),
                },
                (Some(from), Some(c)) => RedisStore::events_after(
                    c,
                    from,
                    self.config.read_block,
                    self.config.read_len_max,
                ),
            };
            match read {
                Ok((events, next)) => {
                    for (id, bytes) in events {
                        let event = event_id(&id).and_then(|id| FeedEvent::from_wire(id, &bytes));
                        if let Some(event) = event {
                            self.metrics.feed_in.fetch_add(1, Relaxed);
                            feed.insert(event);
                        }
                    }
                    cursor = Some(next);
                }
                Err(e) => {
                    self.metrics.redis_errors.fetch_add(1, Relaxed);
                    tracing::warn!(error = %e, "reading the feed stream failed; retrying");
                    conn = None;
                    std::thread::sleep(self.config.read_block);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::event_id;

    #[test]
    fn stream_ids_become_increasing_numbers() {
        assert_eq!(event_id("1764720000000-0"), Some(3_529_440_000_000_000));
        assert_eq!(event_id("1764720000000-7"), Some(3_529_440_000_000_007));
        assert!(event_id("1764720000000-999999") < event_id("1764720000001-0"));
        // Exact as a JavaScript number (2^53) for the next century.
        assert!(event_id("4354000000000-1999") < Some(1 << 53));
        assert_eq!(event_id("nonsense"), None);
        assert_eq!(event_id("1-x"), None);
    }
}
