//! The change feed: typed events (`note.created`, `issue.status_changed`, `document.deleted`, ...)
//! published by rooms once the change they describe is durable, kept in a bounded ring for
//! `Last-Event-ID` resumption, and streamed to `GET /api/events` as Server-Sent Events.
//!
//! Ids are strictly increasing, also across restarts: the first id of a process is its start time
//! in milliseconds × 1000, so an id from before a restart is older than every id kept now and the
//! client is told to `reset` rather than silently missing events.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde::Serialize;
use tandem_crdt_model::typed::{Change, DocKind};
use tokio::sync::broadcast;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::abuse::{OpenSlots, Slot};
use crate::app::App;
use crate::auth::Principal;
use crate::http::{authenticate, credentials, ApiError};

/// One event as clients receive it (the SSE `data:` JSON; its `type` is also the SSE `event:`).
#[derive(Debug, Clone, Serialize)]
pub struct FeedEvent {
    pub id: u64,
    #[serde(flatten)]
    pub change: Change,
    /// The document the event is about.
    pub doc: Arc<str>,
    /// `note`, `contact` or `issue`; absent for untyped documents (`document.deleted` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<DocKind>,
    /// The typed id (the last segment of `doc`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<String>,
    /// Who made the change: the `sub` of every author whose update went into it.
    pub by: Vec<String>,
    pub time_ms: u64,
}

/// Where a resuming client stands.
pub enum Resume {
    /// Every event after the client's id, in order.
    Replay(Vec<Arc<FeedEvent>>),
    /// The client's id is no longer (or never was) kept: it must re-read what it shows.
    Reset,
}

pub struct Feed {
    /// Open `/api/events` streams (bounded by `feed_streams_max`).
    pub streams: AtomicUsize,
    /// Open streams per user (`feed_streams_per_user_max`) and per client IP
    /// (`feed_streams_per_ip_max`).
    per_user: Arc<OpenSlots<Arc<str>>>,
    per_ip: Arc<OpenSlots<IpAddr>>,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<FeedEvent>>,
    kept: usize,
}

struct Ring {
    events: VecDeque<Arc<FeedEvent>>,
    next_id: u64,
}

impl Feed {
    pub fn new(kept: usize) -> Self {
        let start_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            u64::try_from(d.as_millis()).unwrap_or(u64::MAX / 1000)
        });
        let kept = kept.max(1);
        Feed {
            streams: AtomicUsize::new(0),
            per_user: Arc::default(),
            per_ip: Arc::default(),
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(kept.min(1024)),
                next_id: start_ms.saturating_mul(1000).max(1),
            }),
            // A subscriber further behind than this is lagging: it gets `reset`, like one
            // resuming from too far back.
            live: broadcast::channel(kept.min(4096)).0,
            kept,
        }
    }

    /// Stamps and publishes the changes of one document.
    pub fn publish(&self, doc: &Arc<str>, by: Vec<String>, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let located = tandem_crdt_model::typed::locate(doc);
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        for change in changes {
            let event = Arc::new(FeedEvent {
                id: ring.next_id,
                change,
                doc: Arc::clone(doc),
                kind: located.as_ref().map(|l| l.kind),
                item: located.as_ref().map(|l| l.id.to_string()),
                by: by.clone(),
                time_ms,
            });
            ring.next_id += 1;
            if ring.events.len() == self.kept {
                ring.events.pop_front();
            }
            ring.events.push_back(Arc::clone(&event));
            // Sent under the lock, so a subscriber taken with `resume` sees each event once.
            let _ = self.live.send(event);
        }
    }

    /// The events after `last_id` (all kept ones if `None` means "only new ones") and a receiver
    /// of everything published from now on, taken atomically.
    pub fn resume(&self, last_id: Option<u64>) -> (Resume, broadcast::Receiver<Arc<FeedEvent>>) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let live = self.live.subscribe();
        let Some(last) = last_id else {
            return (Resume::Replay(Vec::new()), live);
        };
        let oldest_kept = ring.events.front().map_or(ring.next_id, |e| e.id);
        // `last` may be the event just before the oldest kept one, or any later one we issued.
        if last.saturating_add(1) < oldest_kept || last >= ring.next_id {
            return (Resume::Reset, live);
        }
        let replay = ring
            .events
            .iter()
            .filter(|e| e.id > last)
            .cloned()
            .collect();
        (Resume::Replay(replay), live)
    }
}

/// `GET /api/events`: the feed as Server-Sent Events, filtered by `kind` (comma-separated
/// `note,contact,issue`) and `docs` (a pattern like `notes/*`), resumable with `Last-Event-ID`
/// (or `?last_event_id=`). Only events of documents the caller may read are sent; the stream
/// ends when the caller's token expires.
pub fn routes(
    app: Arc<App>,
) -> impl warp::Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    use warp::Filter;
    let with_app = warp::any().map(move || Arc::clone(&app));
    let query = warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify();
    warp::path!("api" / "events")
        .and(warp::get())
        .and(query)
        .and(credentials())
        .and(crate::accept::remote())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(with_app)
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

/// When an event stream ends: when its caller's token expires, or when the server shuts down
/// (an open stream would otherwise keep the server's state, and its store, alive).
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
    let last = last_event_id
        .or_else(|| query.get("last_event_id").cloned())
        .map(|id| {
            id.trim()
                .parse::<u64>()
                .map_err(|_| ApiError::invalid("last_event_id", "an event id"))
        })
        .transpose()?;
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
    // A comment at least every half of `http_idle_max`, so an idle stream is not taken for a
    // dead connection, and at least every 15 s for proxies that cut silent ones sooner.
    let keep_alive = (app.config.timing.http_idle_max / 2).min(SSE_KEEP_ALIVE_MAX);
    let stream = warp::sse::keep_alive().interval(keep_alive).stream(stream);
    Ok(warp::sse::reply(stream).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(event: &str) -> Change {
        Change::new(event)
    }

    #[test]
    fn resumes_after_an_id_and_resets_when_too_old() {
        let feed = Feed::new(3);
        let doc: Arc<str> = Arc::from("notes/1");
        assert!(
            matches!(feed.resume(Some(1)).0, Resume::Reset),
            "an id from long ago"
        );
        feed.publish(&doc, vec!["ada".into()], vec![change("a"), change("b")]);
        feed.publish(&doc, vec![], vec![change("c"), change("d")]);
        let ids: Vec<u64> = {
            let ring = feed.ring.lock().expect("lock");
            ring.events.iter().map(|e| e.id).collect()
        };
        assert_eq!(ids.len(), 3, "the ring keeps the last three");
        let after = |id: u64| match feed.resume(Some(id)).0 {
            Resume::Replay(v) => Some(v.iter().map(|e| e.change.event.clone()).collect::<Vec<_>>()),
            Resume::Reset => None,
        };
        assert_eq!(
            after(ids[0] - 1),
            Some(vec!["b".into(), "c".into(), "d".into()])
        );
        assert_eq!(after(ids[0]), Some(vec!["c".into(), "d".into()]));
        assert_eq!(after(ids[2]), Some(vec![]));
        assert_eq!(after(ids[0] - 2), None, "a fell out of the ring");
        assert_eq!(after(ids[2] + 1), None, "an id never issued");
        let Resume::Replay(fresh) = feed.resume(None).0 else {
            panic!("a fresh subscriber never resets");
        };
        assert!(fresh.is_empty());
    }
}
