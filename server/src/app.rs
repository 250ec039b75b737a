//! The state every part of a running server shares.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use tandem_storage::DocStore;
use tokio::sync::{watch, Semaphore};

use crate::abuse::{IpLimits, OpenSlots, WindowLimiter};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::durability::Durability;
use crate::feed::Feed;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::rooms::Rooms;
use crate::tracker::Tracker;

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
    /// Webhook endpoints: rooms queue their events in the group commit, one task per endpoint
    /// delivers them.
    pub webhooks: Arc<crate::webhooks::Webhooks>,
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
    /// The store's present state, for `/health`.
    pub health: Arc<Health>,
    /// The tasks shutdown waits for: rooms, sockets, HTTP connections, compactions.
    pub tasks: Tracker,
    /// The background tasks that keep the store open until shutdown lets them go.
    pub store_users: StoreUsers,
    pub started: Instant,
}

/// The committer, the health prober and the webhook delivery tasks: they outlive every room and request, and hold the
/// store, so shutdown releases them last and waits until they have let go of it (a restart on
/// the same directory may then open it at once).
pub struct StoreUsers {
    release: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl StoreUsers {
    /// Stops them and waits until they have ended.
    pub async fn release(&self) {
        let _ = self.release.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl App {
    /// Must be called inside a tokio runtime (it starts the group-commit task and the store
    /// prober).
    pub fn new(
        mut config: Config,
        store: Arc<dyn DocStore>,
        cluster: Option<Arc<Cluster>>,
        shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        if config.auth.is_none() && config.dev_login_secret.is_none() {
            // Open development mode lets everyone do everything, but the demo still tells people
            // apart with tokens from /api/dev/token, signed with a key of this process.
            config.dev_login_secret = Some(crate::auth::ephemeral_secret());
        }
        let metrics = Arc::new(Metrics::default());
        let (release_store, released) = watch::channel(false);
        let (durability, committer) = Durability::start(
            Arc::clone(&store),
            Arc::clone(&metrics),
            config.limits.commit_waiters_max,
            released,
        );
        let connections = Arc::new(Semaphore::new(config.limits.connections_max));
        let minute = std::time::Duration::from_secs(60);
        let ip_limits = IpLimits {
            connections: WindowLimiter::new(config.limits.connections_per_ip_per_min, minute),
            auth_failures: WindowLimiter::new(config.limits.auth_failures_per_ip_per_min, minute),
        };
        let feed = Arc::new(Feed::new(config.limits.feed_events_kept));
        if let Some(cluster) = &cluster {
            if let Err(e) = cluster.attach_feed(&feed) {
                tracing::error!(error = %e, "starting the cluster feed threads failed");
            }
        }
        let people = crate::people::Names::default();
        people.load(store.as_ref());
        let health = Arc::new(Health::default());
        let prober = tokio::spawn(crate::health::probe_loop(
            Arc::clone(&health),
            Arc::clone(&store),
            config.timing.store_probe_interval,
            shutdown.clone(),
        ));
        let webhooks = Arc::new(crate::webhooks::Webhooks::new(&config.webhooks, &metrics));
        let mut store_tasks = vec![committer, prober];
        store_tasks.extend(webhooks.start(&store, &shutdown));
        Arc::new(App {
            webhooks,
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
            health,
            tasks: Tracker::default(),
            store_users: StoreUsers {
                release: release_store,
                tasks: Mutex::new(store_tasks),
            },
            started: Instant::now(),
        })
    }

    /// `None` when this node can serve, else why not: the store failed and has not answered a
    /// probe since, or (cluster mode) this node cannot refresh its liveness key in Redis.
    pub fn health_problem(&self) -> Option<String> {
        if let Some(problem) = self.health.store_problem() {
            return Some(problem);
        }
        let cluster = self.cluster.as_ref()?;
        (!cluster.metrics.node_lease_ok.load(Relaxed))
            .then(|| "Redis is unreachable: this node cannot refresh its lease".to_string())
    }
}
