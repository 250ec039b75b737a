//! tandem: a Yjs sync server.
//!
//! Map of the crate, from the network inwards:
//! - [`accept`]: the accept loop: one task per HTTP connection, bounded time to send a request
//!   head, idle connections closed; the client address of each request.
//! - [`http`]: warp routes: `/sync/<doc>` (websocket), `/health`, `/api/stats`, `/metrics`, `/`.
//! - [`api`]: `/api/docs/<doc>/...`: one-round-trip HTTP sync for offline clients.
//! - [`connection`]: one websocket in the y-websocket dialect: decode, forward, keep alive, close;
//!   [`dialect`]: how each kind of client frames the room's typed messages.
//! - [`rooms`]: the registry of open documents; [`room`]: the task that owns one document
//!   (its `yrs::Doc`, presence and members), persists before it broadcasts, speaks in typed
//!   messages (no wire format), and unloads when idle; [`presence`]: its awareness table;
//!   [`authorship`]: who wrote it.
//! - [`durability`]: group commit, one append-and-flush for many rooms' updates.
//! - [`clock`]: the wall clock.
//! - [`config`]: every limit and timer; [`close_code`]: what each close code means;
//!   [`doc_name`]: which document names exist; [`metrics`]: Prometheus counters.
//! - [`people`]: notifications with each person's durable inbox, who is online, the names
//!   of people.
//! - [`abuse`]: rate limits (token bucket per socket, windows per IP, sockets per user).
//! - [`auth`]: JWT verification and per-document roles; [`space`]: the private-space segment
//!   each `sub` owns.
//! - [`alloc`]: the global allocator that refuses oversized single allocations (decoder bombs).
//! - [`app`]: the state they share. [`Server`] starts and stops all of it.
//!
//! The wire codec lives in `tandem-crdt-model` (pure), the update log in `tandem-storage`.

pub mod abuse;
pub mod accept;
pub mod alloc;
pub mod api;
pub mod app;
pub mod auth;
pub mod authorship;
pub mod clock;
pub mod close_code;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod dialect;
pub mod doc_name;
pub mod durability;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod people;
pub mod presence;
pub mod rest;
pub mod room;
pub mod rooms;
pub mod space;
pub mod upgrade;

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tandem_storage::{DocStore, SledStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use app::App;
pub use config::Config;

/// How long shutdown waits for rooms to close their sockets before it flushes and exits anyway.
const SHUTDOWN_DRAIN_MAX: Duration = Duration::from_secs(10);

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    shutdown_tx: watch::Sender<bool>,
    http: JoinHandle<()>,
}

impl Server {
    /// Opens the store under `config.data_dir` and starts serving on `config.addr`.
    pub async fn start(config: Config) -> anyhow::Result<Server> {
        if let Some(url) = config.redis_url.clone() {
            // Cluster mode: Redis holds every document; sled is not used.
            let node = crate::cluster::new_node_id();
            let store = tokio::task::spawn_blocking({
                let store_config = config.store.clone();
                move || tandem_storage::redis_store::RedisStore::open(&url, &node, store_config)
            })
            .await?
            .context("connecting to Redis")?;
            let store = Arc::new(store);
            let cluster = crate::cluster::Cluster::start(Arc::clone(&store))?;
            tracing::info!(node = %cluster.node, "cluster mode: documents live in Redis");
            return Self::start_inner(config, store, Some(cluster)).await;
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let store_path = config.data_dir.join("store");
        let store = SledStore::open(&store_path, config.store.clone())
            .with_context(|| format!("opening the store at {}", store_path.display()))?;
        Self::start_with_store(config, Arc::new(store)).await
    }

    /// Starts serving with a given store (tests use it to inject faults).
    pub async fn start_with_store(
        config: Config,
        store: Arc<dyn DocStore>,
    ) -> anyhow::Result<Server> {
        Self::start_inner(config, store, None).await
    }

    async fn start_inner(
        config: Config,
        store: Arc<dyn DocStore>,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .with_context(|| format!("binding {}", config.addr))?;
        let addr = listener.local_addr()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let app = App::new(config, store, cluster, shutdown_rx.clone());
        let http = tokio::spawn(accept::serve(listener, Arc::clone(&app), shutdown_rx));
        Ok(Server {
            addr,
            app,
            shutdown_tx,
            http,
        })
    }

    /// Stops accepting, closes every socket with 1012, flushes the store.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_DRAIN_MAX;
        while (!self.app.rooms.is_empty() || self.app.metrics.connections_open.load(Relaxed) > 0)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let store = Arc::clone(&self.app.store);
        tokio::task::spawn_blocking(move || store.flush())
            .await?
            .context("final flush")?;
        let _ = tokio::time::timeout(Duration::from_secs(2), self.http).await;
        Ok(())
    }
}
