//! The people layer over HTTP: `GET /api/me/notifications`, `POST /api/me/notifications/read`,
//! `GET /api/me/events` (notifications as Server-Sent Events, resumable across restarts),
//! `GET /api/presence?docs=<pattern>` and `GET /api/people`. (`GET /api/docs/<doc>/presence` is
//! answered by `api.rs` with [`doc_presence`], beside the document's other operations.)
//!
//! Every answer is filtered by what the caller's token may read now: a notification about a
//! document they lost access to is not shown, not even its title.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tandem_crdt_model::notify::{sentence, NoticeKind};
use tandem_storage::{InboxQuery, InboxRange, MarkRead, Notification};
use warp::http::StatusCode;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::api_error::ApiError;
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::people::online::DocPresence;
use crate::request::{authenticate, credentials};

/// One notification as its recipient reads it.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct NotificationView {
    pub id: u64,
    /// `assigned`, `mentioned`, `replied`, `commented` or `status_changed`.
    pub kind: String,
    pub doc: String,
    /// The reply or comment it is about.
    pub item: Option<String>,
    /// The `sub` who made the change.
    pub by: String,
    /// When, in ms since the epoch.
    pub at: u64,
    pub read: bool,
    /// "Ada assigned you to “Crash on save”".
    pub text: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct NotificationPage {
    /// Newest first.
    pub notifications: Vec<NotificationView>,
    /// Pass as `after` for the next (older) page; absent on the last page.
    pub next_after: Option<u64>,
    /// Unread notifications in the whole inbox.
    pub unread: u64,
}

/// `POST /api/me/notifications/read`: `{"ids": [...]}` or `{"all": true}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum MarkReadBody {
    Ids(ReadIds),
    All(ReadAll),
}

/// These notifications (ids of someone else's are ignored).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadIds {
    /// At most an inbox's worth (`--inbox-len-max`, 1,000 by default).
    #[schemars(length(max = 1000), inner(range(max = u64::MAX)))]
    pub ids: Vec<u64>,
}

/// All of them (`false`: none, the unread count only).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadAll {
    pub all: bool,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct Unread {
    pub unread: u64,
}

/// One person of the directory.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PersonView {
    pub sub: String,
    pub name: String,
    /// A stable colour for their cursor and avatar (`#rrggbb`, from the `sub`).
    pub color: String,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PeoplePage {
    pub people: Vec<PersonView>,
    /// Pass as `after` for the next page; absent on the last one.
    pub next_after: Option<String>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct PresenceList {
    pub docs: Vec<DocPresence>,
}

pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_app = crate::request::with_app(app);
    let caller = credentials().and(crate::request::remote());
    let list = warp::path!("api" / "me" / "notifications")
        .and(warp::get())
        .and(crate::request::query())
        .and(caller.clone())
        .and(with_app.clone())
        .and_then(
            |query: HashMap<String, String>, token: Option<String>, remote, app: Arc<App>| async move {
                Ok::<_, Infallible>(
                    list(&app, &query, token.as_deref(), remote)
                        .await
                        .unwrap_or_else(ApiError::into_response),
                )
            },
        );
    let read = warp::path!("api" / "me" / "notifications" / "read")
        .and(warp::post())
        .and(caller.clone())
        .and(crate::request::bounded_body(READ_BODY_MAX_BYTES))
        .and(with_app.clone())
        .and_then(
            |token: Option<String>, remote, body: bytes::Bytes, app: Arc<App>| async move {
                Ok::<_, Infallible>(
                    mark_read(&app, token.as_deref(), remote, &body)
                        .await
                        .unwrap_or_else(ApiError::into_response),
                )
            },
        );
    let events = warp::path!("api" / "me" / "events")
        .and(warp::get())
        .and(crate::request::query())
        .and(caller.clone())
        .and(warp::header::optional::<String>("last-event-id"))
        .and(with_app.clone())
        .map(
            |query: HashMap<String, String>,
             token: Option<String>,
             remote,
             last: Option<String>,
             app: Arc<App>| {
                events(&app, &query, token.as_deref(), remote, last)
                    .unwrap_or_else(ApiError::into_response)
            },
        );
    let presence = warp::path!("api" / "presence")
        .and(warp::get())
        .and(crate::request::query())
        .and(caller.clone())
        .and(with_app.clone())
        .map(
            |query: HashMap<String, String>, token: Option<String>, remote, app: Arc<App>| {
                presence(&app, &query, token.as_deref(), remote)
                    .unwrap_or_else(ApiError::into_response)
            },
        );
    let people = warp::path!("api" / "people")
        .and(warp::get())
        .and(crate::request::query())
        .and(caller)
        .and(with_app)
        .and_then(
            |query: HashMap<String, String>, token: Option<String>, remote, app: Arc<App>| async move {
                Ok::<_, Infallible>(
                    people(&app, &query, token.as_deref(), remote)
                        .await
                        .unwrap_or_else(ApiError::into_response),
                )
            },
        );
    list.or(read)
        .unify()
        .or(events)
        .unify()
        .or(presence)
        .unify()
        .or(people)
        .unify()
}

