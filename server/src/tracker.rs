//! A count of the tasks shutdown must wait for, and a way to wait until it is zero.
//!
//! Every room task, websocket connection, HTTP connection and compaction holds a [`Tracked`]
//! token for as long as it runs; shutdown awaits [`Tracker::idle`] instead of polling. The
//! token is taken *before* the task is spawned, by the code that spawns it, so the count never
//! reads zero while a task is on its way; and it is released by `Drop`, so a task that panics
//! is not waited for forever.

use tokio::sync::watch;

/// Counts live [`Tracked`] tokens.
#[derive(Debug)]
pub struct Tracker {
    open: watch::Sender<usize>,
}

/// Held by one tracked task; dropping it ends the task's share.
#[derive(Debug)]
pub struct Tracked {
    open: watch::Sender<usize>,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            open: watch::Sender::new(0),
        }
    }
}

impl Tracker {
    /// A token for a task about to start.
    pub fn track(&self) -> Tracked {
        self.open.send_modify(|n| *n += 1);
        Tracked {
            open: self.open.clone(),
        }
    }

    /// Tasks tracked now.
    pub fn len(&self) -> usize {
        *self.open.borrow()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns once no token is held (at once if none is). Tokens taken later make it wait
    /// again only if it has not returned yet.
    pub async fn idle(&self) {
        let mut open = self.open.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = open.wait_for(|&n| n == 0).await;
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Tracker;

    // Idle waits for the last token, however many there were and in whatever order they go,
    // and returns at once when there are none. Paused time: the sleeps cost nothing.
    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_the_last_token() {
        let tracker = std::sync::Arc::new(Tracker::default());
        tracker.idle().await;
        let tokens: Vec<_> = (0..3).map(|_| tracker.track()).collect();
        assert_eq!(tracker.len(), 3);
        let started = tokio::time::Instant::now();
        for (i, token) in tokens.into_iter().enumerate() {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(3 - u64::try_from(i).unwrap_or(0))).await;
                drop(token);
            });
        }
        tracker.idle().await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert!(tracker.is_empty());
    }

    // A task that panics still gives its token back.
    #[tokio::test]
    async fn a_panicking_task_is_not_waited_for() {
        let tracker = Tracker::default();
        let token = tracker.track();
        let task = tokio::spawn(async move {
            let _token = token;
            panic!("boom");
        });
        assert!(task.await.is_err());
        tokio::time::timeout(Duration::from_secs(1), tracker.idle())
            .await
            .expect("idle after the panic");
    }
}
