//! The HTTP surface: every route in one table (the websocket endpoint, health, stats, metrics,
//! the session and dev login, the demo page, and the API modules' own filters), and the JSON
//! refusal of whatever no route takes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::path::Tail;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::api_error::{json_reply, ApiError};
use crate::app::App;
use crate::auth::{self, Role};
use crate::connection::{self, Guards, Identity};
use crate::doc_name;
use crate::metrics::Dialect;
use crate::request::{authenticate, authorize, credentials, remote, with_app, BodyTooLarge};

/// A refusal's answer.
pub(crate) fn error_reply(status: StatusCode, code: &'static str, message: &str) -> Response {
    ApiError::new(status, code, message).into_response()
}

pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_app = with_app(Arc::clone(&app));
    let sync = warp::path("sync")
        .and(warp::path::tail())
        .and(warp::get())
        .and(credentials())
        .and(remote())
        .and(crate::upgrade::request())
        .and(with_app.clone())
        .then(sync_socket);
    let health = warp::path!("health")
        .and(warp::get())
        .and(with_app.clone())
        .map(health);
    let stats = warp::path!("api" / "stats")
        .and(warp::get())
        .and(credentials())
        .and(remote())
        .and(with_app.clone())
        .map(stats);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_app.clone())
        .map(|app: Arc<App>| {
            let mut text = app.metrics.render();
            if let Some(cluster) = &app.cluster {
                text.push_str(&cluster.metrics_text());
            }
            warp::reply::with_header(text, "content-type", "text/plain; version=0.0.4")
                .into_response()
        });
    let index = warp::path::end()
        .and(warp::get())
        .map(|| warp::reply::html(LANDING_PAGE).into_response());
    let session = warp::path!("api" / "session")
        .and(warp::get())
        .and(with_app.clone())
        .map(|app: Arc<App>| {
            let session = Session {
                auth: app.config.auth.is_some(),
                dev_login: app.config.dev_login_secret.is_some(),
            };
            json_reply(StatusCode::OK, &session)
        });
    let dev_token = warp::path!("api" / "dev" / "token")
        .and(warp::post())
        .and(crate::request::bounded_body(
            app.config.limits.dev_token_body_max_bytes,
        ))
        .and(with_app.clone())
        .map(dev_token);
    let docs_api = crate::api::routes(Arc::clone(&app))
        .or(crate::events::routes(Arc::clone(&app)))
        .unify()
        .or(crate::people::http::routes(Arc::clone(&app)))
        .unify()
        .or(crate::openapi::routes(Arc::clone(&app)))
        .unify()
        .or(crate::webhooks::admin::routes(Arc::clone(&app)))
        .unify()
        .or(session)
        .unify()
        .or(dev_token)
        .unify()
        // Last: it reads the body of every /api request it is tried on.
        .or(crate::rest::routes(Arc::clone(&app)))
        .unify();
    let api = sync
        .or(crate::hocuspocus::route(Arc::clone(&app)))
        .unify()
        .or(health)
        .unify()
        .or(stats)
        .unify()
        .or(metrics)
        .unify()
        .or(docs_api)
        .unify()
        .or(wrong_method())
        .unify();
    let site = match app.config.static_dir.clone() {
        // A directory without an index.html still answers `/` with a page saying what this is.
        Some(dir) => crate::site::from_dir(dir).or(index).unify().boxed(),
        None => crate::site::embedded(),
    };
    api.or(site).unify().recover(recover).unify()
}

