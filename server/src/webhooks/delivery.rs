//! One endpoint's delivery task: its outbox, oldest first, one event at a time, each until the
//! receiver answers 2xx (at least once, in order), with exponential backoff and jitter between
//! attempts, and parked as dead once it is older than `--webhook-age-max-s`.
//!
//! Only this task waits on the receiver, so a slow or dead one never delays a room (which only
//! queues events in the group commit) or another endpoint (which has its own task). In cluster
//! mode every node runs this task for every endpoint, but only the holder of the endpoint's lease
//! in Redis delivers; the lease is checked before each attempt (renewed once a quarter of it has
//! passed) and during the waits between them, and outlives an attempt, so two nodes never
//! deliver one endpoint at once. A node killed
//! while holding it hands over once the lease expires, and its in-flight event is delivered again
//! (receivers dedupe by `X-Tandem-Delivery`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tandem_storage::{DocStore, HookEvent, StoreError};
use tokio::sync::watch;

use super::client::Client;
use super::config::WebhookConfig;
use super::{outbox, signing, EndpointState};
use crate::clock::{now_ms, now_s};
use crate::tracker::Tracker;

/// Events read from the outbox at once; the next read follows their delivery.
const READ_LEN: usize = 32;

pub struct Delivery {
    pub endpoint: Arc<EndpointState>,
    pub settings: WebhookConfig,
    pub secret: Vec<u8>,
    pub client: Client,
    pub store: Arc<dyn DocStore>,
    pub shutdown: watch::Receiver<bool>,
    /// When this node last took or renewed the endpoint's lease.
    pub renewed: std::sync::Mutex<Option<Instant>>,
    /// Store calls running on blocking threads. A stop drops the step that waits for one, not
    /// the call, which holds the store: the task ends once they have, so that whoever awaits
    /// its end may reopen the store.
    pub calls: Tracker,
}

/// How one event ended.
enum Done {
    Delivered,
    Dead,
    /// Another node holds the lease now (or the store failed): stop and look again later.
    Interrupted,
}

