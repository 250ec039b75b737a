//! Per-endpoint webhook metrics, rendered into `/metrics` with an `endpoint` label (the
//! endpoint's id, as `GET /api/admin/webhooks` lists it) and read by the admin listing.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::metrics::{Buckets, Histogram};

/// The delivery latency buckets: from the change to the receiver's 2xx, so retries and a
/// receiver's outage show in the tail.
pub struct LatencyBuckets;

impl Buckets for LatencyBuckets {
    const BOUNDS_S: &'static [f64] = &[
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0,
    ];
}

/// One endpoint's counts since this process started, and its outbox as last seen.
#[derive(Default)]
pub struct EndpointStats {
    pub delivered: AtomicU64,
    /// Attempts that failed (a non-2xx answer, a timeout, a refused connection).
    pub failed: AtomicU64,
    /// Attempts that repeated an earlier failed one.
    pub retried: AtomicU64,
    /// Events parked as dead after `--webhook-age-max-s`.
    pub dead: AtomicU64,
    /// Events parked because the outbox passed `--webhook-outbox-len-max`.
    pub parked: AtomicU64,
    /// Waiting and dead events in the store, as the delivery task last read them.
    pub depth: AtomicU64,
    pub dead_depth: AtomicU64,
    pub latency: Histogram<LatencyBuckets>,
    pub last_error: Mutex<Option<String>>,
}

impl EndpointStats {
    pub fn set_error(&self, error: Option<String>) {
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error;
    }

    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Every endpoint's stats, by id.
#[derive(Default)]
pub struct HookMetrics {
    by_endpoint: RwLock<BTreeMap<String, Arc<EndpointStats>>>,
}

impl HookMetrics {
    /// The stats of `endpoint`, made on first use.
    pub fn endpoint(&self, endpoint: &str) -> Arc<EndpointStats> {
        if let Some(s) = self
            .by_endpoint
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
        {
            return Arc::clone(s);
        }
        let mut all = self
            .by_endpoint
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(all.entry(endpoint.to_string()).or_default())
    }

    /// The store parked one event of each listed endpoint to keep its bound.
    pub fn parked(&self, endpoints: &[String]) {
        for e in endpoints {
            let stats = self.endpoint(e);
            stats.parked.fetch_add(1, Relaxed);
            stats.dead_depth.fetch_add(1, Relaxed);
        }
    }

    pub fn render(&self, out: &mut String) {
        let all = self
            .by_endpoint
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if all.is_empty() {
            return;
        }
        type Read = fn(&EndpointStats) -> &AtomicU64;
        let series: [(&str, &str, &str, Read); 7] = [
            (
                "tandem_webhook_delivered_total",
                "counter",
                "Webhook events delivered (a 2xx answer).",
                |s| &s.delivered,
            ),
            (
                "tandem_webhook_failed_total",
                "counter",
                "Webhook delivery attempts that failed.",
                |s| &s.failed,
            ),
            (
                "tandem_webhook_retried_total",
                "counter",
                "Webhook delivery attempts that repeated a failed one.",
                |s| &s.retried,
            ),
            (
                "tandem_webhook_dead_total",
                "counter",
                "Webhook events parked as dead after the age limit.",
                |s| &s.dead,
            ),
            (
                "tandem_webhook_parked_total",
                "counter",
                "Webhook events parked because the outbox was full.",
                |s| &s.parked,
            ),
            (
                "tandem_webhook_outbox_depth",
                "gauge",
                "Webhook events waiting in the outbox.",
                |s| &s.depth,
            ),
            (
                "tandem_webhook_dead",
                "gauge",
                "Dead webhook events kept for a retry.",
                |s| &s.dead_depth,
            ),
        ];
        for (name, kind, help, read) in series {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, s) in all.iter() {
                let _ = writeln!(out, "{name}{{endpoint=\"{id}\"}} {}", read(s).load(Relaxed));
            }
        }
        let name = "tandem_webhook_delivery_latency_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} From the change to the receiver's 2xx.\n# TYPE {name} histogram"
        );
        for (id, s) in all.iter() {
            s.latency.render(out, name, &format!("endpoint=\"{id}\","));
        }
    }
}
