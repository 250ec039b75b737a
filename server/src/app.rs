//! The state every part of a running server shares.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tandem_storage::DocStore;
use tokio::sync::{watch, Semaphore};

use crate::abuse::{IpLimits, OpenSlots, WindowLimiter};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::durability::Durability;
use crate::feed::Feed;
use crate::metrics::Metrics;
use crate::rooms::Rooms;

pub struct App {
    pub config: Config,
    pub store: Arc<dyn DocStore>,
    pub metrics: Arc<Metrics>,
    pub durability: Durability,
    pub rooms: Rooms,
    /// Typed change events for `GET /api/events`.
    pub feed: Arc<Feed>,
    /// Who is online on each document (authenticated sockets).
    pub online: Arc<crate::people::online::Online>,
    /// Wakes notification streams when an inbox grows.
    pub notifier: crate::people::notices::Notifier,
    /// The people directory's names.
    pub people: crate::people::Names,
    /// Cluster mode (`--redis`): cross-node updates and presence.
    pub cluster: Option<Arc<Cluster>>,
    /// One permit per open websocket: `connections_max`.
    pub connections: Arc<Semaphore>,
    pub ip_limits: IpLimits,
    /// Open sockets per user (`sockets_per_user_max`).
    pub user_sockets: Arc<OpenSlots<Arc<str>>>,
    /// Flips to true once, when the server starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Latched false by a storage failure: the operator must look before trusting this node.
    healthy: AtomicBool,
    unhealthy_cause: Mutex<Option<String>>,
    pub started: Instant,
}

impl App {
    /// Must be called inside a tokio runtime (it starts the group-commit task).
    pub fn new(
        config: Config,
        store: Arc<dyn DocStore>,
        cluster: Option<Arc<Cluster>>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let metrics = Arc::new(Metrics::default());
        let durability = Durability::start(
            Arc::clone(&store),
            Arc::clone(&metrics),
            config.limits.commit_waiters_max,
        );
        let connections = Arc::new(Semaphore::new(config.limits.connections_max));
        let minute = std::time::Duration::from_secs(60);
        let ip_limits = IpLimits {
            connections: WindowLimiter::new(config.limits.connections_per_ip_per_min, minute),
            auth_failures: WindowLimiter::new(config.limits.auth_failures_per_ip_per_min, minute),
        };
        let feed = Arc::new(Feed::new(config.limits.feed_events_kept));
        let people = crate::people::Names::default();
        people.load(store.as_ref());
        Arc::new(App {
            config,
            store,
            metrics,
            durability,
            rooms: Rooms::default(),
            feed,
            online: Arc::default(),
            notifier: Default::default(),
            people,
            cluster,
            connections,
            ip_limits,
            user_sockets: Arc::default(),
            shutdown,
            healthy: AtomicBool::new(true),
            unhealthy_cause: Mutex::new(None),
            started: Instant::now(),
        })
    }

    pub fn mark_unhealthy(&self, cause: &str) {
        self.healthy.store(false, Relaxed);
        let mut slot = self
            .unhealthy_cause
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert_with(|| cause.to_string());
    }

    /// `None` when healthy, else the first failure seen.
    pub fn health_problem(&self) -> Option<String> {
        if self.healthy.load(Relaxed) {
            return None;
        }
        let slot = self
            .unhealthy_cause
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Some(slot.clone().unwrap_or_else(|| "storage failure".into()))
    }
}
