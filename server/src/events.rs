//! `GET /api/events`: the change feed (`feed.rs`) as Server-Sent Events, filtered by what the
//! caller's token may read and by its `kind` and `docs` filters, resumable with `Last-Event-ID`,
//! ended when the token expires; open streams bounded per user, per address and in all.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use futures_util::StreamExt;
use tandem_crdt_model::typed::DocKind;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::abuse::Slot;
use crate::api_error::ApiError;
use crate::app::App;
use crate::auth::Principal;
use crate::feed::{FeedEvent, Resume};
use crate::request::{authenticate, credentials, query, remote, with_app};

/// `GET /api/events`: the feed as Server-Sent Events, filtered by `kind` (comma-separated
/// `note,contact,issue`) and `docs` (a pattern like `notes/*`), resumable with `Last-Event-ID`
/// (or `?last_event_id=`). Only events of documents the caller may read are sent; the stream
/// ends when the caller's token expires.
pub fn routes(
    app: Arc<App>,
) -> impl warp::Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    use warp::Filter;
    warp::path!("api" / "events")
        .and(warp::get())
        .and(query())
        .and(credentials())
        .and(remote())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(with_app(app))
        .map(
            |query: HashMap<String, String>,
             token: Option<String>,
             remote: Option<SocketAddr>,
             last_event_id: Option<String>,
             app: Arc<App>| {
                events(&app, &query, token.as_deref(), remote, last_event_id)
                    .unwrap_or_else(ApiError::into_response)
            },
        )
}

/// Longest silence on an event stream (warp's default keep-alive period).
const SSE_KEEP_ALIVE_MAX: std::time::Duration = std::time::Duration::from_secs(15);

/// Where a stream resumes: its `Last-Event-ID` header, else `?last_event_id=` (`what` names an
/// id in the 400 answer).
pub(crate) fn resume_point(
    header: Option<String>,
    query: &HashMap<String, String>,
    what: &str,
) -> Result<Option<u64>, ApiError> {
    header
        .or_else(|| query.get("last_event_id").cloned())
        .map(|id| {
            id.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("last_event_id", what))
        })
        .transpose()
}

/// A comment at least every half of `http_idle_max`, so an idle stream is not taken for a dead
/// connection, and at least every 15 s for proxies that cut silent ones sooner.
pub(crate) fn keep_alive_interval(app: &App) -> std::time::Duration {
    (app.config.timing.http_idle_max / 2).min(SSE_KEEP_ALIVE_MAX)
}

