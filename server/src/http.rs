//! The HTTP surface: the websocket endpoint, health, stats, metrics, the demo page, and the
//! JSON error bodies every refusal carries.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use warp::http::StatusCode;
use warp::path::Tail;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::app::App;
use crate::auth::{self, AuthError, Principal, Role};
use crate::connection::{self, Guards, Identity};
use crate::doc_name;
use crate::room::RoomError;

/// A JSON error body with a stable machine-readable `code` and a human message.
pub fn error_reply(status: StatusCode, code: &str, message: &str) -> Response {
    error_reply_with_field(status, code, message, None)
}

/// The JSON error body every endpoint uses: `{"error": {"code", "message", "field"?}}`.
fn error_reply_with_field(
    status: StatusCode,
    code: &str,
    message: &str,
    field: Option<&str>,
) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if let Some(field) = field {
        error["field"] = json!(field);
    }
    let body = warp::reply::json(&json!({ "error": error }));
    warp::reply::with_status(body, status).into_response()
}

/// A refusal on its way to becoming an [`error_reply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The request field at fault (400s on invalid input).
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 for an invalid value of `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("{field}: {}", message.into());
        ApiError {
            field: Some(field),
            ..ApiError::new(StatusCode::BAD_REQUEST, "invalid_field", message)
        }
    }

    pub fn into_response(self) -> Response {
        error_reply_with_field(self.status, self.code, &self.message, self.field.as_deref())
    }
}

pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let with_app = {
        let app = Arc::clone(&app);
        warp::any().map(move || Arc::clone(&app))
    };
    let sync = warp::path("sync")
        .and(warp::path::tail())
        .and(warp::get())
        .and(credentials())
        .and(crate::accept::remote())
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
        .and(crate::accept::remote())
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
            warp::reply::json(&json!({
                "auth": app.config.auth.is_some(),
                "dev_login": app.config.dev_login_secret.is_some(),
            }))
            .into_response()
        });
    let dev_token = warp::path!("api" / "dev" / "token")
        .and(warp::post())
        .and(warp::body::content_length_limit(
            app.config.limits.dev_token_body_max_bytes,
        ))
        .and(warp::body::json())
        .and(with_app.clone())
        .map(dev_token);
    let docs_api = crate::api::routes(Arc::clone(&app))
        .or(crate::feed::routes(Arc::clone(&app)))
        .unify()
        .or(crate::people::http::routes(Arc::clone(&app)))
        .unify()
        .or(crate::openapi::routes(Arc::clone(&app)))
        .unify()
        .or(session)
        .unify()
        .or(dev_token)
        .unify()
        // Last: it reads the body of every /api request it is tried on.
        .or(crate::rest::routes(Arc::clone(&app)))
        .unify();
    let api = sync
        .or(health)
        .unify()
        .or(stats)
        .unify()
        .or(metrics)
        .unify()
        .or(docs_api)
        .unify();
    let site = match app.config.static_dir.clone() {
        Some(dir) => warp::fs::dir(dir)
            .map(Reply::into_response)
            .or(index)
            .unify()
            .boxed(),
        None => index.boxed(),
    };
    api.or(site).unify().recover(recover).unify()
}

/// The request body, at most `limit` bytes: 413 when `Content-Length` says more, or when a body
/// without one (chunked) grows past it. A request without a body (a plain GET) is empty, where
/// warp's `content_length_limit` would demand a `Content-Length`.
pub fn bounded_body(
    limit: u64,
) -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    use futures_util::stream::{BoxStream, StreamExt};
    use warp::Buf;
    fn boxed<S, B>(body: S) -> BoxStream<'static, Result<Bytes, warp::Error>>
    where
        S: futures_util::Stream<Item = Result<B, warp::Error>> + Send + 'static,
        B: Buf,
    {
        body.map(|chunk| chunk.map(|mut b| b.copy_to_bytes(b.remaining())))
            .boxed()
    }
    let chunks = warp::body::stream().map(boxed);
    warp::header::optional::<u64>("content-length")
        .and(chunks)
        .and_then(move |length: Option<u64>, mut body: BoxStream<'static, Result<Bytes, warp::Error>>| async move {
            if length.is_some_and(|n| n > limit) {
                return Err(warp::reject::custom(BodyTooLarge));
            }
            let mut out = Vec::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else {
                    // The client went away mid-body; nobody reads this answer.
                    return Err(warp::reject::reject());
                };
                if u64::try_from(out.len() + chunk.len()).unwrap_or(u64::MAX) > limit {
                    return Err(warp::reject::custom(BodyTooLarge));
                }
                out.extend_from_slice(&chunk);
            }
            Ok(Bytes::from(out))
        })
}

/// A body past its limit (answered 413 by `recover`).
#[derive(Debug)]
pub struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

/// The bearer token of a request: `?token=` (what browser websocket providers can send) or an
/// `Authorization: Bearer` header, whose scheme name is case-insensitive (RFC 7235 §2.1).
pub fn credentials() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    let query = warp::query::<HashMap<String, String>>()
        .map(|q: HashMap<String, String>| q.get("token").cloned())
        .or(warp::any().map(|| None))
        .unify();
    let header = warp::header::optional::<String>("authorization")
        .or(warp::any().map(|| None))
        .unify();
    query
        .and(header)
        .map(|query: Option<String>, header: Option<String>| {
            query.or_else(|| header.as_deref().and_then(bearer_token).map(str::to_string))
        })
}

/// The token of an `Authorization` header value with the `Bearer` scheme, in any case.
fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// Authenticates a request for `doc`: the caller and its role, or the refusal to send.
pub fn authorize(
    app: &App,
    remote: Option<SocketAddr>,
    token: Option<&str>,
    doc: &str,
) -> Result<(Principal, Role), ApiError> {
    let principal = authenticate(app, remote, token)?;
    let role = role_on(&principal, doc)?;
    Ok((principal, role))
}

/// The caller's role on `doc`, or the 403 to send.
pub fn role_on(principal: &Principal, doc: &str) -> Result<Role, ApiError> {
    principal.role_for(doc).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the token grants no access to this document",
        )
    })
}

/// Who is calling: the token's principal (the anonymous caller in open mode), or the refusal.
///
/// A valid token is always accepted: the per-address count of failures only changes the answer
/// to failing attempts, from 401 to 429, once an address is past its limit. Counting failures
/// against everyone at an address would let one client behind a shared NAT or load balancer
/// lock out all the others with a few garbage tokens.
pub fn authenticate(
    app: &App,
    remote: Option<SocketAddr>,
    token: Option<&str>,
) -> Result<Principal, ApiError> {
    let Some(verifier) = &app.config.auth else {
        return Ok(dev_identity(app, token).unwrap_or_else(|| Principal::dev("anonymous")));
    };
    let token = token.filter(|t| !t.is_empty()).ok_or(AuthError::Missing);
    token
        .and_then(|t| verifier.verify(t, auth::now_s()))
        .map_err(|e| {
            app.metrics.auth_failures.fetch_add(1, Relaxed);
            let now = std::time::Instant::now();
            let over_limit =
                remote.is_some_and(|a| !app.ip_limits.auth_failures.allow(&a.ip(), now));
            if over_limit {
                app.metrics.rate_limited.fetch_add(1, Relaxed);
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_auth_failures",
                    "too many failed authentications from this address; retry in a minute",
                );
            }
            ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
        })
        .inspect(|principal| app.people.seen(&app.store, &app.tasks, principal))
}

/// In open development mode everyone may do everything, but a token from `/api/dev/token` (the
/// demo's "who are you?") still tells people apart: authors, notifications and presence then
/// name real people. Anything else is the anonymous caller.
fn dev_identity(app: &App, token: Option<&str>) -> Option<Principal> {
    let secret = app.config.dev_login_secret.as_deref()?;
    let verified = auth::Verifier::hs256(secret)
        .verify(token.filter(|t| !t.is_empty())?, auth::now_s())
        .ok()?;
    let mut principal = Principal::dev(&verified.sub);
    principal.name = verified.name;
    principal.expires_at = verified.expires_at;
    app.people.seen(&app.store, &app.tasks, &principal);
    Some(principal)
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
    if let Some(addr) = remote {
        if !app
            .ip_limits
            .connections
            .allow(&addr.ip(), std::time::Instant::now())
        {
            app.metrics.rate_limited.fetch_add(1, Relaxed);
            return error_reply(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections_from_ip",
                "too many new connections from this address; retry in a minute",
            );
        }
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
    if *app.shutdown.borrow() {
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "server is restarting",
        );
    }
    let Ok(permit) = Arc::clone(&app.connections).try_acquire_owned() else {
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "the server's connection limit is reached; retry later",
        );
    };
    // Load the stored document before the first sync message, so that no client ever sees an
    // empty document standing in for one that exists.
    let room = match app.rooms.open(&app, name).await {
        Ok(room) => room,
        Err(RoomError::Load { doc, cause }) => {
            tracing::error!(doc = %doc, cause = %cause, "refusing connection: document unavailable");
            return error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "document_unavailable",
                "the document could not be loaded from storage",
            );
        }
        Err(RoomError::Gone) => {
            return error_reply(StatusCode::SERVICE_UNAVAILABLE, "room_busy", "retry")
        }
    };
    let identity = Identity {
        author: Arc::from(principal.sub.as_str()),
        can_write: role >= Role::Write,
        expires_at: principal.expires_at,
    };
    let frame_max = app.config.limits.frame_size_max_bytes;
    let doc: Arc<str> = Arc::from(name);
    ws.accept(frame_max, move |socket| {
        let online = app.online.join(
            &app.feed,
            &doc,
            &principal.sub,
            principal.name.as_deref(),
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

#[derive(serde::Deserialize)]
struct DevLogin {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

fn dev_token(login: DevLogin, app: Arc<App>) -> Response {
    let Some(secret) = &app.config.dev_login_secret else {
        return error_reply(
            StatusCode::NOT_FOUND,
            "not_found",
            "dev login is not enabled",
        );
    };
    // A plain name, its own private-space segment: the demo builds `private/<sub>/...` itself.
    let valid_sub = !login.sub.is_empty()
        && login.sub.len() <= 64
        && crate::space::segment_of(&login.sub).as_deref() == Some(login.sub.as_str());
    if !valid_sub {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "invalid_sub",
            "sub: 1 to 64 characters of A-Z a-z 0-9 - _ . (a '.' neither first nor doubled)",
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
        Ok(token) => warp::reply::json(&json!({ "token": token })).into_response(),
        Err(_) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mint_failed",
            "could not sign",
        ),
    }
}

fn health(app: Arc<App>) -> Response {
    let problem = app.health_problem();
    let body = json!({
        "status": if problem.is_none() { "ok" } else { "unhealthy" },
        "problem": problem,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": app.started.elapsed().as_secs(),
        "rooms": app.rooms.len(),
        "connections": app.metrics.connections_open.load(Relaxed),
    });
    let status = if problem.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
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
    let mut body = json!({
        "rooms": rooms.len(),
        "connections": app.metrics.connections_open.load(Relaxed),
    });
    if let Some(viewer) = viewer {
        let open_mode = app.config.auth.is_none();
        let per_room: serde_json::Map<String, serde_json::Value> = rooms
            .iter()
            .filter(|(name, _)| open_mode || viewer.role_for(name) == Some(Role::Admin))
            .map(|(name, n)| (name.clone(), json!(n)))
            .collect();
        body["per_room"] = json!(per_room);
    }
    if let Some(cluster) = &app.cluster {
        body["cluster"] = cluster.stats();
    }
    warp::reply::json(&body).into_response()
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

const LANDING_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tandem</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:44rem;margin:3rem auto;padding:0 1rem;color:#222}
code{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}</style></head>
<body><h1>tandem</h1>
<p>A Yjs sync server. Connect a stock Yjs client:</p>
<pre><code>new WebsocketProvider('ws://' + location.host + '/sync', 'notes/1', ydoc)</code></pre>
<p>Health: <a href="/health">/health</a> · Stats: <a href="/api/stats">/api/stats</a> ·
Metrics: <a href="/metrics">/metrics</a></p></body></html>"#;
