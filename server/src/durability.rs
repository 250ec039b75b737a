//! Group commit: rooms hand over the updates of a batch, one worker appends everything waiting
//! and flushes once, and every room hears back when its updates are durable.
//!
//! Appending and flushing both run on the committer's own thread, never on a room's task: with
//! the Redis store an append is a network round trip, and with sled a flush is an fsync, and
//! neither may stall the other documents on a worker thread. The thread takes requests straight
//! from the rooms and answers them itself: a commit is two wake-ups (the committer's, then each
//! room's), where an async committer handing each commit to a blocking thread took four
//! (issue 16: per-update context switches were the largest cost with many documents). Requests
//! that arrive while a commit runs are
//! served together by the next one, so under load the number of fsyncs stays near one per
//! flush latency, whatever the number of rooms and keystrokes, and no update is acknowledged
//! before it is on disk.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tandem_storage::{DocStore, NewHookEvent, NewNotification};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// One update to store.
#[derive(Debug, Clone)]
pub struct Append {
    pub doc: Arc<str>,
    pub author: Arc<str>,
    pub time_ms: u64,
    pub update: Bytes,
}

/// What the committer is asked.
enum Job {
    Commit(Request),
    /// Shutdown's final flush is done: let go of the store.
    Stop,
}

struct Request {
    appends: Vec<Append>,
    /// Inbox entries the appends' changes make; stored after them, made durable by the same flush.
    notifications: Vec<NewNotification>,
    /// Webhook events the changes make, queued on their endpoints' outboxes before the flush.
    hooks: Vec<NewHookEvent>,
    reply: oneshot::Sender<Result<(), String>>,
}

#[derive(Clone)]
pub struct Durability {
    requests: mpsc::Sender<Job>,
}

impl Durability {
    /// `waiters_max` bounds the requests queued at once; a full queue makes rooms wait, which
    /// is the back-pressure we want when the disk is the bottleneck.
    /// The committer runs until `release` turns true (after shutdown's final flush); its handle
    /// tells when it has let go of the store.
    pub fn start(
        store: Arc<dyn DocStore>,
        metrics: Arc<Metrics>,
        waiters_max: usize,
        release: watch::Receiver<bool>,
    ) -> (Self, JoinHandle<()>) {
        let (requests, rx) = mpsc::channel(waiters_max.max(1));
        // A thread of its own, not one of the runtime's blocking pool: a runtime dropped before
        // its `App` (a test's, a fuzz target's) waits for its blocking threads, and this one
        // waits for the `App`'s senders. Its end is awaited through a task like the others.
        let (ended, end) = oneshot::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("tandem-committer".into())
            .spawn(move || {
                commit_loop(&*store, &metrics, rx);
                // Let go of the store before saying so: whoever awaits the end may reopen it.
                drop(store);
                let _ = ended.send(());
            });
        if let Err(e) = spawned {
            // Without a committer every commit fails ("committer stopped"): rooms refuse
            // writes and /health reports it, rather than the process aborting.
            tracing::error!(cause = %e, "could not start the committer thread");
        }
        let task = tokio::spawn(async move {
            let _ = end.await;
        });
        let stop = requests.clone();
        tokio::spawn(async move {
            let mut release = release;
            // Released, or nobody left to say so: either way the committer is done.
            let _ = release.wait_for(|r| *r).await;
            let _ = stop.send(Job::Stop).await;
        });
        (Durability { requests }, task)
    }

    /// Appends `appends` in order, delivers `notifications` and queues `hooks`, and returns once
    /// they, and every append made before this call, are durable; or the store's error.
    pub async fn commit(
        &self,
        appends: Vec<Append>,
        notifications: Vec<NewNotification>,
        hooks: Vec<NewHookEvent>,
    ) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Job::Commit(Request {
                appends,
                notifications,
                hooks,
                reply,
            }))
            .await
            .map_err(|_| "committer stopped".to_string())?;
        answer.await.map_err(|_| "committer stopped".to_string())?
    }

    /// Returns once every append made before this call is durable.
    pub async fn flush(&self) -> Result<(), String> {
        self.commit(Vec::new(), Vec::new(), Vec::new()).await
    }
}