/// A read request names at most an inbox's worth of ids (about 20 bytes each).
const READ_BODY_MAX_BYTES: u64 = 64 * 1024;

/// A whole inbox (it is bounded by `inbox_len_max`), so that permission filtering and the unread
/// count agree with what the caller may see.
const WHOLE: InboxQuery = InboxQuery {
    range: InboxRange::Older { before: None },
    unread_only: false,
    limit: usize::MAX,
};

fn number<T: std::str::FromStr>(
    query: &HashMap<String, String>,
    field: &str,
    rule: &str,
) -> Result<Option<T>, ApiError> {
    query
        .get(field)
        .map(|v| v.parse().map_err(|_| ApiError::invalid(field, rule)))
        .transpose()
}

fn storage_error(e: tandem_storage::StoreError) -> ApiError {
    tracing::error!(error = %e, "people layer: storage failed");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "storage is failing; retry later",
    )
}

/// Runs a blocking store call off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, tandem_storage::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "task failed"))?
        .map_err(storage_error)
}

/// The caller's inbox as they may see it now, oldest first.
async fn visible_inbox(
    app: &Arc<App>,
    principal: &Principal,
) -> Result<Vec<Notification>, ApiError> {
    let store = Arc::clone(&app.store);
    let sub = principal.sub.clone();
    let page = blocking(move || store.inbox(&sub, &WHOLE)).await?;
    let mut all = page.notifications;
    all.retain(|n| principal.role_for(&n.doc).is_some());
    all.reverse();
    Ok(all)
}

fn view(app: &App, n: &Notification) -> NotificationView {
    let kind = NoticeKind::from_name(&n.kind).unwrap_or(NoticeKind::Mentioned);
    let by = app.people.name_of(&n.by);
    NotificationView {
        id: n.id,
        kind: n.kind.clone(),
        doc: n.doc.clone(),
        item: n.item.clone(),
        by: n.by.clone(),
        at: n.at_ms,
        read: n.read,
        text: sentence(kind, &by, &n.title, n.status.as_deref()),
    }
}

async fn list(
    app: &Arc<App>,
    query: &HashMap<String, String>,
    token: Option<&str>,
    remote: Option<SocketAddr>,
) -> Result<Response, ApiError> {
    let principal = authenticate(app, remote, token)?;
    let page_max = app.config.limits.notifications_page_max;
    let limit = number::<usize>(query, "limit", "a whole number")?.unwrap_or(50);
    if limit == 0 || limit > page_max {
        return Err(ApiError::invalid("limit", format!("1 to {page_max}")));
    }
    let after = number::<u64>(query, "after", "a notification id")?;
    let unread_only = match query.get("unread").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("unread", "true or false")),
    };
    let inbox = visible_inbox(app, &principal).await?;
    let unread = inbox.iter().filter(|n| !n.read).count() as u64;
    let mut matching = inbox
        .iter()
        .rev()
        .filter(|n| after.is_none_or(|a| n.id < a) && (!unread_only || !n.read));
    let notifications: Vec<NotificationView> = matching
        .by_ref()
        .take(limit)
        .map(|n| view(app, n))
        .collect();
    let next_after = match matching.next() {
        Some(_) => notifications.last().map(|n| n.id),
        None => None,
    };
    Ok(warp::reply::json(&NotificationPage {
        notifications,
        next_after,
        unread,
    })
    .into_response())
}

async fn mark_read(
    app: &Arc<App>,
    token: Option<&str>,
    remote: Option<SocketAddr>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let principal = authenticate(app, remote, token)?;
    let body: MarkReadBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("expected {{\"ids\": [...]}} or {{\"all\": true}}: {e}"),
        )
    })?;
    let which = match body {
        MarkReadBody::Ids(ReadIds { ids }) => {
            let max = usize::try_from(app.config.store.inbox_len_max).unwrap_or(usize::MAX);
            if ids.len() > max {
                return Err(ApiError::invalid("ids", format!("at most {max}")));
            }
            MarkRead::Ids(ids)
        }
        MarkReadBody::All(ReadAll { all: true }) => MarkRead::All,
        MarkReadBody::All(ReadAll { all: false }) => MarkRead::Ids(Vec::new()),
    };
    let store = Arc::clone(&app.store);
    let sub = principal.sub.clone();
    blocking(move || store.mark_read(&sub, &which)).await?;
    // The count the caller sees excludes what they may no longer read.
    let inbox = visible_inbox(app, &principal).await?;
    let unread = inbox.iter().filter(|n| !n.read).count() as u64;
    Ok(warp::reply::json(&Unread { unread }).into_response())
}

/// How often an open stream looks at its inbox without a local wake-up, in cluster mode only:
/// there another node may have delivered. A single node always wakes its streams itself.
const CLUSTER_STREAM_POLL: Duration = Duration::from_secs(1);

