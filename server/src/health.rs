//! What `/health` says about the store: its present state, not its worst moment.
//!
//! A failed commit (or any store call a room cannot do without) records a failure; from then on
//! a prober asks the store every `store_probe_interval` whether it works again
//! ([`DocStore::probe`]: a flush for sled, a `PING` for Redis) and clears the failure once it
//! does. So `/health` turns 503 with the first failure and back to 200 by itself within one
//! interval of the store's recovery, which is what a load balancer needs: a Redis restart no
//! longer takes every node out of rotation for good.
//!
//! Recovery changes nothing about what the failure refused: the room that failed has already
//! answered its batch with errors and closed its sockets (see `room::Room::fail`), and an update
//! is acknowledged only after its own commit succeeds.

use std::sync::Arc;
use std::time::Duration;

use tandem_storage::{DocStore, StoreError};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The latest store failure not yet followed by a working probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct State {
    failure: Option<String>,
    /// Counts failures, so a probe that started before a failure does not clear it.
    failures: u64,
}

#[derive(Debug, Default)]
pub struct Health {
    state: watch::Sender<State>,
}

impl Health {
    /// The store just failed with `cause`.
    pub fn store_failed(&self, cause: &str) {
        self.state.send_modify(|s| {
            s.failure = Some(cause.to_string());
            s.failures += 1;
        });
    }

    /// `None` while the store works, else its latest failure.
    pub fn store_problem(&self) -> Option<String> {
        self.state.borrow().failure.clone()
    }

    /// Clears the failure if none was recorded since `failures` was read.
    fn recovered(&self, failures: u64) {
        self.state.send_if_modified(|s| {
            let clear = s.failures == failures && s.failure.is_some();
            if clear {
                s.failure = None;
            }
            clear
        });
    }
}

/// Probes the store every `interval` while a failure is recorded, until `stop` turns true.
pub async fn probe_loop(
    health: Arc<Health>,
    store: Arc<dyn DocStore>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut state = health.state.subscribe();
    // A probe that outlived its interval (a Redis that accepts but never answers): waited for
    // again rather than joined by a new one, so a hung store holds one blocking thread, not one
    // more per interval.
    // Each probe keeps the failure count from when it started: it vouches for nothing later.
    let mut unfinished: Option<(u64, JoinHandle<Result<(), StoreError>>)> = None;
    loop {
        tokio::select! {
            _ = state.wait_for(|s| s.failure.is_some()) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stop| *stop) => break,
        }
        let (failures, mut probe) = unfinished.take().unwrap_or_else(|| {
            let store = Arc::clone(&store);
            let failures = health.state.borrow().failures;
            (failures, tokio::task::spawn_blocking(move || store.probe()))
        });
        // A store that hangs is as broken as one that fails: the probe gets one interval.
        match tokio::time::timeout(interval, &mut probe).await {
            Ok(Ok(Ok(()))) => {
                tracing::info!("the store works again; /health reports ok");
                health.recovered(failures);
            }
            Ok(Ok(Err(e))) => tracing::debug!(cause = %e, "store probe failed"),
            Ok(Err(e)) => tracing::warn!(cause = %e, "store probe panicked"),
            Err(_) => {
                tracing::debug!("store probe did not finish within its interval");
                unfinished = Some((failures, probe));
            }
        }
    }
    // The probe holds the store: whoever awaits this task's end may reopen it. A store that
    // still hangs gets one more interval.
    if let Some((_, probe)) = unfinished {
        let _ = tokio::time::timeout(interval, probe).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tandem_storage::fault::FaultyStore;
    use tandem_storage::memory::MemStore;
    use tokio::sync::watch;

    use super::{probe_loop, Health};

    // A failure stays reported while probes fail and clears with the first one that works;
    // a failure recorded after that is reported again. Paused time: one interval is one second
    // of virtual time, so the timeline is exact.
    #[tokio::test(start_paused = true)]
    async fn a_failure_clears_with_the_first_working_probe() {
        let store = Arc::new(FaultyStore::new(MemStore::new(Default::default())));
        store.fail_flush_at(2); // the second probe fails, the third works
        let health = Arc::new(Health::default());
        let (stop, stopped) = watch::channel(false);
        let interval = Duration::from_secs(1);
        let prober = tokio::spawn(probe_loop(
            Arc::clone(&health),
            store.clone(),
            interval,
            stopped,
        ));
        let step = |secs: f64| tokio::time::sleep(Duration::from_secs_f64(secs));

        step(5.0).await;
        assert_eq!(health.store_problem(), None, "no failure, no probe");
        health.store_failed("disk on fire");
        step(0.5).await;
        assert_eq!(health.store_problem().as_deref(), Some("disk on fire"));
        step(1.0).await; // the first probe (flush 1) works
        assert_eq!(health.store_problem(), None);

        health.store_failed("again");
        step(1.5).await; // the second probe (flush 2) fails
        assert_eq!(health.store_problem().as_deref(), Some("again"));
        step(1.0).await; // the third works
        assert_eq!(health.store_problem(), None);

        let _ = stop.send(true);
        prober.await.expect("the prober stops");
    }

    // A probe that hangs (a store that accepts but never answers) keeps the failure reported
    // and is waited for again, never joined by a second one: one blocking thread, however many
    // intervals pass. When it finally answers, the failure clears. Real time: the hung probe is
    // a blocking thread, which paused time would wait for.
    #[tokio::test]
    async fn a_hung_probe_is_not_joined_by_another() {
        let store = Arc::new(FaultyStore::new(MemStore::new(Default::default())));
        store.hold_flushes(true);
        let health = Arc::new(Health::default());
        let (stop, stopped) = watch::channel(false);
        let interval = Duration::from_millis(20);
        let prober = tokio::spawn(probe_loop(
            Arc::clone(&health),
            store.clone(),
            interval,
            stopped,
        ));
        health.store_failed("hung");
        tokio::time::sleep(interval * 15).await;
        assert_eq!(store.flushes_begun(), 1, "one probe at a time");
        assert_eq!(health.store_problem().as_deref(), Some("hung"));
        store.hold_flushes(false);
        let started = std::time::Instant::now();
        while health.store_problem().is_some() {
            assert!(started.elapsed() < interval * 50, "still reported");
            tokio::time::sleep(interval / 4).await;
        }
        let _ = stop.send(true);
        prober.await.expect("the prober stops");
    }
}
