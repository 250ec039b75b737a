//! Counters and the persist-latency histogram, rendered in the Prometheus text format.
//!
//! Hand-written rather than a metrics crate: a dozen atomics and one fixed-bucket histogram
//! need no registry, no global state and no extra dependencies, and every name is visible here.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// The upper bounds of a histogram's buckets, in seconds.
pub trait Buckets {
    const BOUNDS_S: &'static [f64];
}

/// The persist (flush) latency buckets.
pub struct PersistBuckets;

impl Buckets for PersistBuckets {
    const BOUNDS_S: &'static [f64] = &[
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ];
}

/// A Prometheus histogram of durations with the buckets of `B`.
pub struct Histogram<B> {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_us: AtomicU64,
    of: std::marker::PhantomData<B>,
}

impl<B: Buckets> Default for Histogram<B> {
    fn default() -> Self {
        Histogram {
            buckets: B::BOUNDS_S.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
            of: std::marker::PhantomData,
        }
    }
}

impl<B: Buckets> Histogram<B> {
    pub fn observe(&self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bound, bucket) in B::BOUNDS_S.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(micros, Relaxed);
    }

    /// Writes the series of `name` (its HELP and TYPE lines are the caller's), each with
    /// `labels` (`endpoint="a1",`, or empty) before its `le`.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, bucket) in B::BOUNDS_S.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        #[allow(clippy::cast_precision_loss)] // a sum of microseconds stays far below 2^52
        let sum = self.sum_us.load(Relaxed) as f64 / 1e6;
        let plain = labels.trim_end_matches(',');
        let braces = if plain.is_empty() {
            String::new()
        } else {
            format!("{{{plain}}}")
        };
        let _ = writeln!(
            out,
            "{name}_sum{braces} {sum}\n{name}_count{braces} {count}"
        );
    }
}

/// The kinds of client a socket may speak for, as metrics and `/api/stats` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    YWebsocket,
    Hocuspocus,
}

impl Dialect {
    pub const ALL: [Dialect; 2] = [Dialect::YWebsocket, Dialect::Hocuspocus];

    pub fn name(self) -> &'static str {
        match self {
            Dialect::YWebsocket => "y-websocket",
            Dialect::Hocuspocus => "hocuspocus",
        }
    }

    fn index(self) -> usize {
        match self {
            Dialect::YWebsocket => 0,
            Dialect::Hocuspocus => 1,
        }
    }
}

/// Counts one attachment of a socket to a document for as long as it lives.
pub struct Attachment {
    metrics: Arc<Metrics>,
    dialect: Dialect,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.metrics.attachments[self.dialect.index()].fetch_sub(1, Relaxed);
    }
}

#[derive(Default)]
pub struct Metrics {
    pub connections_open: AtomicU64,
    pub connections_total: AtomicU64,
    pub rooms_open: AtomicU64,
    pub messages_in: AtomicU64,
    pub messages_out: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub updates_persisted: AtomicU64,
    pub updates_refused: AtomicU64,
    pub frames_rejected: AtomicU64,
    pub slow_consumers_closed: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_failures: AtomicU64,
    /// Commits retried by a room while Redis was unreachable (`--cluster-outage-grace-s`).
    pub commit_retries: AtomicU64,
    pub compactions: AtomicU64,
    pub auth_failures: AtomicU64,
    pub rate_limited: AtomicU64,
    /// Sync requests left unanswered past `sync_requests_per_min` (one socket, one document).
    pub sync_requests_dropped: AtomicU64,
    /// Stateless messages over `stateless_max_bytes`, not relayed.
    pub stateless_dropped: AtomicU64,
    /// Documents attached to sockets, by [`Dialect`]: one per y-websocket socket, one per
    /// document a Hocuspocus socket has open.
    attachments: [AtomicU64; 2],
    persist: Histogram<PersistBuckets>,
    /// Per webhook endpoint (`crate::webhooks`).
    pub webhooks: crate::webhooks::metrics::HookMetrics,
}

impl Metrics {
    /// Counts an attachment of `dialect` until the returned guard is dropped.
    pub fn attach(self: &Arc<Self>, dialect: Dialect) -> Attachment {
        self.attachments[dialect.index()].fetch_add(1, Relaxed);
        Attachment {
            metrics: Arc::clone(self),
            dialect,
        }
    }

