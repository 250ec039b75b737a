//! The webhook admin API: `GET /api/admin/webhooks` lists every endpoint with its outbox (waiting
//! and dead events, the oldest dead ones), its counts since this process started and its last
//! error; `POST /api/admin/webhooks/<id>/retry` puts the dead events back in the outbox. Both need
//! a token that administers every document (`"**": "admin"`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use serde::Serialize;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use super::EndpointState;
use crate::api_error::{json_reply, ApiError};
use crate::app::App;
use crate::request::{authenticate, credentials, remote, with_app};

/// Dead events listed per endpoint (the oldest); the counts tell how many there are in all.
pub const DEAD_LISTED_MAX: usize = 50;

/// `GET /api/admin/webhooks`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct WebhookList {
    pub endpoints: Vec<EndpointView>,
}

/// One endpoint.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct EndpointView {
    /// Stable across restarts; the `endpoint` label of its metrics.
    pub id: String,
    /// Scheme, host and path (never the query, nor user info).
    pub url: String,
    /// Event type patterns (empty: every event).
    pub events: Vec<String>,
    /// Document patterns (empty: every document).
    pub docs: Vec<String>,
    /// Events waiting in the outbox.
    pub pending: u64,
    /// Events parked as dead, waiting for a retry.
    pub dead: u64,
    /// Since this process started: events delivered, attempts failed, attempts retried.
    pub delivered: u64,
    pub failed: u64,
    pub retried: u64,
    /// The last failed attempt's cause, until the next delivery succeeds.
    pub last_error: Option<String>,
    /// The oldest dead events (at most 50).
    pub dead_events: Vec<DeadEvent>,
}

/// A dead event.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct DeadEvent {
    /// Its `X-Tandem-Delivery` (kept when it is retried).
    pub delivery: String,
    /// Its type.
    pub event: String,
    /// When its change was made, in ms since the epoch.
    pub time_ms: u64,
    /// Why it was parked.
    pub error: String,
}

/// `POST /api/admin/webhooks/<id>/retry`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Requeued {
    /// Dead events put back in the outbox (as many as its bound leaves room for).
    pub requeued: u64,
}

pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_app = with_app(app);
    let list = warp::path!("api" / "admin" / "webhooks")
        .and(warp::get())
        .and(credentials())
        .and(remote())
        .and(with_app.clone())
        .and_then(|token: Option<String>, remote, app: Arc<App>| async move {
            Ok::<_, Infallible>(
                list(&app, token.as_deref(), remote)
                    .await
                    .unwrap_or_else(ApiError::into_response),
            )
        });
    let retry = warp::path!("api" / "admin" / "webhooks" / String / "retry")
        .and(warp::post())
        .and(credentials())
        .and(remote())
        .and(with_app)
        .and_then(
            |id: String, token: Option<String>, remote, app: Arc<App>| async move {
                Ok::<_, Infallible>(
                    retry(&app, &id, token.as_deref(), remote)
                        .await
                        .unwrap_or_else(ApiError::into_response),
                )
            },
        );
    list.or(retry).unify()
}

fn require_admin(
    app: &App,
    token: Option<&str>,
    remote: Option<SocketAddr>,
) -> Result<(), ApiError> {
    let principal = authenticate(app, remote, token)?;
    if app.config.auth.is_none() || principal.admin_everywhere() {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "forbidden",
        "the webhook admin API needs a token with admin on every document (\"**\": \"admin\")",
    ))
}

async fn list(
    app: &Arc<App>,
    token: Option<&str>,
    remote: Option<SocketAddr>,
) -> Result<Response, ApiError> {
    require_admin(app, token, remote)?;
    let mut endpoints = Vec::new();
    for e in &app.webhooks.endpoints {
        endpoints.push(view(app, e).await?);
    }
    Ok(json_reply(StatusCode::OK, &WebhookList { endpoints }))
}

async fn view(app: &Arc<App>, e: &Arc<EndpointState>) -> Result<EndpointView, ApiError> {
    let store = Arc::clone(&app.store);
    let id = e.config.id.clone();
    let (counts, dead) = tokio::task::spawn_blocking(move || {
        Ok::<_, tandem_storage::StoreError>((
            store.outbox_counts(&id)?,
            store.dead(&id, DEAD_LISTED_MAX)?,
        ))
    })
    .await
    .map_err(|_| ApiError::storage())?
    .map_err(|_| ApiError::storage())?;
    let stats = &e.stats;
    Ok(EndpointView {
        id: e.config.id.clone(),
        url: e.config.display_url(),
        events: e.config.events.clone(),
        docs: e.config.docs.clone(),
        pending: counts.pending,
        dead: counts.dead,
        delivered: stats.delivered.load(Relaxed),
        failed: stats.failed.load(Relaxed),
        retried: stats.retried.load(Relaxed),
        last_error: stats.last_error(),
        dead_events: dead
            .into_iter()
            .map(|d| DeadEvent {
                delivery: super::delivery_id(&e.config.id, d.id),
                event: d.event,
                time_ms: d.time_ms,
                error: d.error,
            })
            .collect(),
    })
}

async fn retry(
    app: &Arc<App>,
    id: &str,
    token: Option<&str>,
    remote: Option<SocketAddr>,
) -> Result<Response, ApiError> {
    require_admin(app, token, remote)?;
    let Some(endpoint) = app.webhooks.find(id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no webhook endpoint has this id",
        ));
    };
    let store = Arc::clone(&app.store);
    let id = id.to_string();
    let requeued = tokio::task::spawn_blocking(move || store.requeue_dead(&id))
        .await
        .map_err(|_| ApiError::storage())?
        .map_err(|_| ApiError::storage())?;
    endpoint.wake.notify_one();
    Ok(json_reply(StatusCode::OK, &Requeued { requeued }).into_response())
}