async fn sync_socket(
    tail: Tail,
    token: Option<String>,
    remote: Option<SocketAddr>,
    ws: Option<crate::upgrade::Upgrade>,
    app: Arc<App>,
) -> Response {
    // The raw path, not percent-decoded: stock providers do not encode the room name, and a
    // `%` in a name is refused rather than interpreted.
    let name = tail.as_str();
    if let Err(why) = doc_name::validate(name) {
        return error_reply(StatusCode::BAD_REQUEST, "invalid_document_name", why);
    }
    if let Err(refused) = new_socket_from(&app, remote) {
        return refused.into_response();
    }
    let (principal, role) = match authorize(&app, remote, token.as_deref(), name) {
        Ok(ok) => ok,
        Err(refusal) => return refusal.into_response(),
    };
    let Some(ws) = ws else {
        return error_reply(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            "connect with a websocket client (y-websocket protocol)",
        );
    };
    // Sockets per user count only with real identities: in development mode everyone is
    // "anonymous".
    let user_slot = if app.config.auth.is_some() {
        match app.user_sockets.try_take(
            Arc::from(principal.sub.as_str()),
            app.config.limits.sockets_per_user_max,
        ) {
            Some(slot) => Some(slot),
            None => {
                app.metrics.rate_limited.fetch_add(1, Relaxed);
                return error_reply(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_sockets_for_user",
                    "this user has too many open connections",
                );
            }
        }
    } else {
        None
    };
    let permit = match socket_permit(&app) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    // Load the stored document before the first sync message, so that no client ever sees an
    // empty document standing in for one that exists.
    let room = match app.rooms.open(&app, name).await {
        Ok(room) => room,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let identity = Identity {
        author: Arc::from(principal.sub.as_str()),
        name: principal.name.as_deref().map(Arc::from),
        can_write: role >= Role::Write,
        expires_at: principal.expires_at,
    };
    let frame_max = app.config.limits.frame_size_max_bytes;
    let doc: Arc<str> = Arc::from(name);
    ws.accept(frame_max, move |socket| {
        let online = app.online.join(
            &app.feed,
            &doc,
            &identity.author,
            identity.name.as_deref(),
            crate::clock::now_ms(),
        );
        let guards = Guards {
            permit,
            user_slot,
            online,
        };
        connection::serve(socket, app, room, identity, guards)
    })
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct DevLogin {
    /// The name to sign in as: also the segment of its private space.
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?$")
    )]
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

fn dev_token(body: bytes::Bytes, app: Arc<App>) -> Response {
    let Some(secret) = &app.config.dev_login_secret else {
        return error_reply(
            StatusCode::NOT_FOUND,
            "not_found",
            "dev login is not enabled",
        );
    };
    let login: DevLogin = match serde_json::from_slice(&body) {
        Ok(login) => login,
        Err(e) => {
            let message = format!("expected {{\"sub\", \"name\"?}}: {e}");
            return error_reply(StatusCode::BAD_REQUEST, "malformed_body", &message);
        }
    };
    // A plain name, its own private-space segment: the demo builds `private/<sub>/...` itself.
    if !crate::space::is_login_name(&login.sub) {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_sub",
            &crate::space::login_name_rule(),
        );
    }
    let claims = auth::Claims {
        sub: login.sub,
        name: login.name,
        docs: [("**".to_string(), Role::Write)].into(),
        exp: Some(auth::now_s().saturating_add(app.config.timing.dev_token_ttl.as_secs())),
        nbf: None,
        iss: None,
        aud: None,
    };
    match auth::mint_hs256(secret, &claims) {
        Ok(token) => json_reply(StatusCode::OK, &DevToken { token }),
        Err(_) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mint_failed",
            "could not sign",
        ),
    }
}

fn health(app: Arc<App>) -> Response {
    let problem = app.health_problem();
    let status = if problem.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let health = Health {
        status: if problem.is_none() { "ok" } else { "unhealthy" },
        problem,
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: app.started.elapsed().as_secs(),
        rooms: app.rooms.len(),
        connections: app.metrics.connections_open.load(Relaxed),
    };
    json_reply(status, &health)
}

/// `GET /api/stats`. Counts for anyone; the names of open documents only to who may administer
/// them, because a name is data too (`private/<space>/notes/<id>` says who writes what): with
/// authentication on, a caller without a token sees counts only, and one with a token sees the
/// rooms it holds the admin role on, which never includes someone else's private space. In open
/// development mode everyone may open every document, so every name is listed.
fn stats(token: Option<String>, remote: Option<SocketAddr>, app: Arc<App>) -> Response {
    let viewer = match (&app.config.auth, token) {
        (Some(_), None) => None,
        (_, token) => match authenticate(&app, remote, token.as_deref()) {
            Ok(principal) => Some(principal),
            Err(refusal) => return refusal.into_response(),
        },
    };
    let rooms = app.rooms.snapshot();
    let open_mode = app.config.auth.is_none();
    let stats = Stats {
        rooms: rooms.len(),
        connections: app.metrics.connections_open.load(Relaxed),
        attachments: Dialect::ALL
            .iter()
            .map(|d| (d.name(), app.metrics.attachments(*d)))
            .collect(),
        per_room: viewer.map(|viewer| {
            rooms
                .into_iter()
                .filter(|(name, _)| open_mode || viewer.role_for(name) == Some(Role::Admin))
                .collect()
        }),
        cluster: app.cluster.as_ref().map(|cluster| cluster.stats()),
    };
    json_reply(StatusCode::OK, &stats)
}

