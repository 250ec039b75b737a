//! Webhooks: typed change events delivered to other systems, at least once and in order per
//! endpoint, from a durable outbox.
//!
//! - [`config`]: the endpoints (`--webhook URL;events=...;docs=...`), the secret, the limits.
//! - [`outbox`]: the events of a change as outbox entries, one per endpoint whose filters take
//!   them. Rooms hand them to the group commit with the change's updates, so an event is durable
//!   exactly when its change is (`Durability::commit`), and wake the endpoints once it is.
//! - [`delivery`]: one task per endpoint reads its outbox oldest first and posts each event until
//!   a 2xx, with exponential backoff and jitter, up to an age; then parks it as dead. A slow
//!   receiver holds only its own task. In cluster mode a lease in Redis makes one node deliver
//!   each endpoint.
//! - [`client`]: the HTTP(S) client; [`signing`]: `X-Tandem-Signature`.
//! - [`admin`]: `GET /api/admin/webhooks`, `POST /api/admin/webhooks/<id>/retry`.
//! - [`metrics`]: per-endpoint counters, outbox depth and the latency histogram.

pub mod admin;
pub mod client;
pub mod config;
pub mod delivery;
pub mod metrics;
pub mod outbox;
pub mod signing;

use std::sync::Arc;

use tandem_crdt_model::typed::Change;
use tandem_storage::{DocStore, NewHookEvent};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use self::config::{Endpoint, WebhookConfig};
use self::metrics::EndpointStats;
pub use self::outbox::DocumentUpdate;

/// An event's `X-Tandem-Delivery`: its endpoint and its outbox id, which it keeps through
/// retries, restarts and a re-queue from the dead.
pub fn delivery_id(endpoint: &str, id: u64) -> String {
    format!("{endpoint}-{id}")
}

/// One configured endpoint at run time.
pub struct EndpointState {
    pub config: Endpoint,
    /// Rung when a commit queued events for it.
    pub wake: Notify,
    pub stats: Arc<EndpointStats>,
}

pub struct Webhooks {
    pub endpoints: Vec<Arc<EndpointState>>,
    pub settings: WebhookConfig,
}

impl Webhooks {
    pub fn new(settings: &WebhookConfig, metrics: &crate::metrics::Metrics) -> Webhooks {
        let endpoints = settings
            .endpoints
            .iter()
            .map(|e| {
                Arc::new(EndpointState {
                    config: e.clone(),
                    wake: Notify::new(),
                    stats: metrics.webhooks.endpoint(&e.id),
                })
            })
            .collect();
        Webhooks {
            endpoints,
            settings: settings.clone(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// Whether rooms should describe every change as `document.updated` with its Yjs update.
    pub fn wants_document_updates(&self) -> bool {
        self.enabled() && self.settings.webhook_document_updates
    }

    /// Outbox entries for changes of `doc` by `by` (see [`outbox::entries`]).
    pub fn entries(
        &self,
        doc: &str,
        by: &[String],
        changes: &[Change],
        yjs: Option<DocumentUpdate<'_>>,
    ) -> Vec<NewHookEvent> {
        if !self.enabled() {
            return Vec::new();
        }
        outbox::entries(
            &self.endpoints,
            doc,
            by,
            changes,
            yjs,
            crate::clock::now_ms(),
        )
    }

    /// The commit that queued events for these endpoints is durable: their tasks look now.
    pub fn wake(&self, endpoints: &[String]) {
        for e in &self.endpoints {
            if endpoints.contains(&e.config.id) {
                e.wake.notify_one();
            }
        }
    }

    pub fn find(&self, id: &str) -> Option<&Arc<EndpointState>> {
        self.endpoints.iter().find(|e| e.config.id == id)
    }

    /// Starts one delivery task per endpoint; they end when `shutdown` turns true.
    pub fn start(
        self: &Arc<Self>,
        store: &Arc<dyn DocStore>,
        shutdown: &watch::Receiver<bool>,
    ) -> Vec<JoinHandle<()>> {
        let client = client::Client::new();
        self.endpoints
            .iter()
            .map(|e| {
                tokio::spawn(delivery::run(delivery::Delivery {
                    endpoint: Arc::clone(e),
                    settings: self.settings.clone(),
                    secret: self
                        .settings
                        .webhook_secret
                        .clone()
                        .unwrap_or_default()
                        .into_bytes(),
                    client: client.clone(),
                    store: Arc::clone(store),
                    shutdown: shutdown.clone(),
                    renewed: std::sync::Mutex::new(None),
                    calls: crate::tracker::Tracker::default(),
                }))
            })
            .collect()
    }
}