/// The committer thread: takes every request waiting, commits them with one flush, answers
/// each, until told to stop.
fn commit_loop(store: &dyn DocStore, metrics: &Metrics, mut rx: mpsc::Receiver<Job>) {
    let mut stopping = false;
    while !stopping {
        let mut requests = Vec::new();
        let mut next = rx.blocking_recv();
        while let Some(job) = next {
            match job {
                Job::Commit(request) => requests.push(request),
                // Requests already queued are still committed: their rooms wait for them.
                Job::Stop => stopping = true,
            }
            next = rx.try_recv().ok();
        }
        if requests.is_empty() {
            // Stopped, or every sender is gone (nothing more can come).
            if rx.is_closed() || stopping {
                return;
            }
            continue;
        }
        let started = Instant::now();
        // A panic in a store call fails this commit's requests, not the committer: a thread
        // that unwound would leave every later commit failing ("committer stopped") while
        // /health, whose probe reaches the store itself, reported it well.
        let results =
            std::panic::catch_unwind(AssertUnwindSafe(|| commit(store, metrics, &requests)))
                .unwrap_or_else(|_| {
                    vec![Err("the store panicked during a commit".to_string()); requests.len()]
                });
        metrics.observe_persist(started.elapsed());
        metrics
            .flushes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (request, result) in requests.into_iter().zip(results) {
            if let Err(e) = &result {
                metrics
                    .flush_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(cause = %e, "commit failed");
            }
            let _ = request.reply.send(result);
        }
    }
}

/// Appends every request's updates (and stores the notifications and webhook events they make),
/// then flushes once. A request whose append failed gets that error (its later appends are
/// skipped); every request gets the flush's error.
fn commit(
    store: &dyn DocStore,
    metrics: &Metrics,
    requests: &[Request],
) -> Vec<Result<(), String>> {
    let mut results: Vec<Result<(), String>> = requests
        .iter()
        .map(|request| {
            request
                .appends
                .iter()
                .try_for_each(|a| {
                    store
                        .append(&a.doc, &a.author, a.time_ms, &a.update)
                        .map(|_| ())
                })
                .and_then(|()| store.deliver(&request.notifications).map(|_| ()))
                .and_then(|()| {
                    let parked = store.enqueue(&request.hooks)?;
                    metrics.webhooks.parked(&parked);
                    Ok(())
                })
                .map_err(|e| e.to_string())
        })
        .collect();
    if let Err(e) = store.flush() {
        let e = e.to_string();
        results.iter_mut().for_each(|r| *r = Err(e.clone()));
    }
    results
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use tandem_storage::fault::FaultyStore;
    use tandem_storage::memory::MemStore;
    use tandem_storage::DocStore;
    use tokio::sync::watch;

    use super::{Append, Durability};
    use crate::metrics::Metrics;

    // A store call that panics fails the commit it was part of; the committer goes on, and the
    // next commit is stored and acknowledged (it used to find the committer gone for good).
    #[tokio::test]
    async fn a_panic_in_the_store_fails_one_commit_not_the_committer() {
        let store = Arc::new(FaultyStore::new(MemStore::new(Default::default())));
        store.panic_append_at(1);
        let (release, released) = watch::channel(false);
        let (durability, ended) =
            Durability::start(store.clone(), Arc::new(Metrics::default()), 8, released);
        let append = || Append {
            doc: Arc::from("d"),
            author: Arc::from("ada"),
            time_ms: 1,
            update: Bytes::from_static(&[0, 0]),
        };
        let failed = durability
            .commit(vec![append()], Vec::new(), Vec::new())
            .await;
        assert!(failed.is_err_and(|e| e.contains("panicked")));
        durability
            .commit(vec![append()], Vec::new(), Vec::new())
            .await
            .expect("the committer carries on");
        let stored = store.load("d").expect("loads").expect("stored");
        assert_eq!(stored.tail.len(), 1, "the second append, once");
        let _ = release.send(true);
        ended.await.expect("the committer ends");
    }
}
