//! Riding out a Redis outage (cluster mode): a store call a room needs before it can acknowledge
//! anything (binding a client ID to its author, re-reading authorship, the commit) is retried
//! every `--store-probe-interval-ms` for `--cluster-outage-grace-s` before its failure is the
//! room's. Meanwhile the room answers nothing, so nothing is acknowledged; its sockets stay open
//! and `/health` reports the cause. On one node (sled) a failure is the room's at once: a local
//! disk that failed does not come back by waiting.

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use crate::app::App;

/// Runs `attempt` until it succeeds or the outage grace has passed since the first failure.
pub(super) async fn hold<T, F, Fut>(app: &App, doc: &str, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let grace = app
        .cluster
        .as_ref()
        .map_or(Duration::ZERO, |c| c.outage_grace());
    // Counted from the first failure, not from the first attempt.
    let mut give_up: Option<Instant> = None;
    loop {
        let result = attempt().await;
        let now = Instant::now();
        match result {
            Ok(done) => return Ok(done),
            Err(cause) if now < *give_up.get_or_insert(now + grace) => {
                tracing::warn!(doc = %doc, cause = %cause, "store call failed; holding and retrying");
                app.health.store_failed(&cause);
                app.metrics.commit_retries.fetch_add(1, Relaxed);
                tokio::time::sleep(app.config.timing.store_probe_interval).await;
            }
            Err(cause) => return Err(cause),
        }
    }
}