fn events(
    app: &Arc<App>,
    query: &HashMap<String, String>,
    token: Option<&str>,
    remote: Option<SocketAddr>,
    last_event_id: Option<String>,
) -> Result<Response, ApiError> {
    let principal = authenticate(app, remote, token)?;
    let last = crate::events::resume_point(last_event_id, query, "a notification id")?;
    let slot = crate::events::take_stream_slot(app, &principal, remote)?;
    let wake = app.notifier.subscribe();
    let app = Arc::clone(app);
    let end = crate::events::stream_end(&app, &principal);
    let keep_alive = crate::events::keep_alive_interval(&app);
    let state = Stream {
        app,
        principal,
        last,
        wake,
        _slot: slot,
        first: true,
    };
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if !s.first {
                s.wait().await;
            }
            s.first = false;
            match s.news().await {
                Ok(events) if events.is_empty() => continue,
                Ok(events) => return Some((tokio_stream::iter(events), s)),
                Err(_) => continue, // storage failing: try again at the next wake-up
            }
        }
    })
    .flatten()
    .map(Ok::<_, Infallible>);
    let stream = stream.take_until(end);
    let stream = warp::sse::keep_alive().interval(keep_alive).stream(stream);
    Ok(warp::sse::reply(stream).into_response())
}

/// One open notification stream.
struct Stream {
    app: Arc<App>,
    principal: Principal,
    /// The newest id sent (`None`: nothing yet; the stream starts from what is new).
    last: Option<u64>,
    wake: tokio::sync::broadcast::Receiver<Arc<str>>,
    _slot: crate::events::StreamSlot,
    first: bool,
}

impl Stream {
    /// Until this person's inbox may have grown.
    async fn wait(&mut self) {
        let clustered = self.app.cluster.is_some();
        let sub = self.principal.sub.as_str();
        let woken = async {
            loop {
                match self.wake.recv().await {
                    Ok(who) if &*who == sub => return,
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => return,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        std::future::pending::<()>().await
                    }
                }
            }
        };
        if clustered {
            let _ = tokio::time::timeout(CLUSTER_STREAM_POLL, woken).await;
        } else {
            woken.await;
        }
    }

    /// The notifications after the last one sent, oldest first, as events.
    async fn news(&mut self) -> Result<Vec<warp::sse::Event>, ApiError> {
        let inbox = visible_inbox(&self.app, &self.principal).await?;
        let Some(last) = self.last else {
            // A fresh stream sends only what arrives from now on.
            self.last = Some(inbox.last().map_or(0, |n| n.id));
            return Ok(Vec::new());
        };
        let fresh: Vec<&Notification> = inbox.iter().filter(|n| n.id > last).collect();
        if let Some(newest) = fresh.last() {
            self.last = Some(newest.id);
        }
        Ok(fresh
            .into_iter()
            .map(|n| {
                warp::sse::Event::default()
                    .id(n.id.to_string())
                    .event("notification")
                    .data(serde_json::to_string(&view(&self.app, n)).unwrap_or_default())
            })
            .collect())
    }
}

/// `GET /api/docs/<doc>/presence` (the caller has the read role on `doc`).
pub fn doc_presence(app: &App, doc: &str) -> Response {
    let here = app.online.on(doc).unwrap_or_else(|| DocPresence {
        doc: doc.to_string(),
        connections: 0,
        users: Vec::new(),
    });
    warp::reply::json(&here).into_response()
}

fn presence(
    app: &Arc<App>,
    query: &HashMap<String, String>,
    token: Option<&str>,
    remote: Option<SocketAddr>,
) -> Result<Response, ApiError> {
    let principal = authenticate(app, remote, token)?;
    let pattern = query.get("docs").map_or("**", String::as_str);
    let docs = app.online.on_all(|doc| {
        principal.role_for(doc).is_some_and(|r| r >= Role::Read)
            && crate::auth::pattern_matches(pattern, doc)
    });
    Ok(warp::reply::json(&PresenceList { docs }).into_response())
}

async fn people(
    app: &Arc<App>,
    query: &HashMap<String, String>,
    token: Option<&str>,
    remote: Option<SocketAddr>,
) -> Result<Response, ApiError> {
    authenticate(app, remote, token)?;
    let page_max = app.config.limits.people_page_max;
    let limit = number::<usize>(query, "limit", "a whole number")?.unwrap_or(page_max);
    if limit == 0 || limit > page_max {
        return Err(ApiError::invalid("limit", format!("1 to {page_max}")));
    }
    let after = query.get("after").cloned().unwrap_or_default();
    let store = Arc::clone(&app.store);
    let found = blocking(move || store.people(&after, limit + 1)).await?;
    let more = found.len() > limit;
    let people: Vec<PersonView> = found
        .into_iter()
        .take(limit)
        .map(|p| PersonView {
            color: crate::people::color_of(&p.sub),
            sub: p.sub,
            name: p.name,
        })
        .collect();
    let next_after = more.then(|| people.last().map(|p| p.sub.clone())).flatten();
    Ok(warp::reply::json(&PeoplePage { people, next_after }).into_response())
}
