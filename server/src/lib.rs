//! tandem: a Yjs sync server.
//!
//! Map of the crate, from the network inwards:
//! - [`accept`]: the accept loop: one task per HTTP connection, bounded time to send a request
//!   head, idle connections closed; the client address of each request.
//! - [`http`]: warp routes: `/sync/<doc>` (websocket), `/health`, `/api/stats`, `/metrics`, `/`;
//!   [`site`]: the web demo at `/`, embedded in the binary (or `--static-dir`).
//! - [`request`]: what every API handler reads from a request (token and caller, query, bounded
//!   body); [`api_error`]: the one error type and JSON error body, and the one mapping of room,
//!   edit and storage failures to statuses.
//! - [`api`]: `/api/docs/<doc>/...`: one-round-trip HTTP sync for offline clients.
//! - [`rest`]: the typed REST API (notes, contacts, issues); [`openapi`]: its OpenAPI document,
//!   generated from the same route table and types; [`feed`]: the change feed, streamed by
//!   [`events`] (`GET /api/events`).
//! - [`connection`]: one websocket in the y-websocket dialect: decode, forward, keep alive, close;
//!   [`hocuspocus`]: one websocket of a Hocuspocus client, many documents on it, each
//!   authenticated on its own; [`dialect`]: how each kind of client frames the room's typed
//!   messages.
//! - [`rooms`]: the registry of open documents; [`room`]: the task that owns one document
//!   (its `yrs::Doc`, presence and members), persists before it broadcasts, speaks in typed
//!   messages (no wire format), and unloads when idle; [`presence`]: its awareness table;
//!   [`authorship`]: who wrote it.
//! - [`durability`]: group commit, one append-and-flush for many rooms' updates.
//! - [`health`]: what `/health` says about the store, probed until it recovers.
//! - [`tracker`]: the count of tasks shutdown waits for.
//! - [`clock`]: the wall clock; [`logging`]: text or JSON logs, colour only on a terminal.
//! - [`config`]: every limit and timer; [`close_code`]: what each close code means;
//!   [`doc_name`]: which document names exist; [`metrics`]: Prometheus counters.
//! - [`people`]: notifications with each person's durable inbox, who is online, the names
//!   of people.
//! - [`abuse`]: rate limits (token bucket per socket, windows per IP, sockets per user).
//! - [`auth`]: JWT verification and per-document roles; [`space`]: the private-space segment
//!   each `sub` owns.
//! - [`webhooks`]: change events posted to other systems from a durable outbox, at least once
//!   and in order per endpoint, signed; their admin API and metrics.
//! - [`alloc`]: the global allocator that refuses oversized single allocations (decoder bombs).
//! - [`app`]: the state they share. [`Server`] starts and stops all of it.
//!
//! The wire codec lives in `tandem-crdt-model` (pure), the update log in `tandem-storage`.

pub mod abuse;
pub mod accept;
pub mod alloc;
pub mod api;
pub mod api_error;
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
pub mod events;
pub mod feed;
pub mod health;
pub mod hocuspocus;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod people;
pub mod presence;
pub mod request;
pub mod rest;
pub mod room;
pub mod rooms;
pub mod site;
pub mod space;
pub mod tracker;
pub mod upgrade;
pub mod webhooks;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tandem_storage::{DocStore, SledStore};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use app::App;
pub use config::Config;

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
        config.check().map_err(anyhow::Error::msg)?;
        if let Some(target) = config.redis.clone() {
            // Cluster mode: Redis (one server or a Redis Cluster) holds every document; sled is
            // not used.
            let node = crate::cluster::new_node_id();
            let store = tokio::task::spawn_blocking({
                let store_config = config.store.clone();
                move || {
                    tandem_storage::redis_store::RedisStore::open_target(
                        target,
                        &node,
                        store_config,
                    )
                }
            })
            .await?
            .context("connecting to Redis")?;
            let store = Arc::new(store);
            let cluster =
                crate::cluster::Cluster::start(Arc::clone(&store), config.cluster.clone())?;
            tracing::info!(node = %cluster.node, "cluster mode: documents live in Redis");
            return Self::start_inner(config, store, Some(cluster)).await;
        }
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
        let store_path = config.data_dir.join("store");
        let store = match SledStore::open(&store_path, config.store.clone()) {
            Ok(store) => store,
            // The one line a person starting a second server on the same directory needs.
            Err(tandem_storage::StoreError::Locked(_)) => anyhow::bail!(
                "another tandem holds {} (its store is locked while it runs): stop it, or give this one another --data-dir",
                config.data_dir.display()
            ),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("opening the store at {}", store_path.display()))
            }
        };
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

    /// Stops accepting, closes every socket with 1012, waits (at most `shutdown_drain_max`)
    /// for every tracked task (rooms, sockets, HTTP connections, compactions) to end, flushes
    /// the store, and stops the cluster threads.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.shutdown_tx.send(true);
        let drain_max = self.app.config.timing.shutdown_drain_max;
        // The accept loop ends once it has closed the listener and its connections have ended,
        // which the tracker counts too: one bound for both.
        let drained = async {
            self.app.tasks.idle().await;
            let _ = self.http.await;
        };
        if tokio::time::timeout(drain_max, drained).await.is_err() {
            tracing::warn!(
                tasks = self.app.tasks.len(),
                "tasks still running after --shutdown-drain-max-s; flushing anyway"
            );
        }
        let store = Arc::clone(&self.app.store);
        let flushed = tokio::task::spawn_blocking(move || store.flush()).await;
        // Last: the committer and the prober let go of the store, so that the next process (or
        // a restart in the same process) can open it.
        self.app.store_users.release().await;
        if let Some(cluster) = self.app.cluster.clone() {
            // Its threads wake within one heartbeat or read block; none waits on a room after
            // the drain, but a bound keeps a wedged Redis call from holding the exit.
            let bound = cluster.stop_bound();
            let joined =
                tokio::time::timeout(bound, tokio::task::spawn_blocking(move || cluster.stop()));
            if joined.await.is_err() {
                tracing::warn!("cluster threads did not stop within {bound:?}");
            }
        }
        flushed?.context("final flush")?;
        Ok(())
    }
}