pub async fn run(mut d: Delivery) {
    let mut stop = d.shutdown.clone();
    loop {
        let busy = tokio::select! {
            busy = d.step() => busy,
            _ = stop.wait_for(|s| *s) => break,
        };
        if !busy {
            tokio::select! {
                () = d.endpoint.wake.notified() => {}
                () = tokio::time::sleep(d.settings.poll_interval) => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
    }
    d.calls.idle().await;
}

impl Delivery {
    fn id(&self) -> &str {
        &self.endpoint.config.id
    }

    /// Longer than an attempt plus a wait between two renewals.
    fn lease_ms(&self) -> u64 {
        let d = self.settings.timeout * 2 + self.settings.poll_interval;
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn DocStore, &str) -> Result<T, StoreError> + Send + 'static,
    ) -> Option<T> {
        let store = Arc::clone(&self.store);
        let id = self.id().to_string();
        let call = self.calls.track();
        let run = move || {
            let result = f(&*store, &id);
            drop(store);
            drop(call);
            result
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                tracing::warn!(endpoint = %self.id(), cause = %e, "webhook outbox unavailable");
                None
            }
            Err(e) => {
                tracing::error!(endpoint = %self.id(), cause = %e, "webhook outbox task failed");
                None
            }
        }
    }

    /// Whether this node may deliver now. Asked before every attempt; the store is asked again
    /// once a quarter of the lease has passed since the last renewal, so an attempt that starts
    /// on a lease still fresh ends (within the timeout) well before it could expire.
    async fn holds_lease(&self) -> bool {
        let ttl = self.lease_ms();
        let fresh = Duration::from_millis(ttl / 4);
        let last = *self.renewed.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| at.elapsed() < fresh) {
            return true;
        }
        let asked = Instant::now();
        let held = self
            .blocking(move |s, id| s.outbox_lease(id, ttl))
            .await
            .unwrap_or(false);
        *self.renewed.lock().unwrap_or_else(PoisonError::into_inner) = held.then_some(asked);
        held
    }

    /// Delivers what the outbox holds now; false when there was nothing to do (or it may not).
    async fn step(&mut self) -> bool {
        if let Some(counts) = self.blocking(|s, id| s.outbox_counts(id)).await {
            let stats = &self.endpoint.stats;
            stats.depth.store(counts.pending, Relaxed);
            stats.dead_depth.store(counts.dead, Relaxed);
        }
        if !self.holds_lease().await {
            return false;
        }
        let Some(batch) = self.blocking(|s, id| s.pending(id, READ_LEN)).await else {
            return false;
        };
        if batch.is_empty() {
            return false;
        }
        for event in batch {
            match self.deliver(&event).await {
                Done::Delivered | Done::Dead => {}
                Done::Interrupted => return false,
            }
        }
        true
    }

    /// Posts `event` until it is delivered, dead, or this node may no longer deliver.
    async fn deliver(&self, event: &HookEvent) -> Done {
        let stats = &self.endpoint.stats;
        let delivery = super::delivery_id(self.id(), event.id);
        let age_max_ms = u64::try_from(self.settings.age_max.as_millis()).unwrap_or(u64::MAX);
        for attempt in 1u32.. {
            if !self.holds_lease().await {
                return Done::Interrupted;
            }
            if attempt > 1 {
                stats.retried.fetch_add(1, Relaxed);
            }
            let error = match self.post(event, &delivery, attempt).await {
                Ok(()) => {
                    let id = event.id;
                    // Delivered even if the removal fails: the event is sent again later, which
                    // the receiver's dedupe absorbs.
                    let _ = self.blocking(move |s, e| s.remove_delivered(e, id)).await;
                    stats.delivered.fetch_add(1, Relaxed);
                    let _ = stats
                        .depth
                        .fetch_update(Relaxed, Relaxed, |d| Some(d.saturating_sub(1)));
                    stats.latency.observe(Duration::from_millis(
                        now_ms().saturating_sub(event.time_ms),
                    ));
                    stats.set_error(None);
                    return Done::Delivered;
                }
                Err(e) => e,
            };
            stats.failed.fetch_add(1, Relaxed);
            tracing::debug!(endpoint = %self.id(), delivery, attempt, cause = %error, "webhook delivery failed");
            stats.set_error(Some(error.clone()));
            // The age is checked after an attempt, so an event re-queued from the dead (old by
            // then) still gets one.
            if now_ms().saturating_sub(event.time_ms) > age_max_ms {
                let reason = format!("gave up after {attempt} attempts: {error}");
                let id = event.id;
                let Some(parked) = self.blocking(move |s, e| s.park(e, id, &reason)).await else {
                    return Done::Interrupted;
                };
                // Not parked: the outbox's bound parked it already, while it was being sent.
                if parked {
                    stats.dead.fetch_add(1, Relaxed);
                    stats.dead_depth.fetch_add(1, Relaxed);
                    let _ = stats
                        .depth
                        .fetch_update(Relaxed, Relaxed, |d| Some(d.saturating_sub(1)));
                    tracing::warn!(endpoint = %self.id(), delivery, "webhook event parked as dead");
                }
                return Done::Dead;
            }
            if !self.wait(backoff(&self.settings, attempt)).await {
                return Done::Interrupted;
            }
        }
        Done::Interrupted
    }

    async fn post(&self, event: &HookEvent, delivery: &str, attempt: u32) -> Result<(), String> {
        let body = outbox::request_body(&event.body, delivery, attempt);
        let timestamp = now_s();
        let headers = [
            ("x-tandem-event", event.event.clone()),
            ("x-tandem-delivery", delivery.to_string()),
            ("x-tandem-timestamp", timestamp.to_string()),
            (
                "x-tandem-signature",
                signing::sign(&self.secret, timestamp, &body),
            ),
        ];
        self.client
            .post(
                &self.endpoint.config.url,
                &headers,
                Bytes::from(body),
                self.settings.timeout,
            )
            .await
    }

    /// Waits `delay`, renewing the lease on the way; false if it was lost.
    async fn wait(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            tokio::time::sleep(left.min(self.settings.poll_interval)).await;
            if !self.holds_lease().await {
                return false;
            }
        }
    }
}

/// The wait after failed attempt `attempt` (1 = the first): the first delay doubled per attempt,
/// at most the maximum, then between half of it and all of it ("equal jitter"), so endpoints that
/// failed together do not retry in step.
pub fn backoff(settings: &WebhookConfig, attempt: u32) -> Duration {
    let doubled = settings
        .backoff_first
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let cap = doubled.min(settings.backoff_max);
    cap / 2 + cap.mul_f64(jitter() / 2.0)
}

/// A number in [0, 1): a fresh hasher per call is seeded from the process's random keys.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    #[allow(clippy::cast_precision_loss)] // 53 bits of a u64 are plenty of jitter
    let x = (h.finish() >> 11) as f64;
    x / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_maximum_with_jitter_in_its_upper_half() {
        let settings = WebhookConfig {
            backoff_first: Duration::from_secs(1),
            backoff_max: Duration::from_secs(600),
            ..WebhookConfig::default()
        };
        for (attempt, cap) in [(1, 1), (2, 2), (3, 4), (10, 512), (11, 600), (40, 600)] {
            let cap = Duration::from_secs(cap);
            for _ in 0..50 {
                let d = backoff(&settings, attempt);
                assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?}");
            }
        }
    }
}