/// When an event stream ends: when its caller's token expires, or when the server shuts down
/// (shutdown waits for every HTTP connection, see `tracker`).
pub(crate) fn stream_end(
    app: &App,
    principal: &Principal,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let expires_in = principal
        .expires_at
        .map(|at| std::time::Duration::from_secs(at.saturating_sub(crate::auth::now_s())));
    let mut shutdown = app.shutdown.clone();
    async move {
        let expiry = async {
            match expires_in {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = expiry => {}
            _ = shutdown.wait_for(|stop| *stop) => {}
        }
    }
}

/// Which events a stream wants.
struct Interest {
    principal: Principal,
    kinds: Option<Vec<DocKind>>,
    docs: Option<String>,
}

impl Interest {
    fn wants(&self, event: &FeedEvent) -> bool {
        self.principal.role_for(&event.doc).is_some()
            && self
                .kinds
                .as_ref()
                .is_none_or(|k| event.kind.is_some_and(|kind| k.contains(&kind)))
            && self
                .docs
                .as_deref()
                .is_none_or(|p| crate::auth::pattern_matches(p, &event.doc))
    }
}

fn sse_event(event: &FeedEvent) -> warp::sse::Event {
    warp::sse::Event::default()
        .id(event.id.to_string())
        .event(event.change.event.clone())
        .data(serde_json::to_string(event).unwrap_or_default())
}

fn reset_event() -> warp::sse::Event {
    warp::sse::Event::default()
        .event("reset")
        .data(r#"{"reason":"events since your last id are no longer kept; re-read what you show"}"#)
}

/// What an open stream holds: its place in the server's count and in its user's and address's.
pub(crate) struct StreamSlot {
    app: Arc<App>,
    _user: Option<Slot<Arc<str>>>,
    _ip: Option<Slot<IpAddr>>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.app.feed.streams.fetch_sub(1, Relaxed);
    }
}

/// A place for one more stream, or the refusal: the caller's own streams first, per user and
/// per address (429), so that one caller cannot hold every stream, then the server's (503).
pub(crate) fn take_stream_slot(
    app: &Arc<App>,
    principal: &Principal,
    remote: Option<SocketAddr>,
) -> Result<StreamSlot, ApiError> {
    let limits = &app.config.limits;
    let too_many = |code: &'static str, message: &str| {
        app.metrics.rate_limited.fetch_add(1, Relaxed);
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
    };
    // Per user only with real identities: in open development mode everyone is "anonymous".
    let user = match &app.config.auth {
        None => None,
        Some(_) => {
            let sub = Arc::from(principal.sub.as_str());
            let slot = app
                .feed
                .per_user
                .try_take(sub, limits.feed_streams_per_user_max);
            Some(slot.ok_or_else(|| {
                too_many(
                    "too_many_streams_for_user",
                    "this user has as many event streams open as it may; close one first",
                )
            })?)
        }
    };
    let ip = match remote {
        None => None,
        Some(addr) => {
            let slot = app
                .feed
                .per_ip
                .try_take(addr.ip(), limits.feed_streams_per_ip_max);
            Some(slot.ok_or_else(|| {
                too_many(
                    "too_many_streams_from_ip",
                    "this address has as many event streams open as it may; close one first",
                )
            })?)
        }
    };
    if app.feed.streams.fetch_add(1, Relaxed) >= limits.feed_streams_max {
        app.feed.streams.fetch_sub(1, Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            "the server has as many event streams open as it allows; retry later",
        ));
    }
    Ok(StreamSlot {
        app: Arc::clone(app),
        _user: user,
        _ip: ip,
    })
}

fn events(
    app: &Arc<App>,
    query: &HashMap<String, String>,
    token: Option<&str>,
    remote: Option<SocketAddr>,
    last_event_id: Option<String>,
) -> Result<Response, ApiError> {
    let principal = authenticate(app, remote, token)?;
    let kinds = match query.get("kind") {
        None => None,
        Some(list) => Some(
            list.split(',')
                .map(|k| {
                    DocKind::from_name(k.trim())
                        .ok_or_else(|| ApiError::invalid("kind", "note, contact or issue"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let docs = query.get("docs").cloned();
    let last = resume_point(last_event_id, query, "an event id")?;
    let slot = take_stream_slot(app, &principal, remote)?;
    let interest = Interest {
        principal,
        kinds,
        docs,
    };
    let (resume, live) = app.feed.resume(last);
    let first: Vec<warp::sse::Event> = match resume {
        Resume::Reset => vec![reset_event()],
        Resume::Replay(events) => events
            .iter()
            .filter(|e| interest.wants(e))
            .map(|e| sse_event(e))
            .collect(),
    };
    let end = stream_end(app, &interest.principal);
    let interest = Arc::new(interest);
    let live = BroadcastStream::new(live).filter_map(move |received| {
        let _held = &slot;
        let out = match received {
            Ok(event) => interest.wants(&event).then(|| sse_event(&event)),
            // This stream fell further behind than the live buffer: it may have missed events.
            Err(BroadcastStreamRecvError::Lagged(_)) => Some(reset_event()),
        };
        std::future::ready(out)
    });
    let stream = tokio_stream::iter(first)
        .chain(live)
        .take_until(end)
        .map(Ok::<_, std::convert::Infallible>);
    let stream = warp::sse::keep_alive()
        .interval(keep_alive_interval(app))
        .stream(stream);
    Ok(warp::sse::reply(stream).into_response())
}