    /// Open attachments of `dialect`.
    pub fn attachments(&self, dialect: Dialect) -> u64 {
        self.attachments[dialect.index()].load(Relaxed)
    }
    pub fn observe_persist(&self, took: Duration) {
        self.persist.observe(took);
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let gauge = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
                v.load(Relaxed)
            );
        };
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        };
        gauge(
            &mut out,
            "tandem_connections",
            "Open websocket connections.",
            &self.connections_open,
        );
        counter(
            &mut out,
            "tandem_connections_total",
            "Websocket connections accepted.",
            &self.connections_total,
        );
        gauge(
            &mut out,
            "tandem_rooms",
            "Documents loaded in memory.",
            &self.rooms_open,
        );
        counter(
            &mut out,
            "tandem_messages_in_total",
            "Protocol messages received.",
            &self.messages_in,
        );
        counter(
            &mut out,
            "tandem_messages_out_total",
            "Frames queued to sockets.",
            &self.messages_out,
        );
        counter(
            &mut out,
            "tandem_bytes_in_total",
            "Bytes received in websocket frames.",
            &self.bytes_in,
        );
        counter(
            &mut out,
            "tandem_bytes_out_total",
            "Bytes queued to sockets.",
            &self.bytes_out,
        );
        counter(
            &mut out,
            "tandem_updates_persisted_total",
            "Document updates appended to the store.",
            &self.updates_persisted,
        );
        counter(
            &mut out,
            "tandem_updates_refused_total",
            "Document updates refused (permission, size, invalid).",
            &self.updates_refused,
        );
        counter(
            &mut out,
            "tandem_frames_rejected_total",
            "Frames that closed their socket (malformed, oversized, text).",
            &self.frames_rejected,
        );
        counter(
            &mut out,
            "tandem_slow_consumers_closed_total",
            "Sockets closed because their outbound queue overflowed.",
            &self.slow_consumers_closed,
        );
        counter(
            &mut out,
            "tandem_flushes_total",
            "Store flushes (each one a group commit).",
            &self.flushes,
        );
        counter(
            &mut out,
            "tandem_flush_failures_total",
            "Store flushes that failed.",
            &self.flush_failures,
        );
        counter(
            &mut out,
            "tandem_commit_retries_total",
            "Commits a room retried, holding its batch, while Redis was unreachable.",
            &self.commit_retries,
        );
        counter(
            &mut out,
            "tandem_compactions_total",
            "Document compactions completed.",
            &self.compactions,
        );
        counter(
            &mut out,
            "tandem_auth_failures_total",
            "Requests refused for a missing or invalid token.",
            &self.auth_failures,
        );
        counter(
            &mut out,
            "tandem_rate_limited_total",
            "Sockets and requests refused by a rate limit.",
            &self.rate_limited,
        );
        counter(
            &mut out,
            "tandem_sync_requests_dropped_total",
            "Sync requests (SyncStep1, presence queries) left unanswered past --sync-requests-per-min.",
            &self.sync_requests_dropped,
        );
        counter(
            &mut out,
            "tandem_stateless_dropped_total",
            "Stateless messages over --stateless-max-bytes, not relayed.",
            &self.stateless_dropped,
        );
        let name = "tandem_attachments";
        let _ = writeln!(out, "# HELP {name} Documents attached to sockets, by dialect (a Hocuspocus socket may hold several).\n# TYPE {name} gauge");
        for dialect in Dialect::ALL {
            let _ = writeln!(
                out,
                "{name}{{dialect=\"{}\"}} {}",
                dialect.name(),
                self.attachments(dialect)
            );
        }
        let name = "tandem_persist_seconds";
        let _ = writeln!(out, "# HELP {name} Time to make a batch of updates durable (one flush).\n# TYPE {name} histogram");
        self.persist.render(&mut out, name, "");
        self.webhooks.render(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The histogram is cumulative, as Prometheus requires: a 3 ms flush lands in every bucket
    // from 5 ms up, and in the count.
    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.observe_persist(Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("tandem_persist_seconds_bucket{le=\"0.0025\"} 0"));
        assert!(text.contains("tandem_persist_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("tandem_persist_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("tandem_persist_seconds_count 1"));
    }

    // Attachments are counted by dialect for as long as their guard lives.
    #[test]
    fn attachments_by_dialect() {
        let m = Arc::new(Metrics::default());
        let a = m.attach(Dialect::Hocuspocus);
        let b = m.attach(Dialect::Hocuspocus);
        let c = m.attach(Dialect::YWebsocket);
        let text = m.render();
        assert!(
            text.contains("tandem_attachments{dialect=\"hocuspocus\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("tandem_attachments{dialect=\"y-websocket\"} 1"),
            "{text}"
        );
        drop((a, b, c));
        assert_eq!(m.attachments(Dialect::Hocuspocus), 0);
        assert_eq!(m.attachments(Dialect::YWebsocket), 0);
    }
}
