//! Group commit: many rooms ask for a flush, one fsync answers them all.
//!
//! A room appends its batch of updates to the store (cheap, in memory) and then awaits
//! [`Durability::flush`]. Requests that arrive while a flush is running are served together by
//! the next one, so under load the number of fsyncs stays near one per flush latency, whatever
//! the number of rooms and keystrokes, and no update is acknowledged before it is on disk.

use std::sync::Arc;
use std::time::Instant;

use tandem_storage::DocStore;
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;

/// Flush waiters queued at once; a full queue makes rooms wait, which is the back-pressure
/// we want when the disk is the bottleneck.
const FLUSH_WAITERS_MAX: usize = 4096;

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub struct Durability {
    requests: mpsc::Sender<Waiter>,
}

impl Durability {
    pub fn start(store: Arc<dyn DocStore>, metrics: Arc<Metrics>) -> Self {
        let (requests, rx) = mpsc::channel(FLUSH_WAITERS_MAX);
        tokio::spawn(flush_loop(store, metrics, rx));
        Durability { requests }
    }

    /// Returns once every append made before this call is durable, or the flush's error.
    pub async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(tx)
            .await
            .map_err(|_| "flusher stopped".to_string())?;
        rx.await.map_err(|_| "flusher stopped".to_string())?
    }
}

async fn flush_loop(
    store: Arc<dyn DocStore>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Waiter>,
) {
    while let Some(first) = rx.recv().await {
        let mut waiters = vec![first];
        while let Ok(next) = rx.try_recv() {
            waiters.push(next);
        }
        let started = Instant::now();
        let store = Arc::clone(&store);
        let result = match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("flush task failed: {e}")),
        };
        metrics.observe_persist(started.elapsed());
        metrics
            .flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = &result {
            metrics
                .flush_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(cause = %e, waiters = waiters.len(), "store flush failed");
        }
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}