/// `GET /api/session`: what the web demo's sign-in offers.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Session {
    auth: bool,
    dev_login: bool,
}

/// `POST /api/dev/token`'s answer.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct DevToken {
    token: String,
}

/// `GET /health`: `problem` is null while healthy.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Health {
    status: &'static str,
    problem: Option<String>,
    version: &'static str,
    uptime_s: u64,
    rooms: usize,
    connections: u64,
}

/// `GET /api/stats`.
#[derive(serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Stats {
    rooms: usize,
    connections: u64,
    /// Documents attached per dialect (a Hocuspocus socket may hold several).
    attachments: std::collections::BTreeMap<&'static str, u64>,
    /// Open documents and their connections, for a viewer allowed to see them.
    #[serde(skip_serializing_if = "Option::is_none")]
    per_room: Option<std::collections::BTreeMap<String, usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<serde_json::Value>,
}

async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let (status, code, message) = if rejection.is_not_found() {
        (StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some()
        || rejection.find::<BodyTooLarge>().is_some()
    {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the body exceeds its size limit",
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "send a Content-Length",
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed",
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request could not be understood",
        )
    };
    Ok(error_reply(status, code, message))
}

/// The methods each endpoint outside the REST table and `/api/docs` takes (those two answer a
/// wrong method themselves). A request to one of these paths that no route took came with
/// another method: 405 with `Allow`, rather than warp's bare 405.
fn allowed_methods(path: &str) -> Option<&'static [&'static str]> {
    const GET: &[&str] = &["GET"];
    const POST: &[&str] = &["POST"];
    if path.starts_with("/sync/") {
        return Some(GET);
    }
    if path.starts_with("/api/admin/webhooks/") && path.ends_with("/retry") {
        return Some(POST);
    }
    Some(match path {
        "/health"
        | "/metrics"
        | "/hocuspocus"
        | "/api/stats"
        | "/api/session"
        | "/api/events"
        | "/api/openapi.json"
        | "/api/me/notifications"
        | "/api/me/events"
        | "/api/presence"
        | "/api/people"
        | "/api/admin/webhooks" => GET,
        "/api/dev/token" | "/api/me/notifications/read" => POST,
        _ => return None,
    })
}

fn wrong_method() -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path::full().and(warp::method()).and_then(
        |path: warp::path::FullPath, method: warp::http::Method| async move {
            match allowed_methods(path.as_str()) {
                // A right method that no route took was refused for another reason (a body too
                // large, ...): that rejection is the answer.
                Some(allowed) if !allowed.contains(&method.as_str()) => {
                    Ok(crate::api_error::method_not_allowed(allowed))
                }
                _ => Err(warp::reject::not_found()),
            }
        },
    )
}

const LANDING_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tandem</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>tandem</h1>
<p>A Yjs sync server. Connect a stock Yjs client:</p>
<pre><code>new WebsocketProvider('ws://' + location.host + '/sync', 'notes/1', ydoc)</code></pre>
<p>Health: <a href="/health">/health</a> · Stats: <a href="/api/stats">/api/stats</a> ·
Metrics: <a href="/metrics">/metrics</a></p></body></html>"#;

/// A new websocket from `remote` within the per-address rate (`connections_per_ip_per_min`),
/// for both dialects; else the 429 to answer.
pub(crate) fn new_socket_from(app: &App, remote: Option<SocketAddr>) -> Result<(), ApiError> {
    let Some(addr) = remote else { return Ok(()) };
    if app
        .ip_limits
        .connections
        .allow(&addr.ip(), std::time::Instant::now())
    {
        return Ok(());
    }
    app.metrics.rate_limited.fetch_add(1, Relaxed);
    Err(ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_connections_from_ip",
        "too many new connections from this address; retry in a minute",
    ))
}

/// A place among the server's `connections_max` sockets, held for the socket's life, unless the
/// server is shutting down; else the 503 to answer. For both dialects.
pub(crate) fn socket_permit(app: &Arc<App>) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    if *app.shutdown.borrow() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "server is restarting",
        ));
    }
    Arc::clone(&app.connections)
        .try_acquire_owned()
        .map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too_many_connections",
                "the server's connection limit is reached; retry later",
            )
        })
}
