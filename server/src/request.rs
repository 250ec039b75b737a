//! What every HTTP API handler reads from a request, set up once: the shared state, the query,
//! the bearer token and whom it authenticates with which role, the client's address, and a
//! bounded body. The REST,
//! `/api/docs`, feed and websocket endpoints all take their caller from here.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use warp::http::StatusCode;
use warp::Filter;

use crate::api_error::ApiError;
use crate::app::App;
use crate::auth::{self, AuthError, Principal, Role};

/// The client address of the connection a request came on, put into each request by the
/// accept loop (`accept.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The client address of a request (`None` only for requests not accepted by `accept.rs`, e.g.
/// in tests that call the routes directly).
pub fn remote() -> impl Filter<Extract = (Option<SocketAddr>,), Error = Infallible> + Clone {
    warp::ext::optional::<Peer>().map(|peer: Option<Peer>| peer.map(|p| p.0))
}

/// The shared state, handed to each handler.
pub fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || Arc::clone(&app))
}

/// The query parameters; empty when there are none or they cannot be parsed, so each handler
/// refuses a missing or malformed parameter itself, naming it.
pub fn query() -> impl Filter<Extract = (HashMap<String, String>,), Error = Infallible> + Clone {
    warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify()
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
    let query = query().map(|q: HashMap<String, String>| q.get("token").cloned());
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
