//! `/api/docs/<doc>/...`: document operations over plain HTTP, with the same tokens, roles and
//! limits as the websocket. Document names contain `/`, so the operation is read from the end
//! of the path:
//!
//! | method | path | role | what |
//! |---|---|---|---|
//! | POST | `<doc>/sync` | read (write to send edits) | one-round-trip sync for offline clients |
//! | GET | `<doc>/history?after=&limit=` | admin | versions: seq, author, time, size |
//! | GET | `<doc>/at/<version>` | admin | the document as it was (a Yjs v1 update, or JSON) |
//! | POST | `<doc>/restore/<version>` | admin | that content, restored as a new forward edit |
//! | DELETE | `<doc>` | admin | delete the document (its sockets are closed with 4404) |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tandem_crdt_model::protocol::{self, ClientUpdate, Inbound};
use tandem_crdt_model::shape::UpdateShape;
use tokio::sync::oneshot;
use warp::http::{Method, StatusCode};
use warp::path::Tail;
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::api_error::{json_reply, ApiError};
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::doc_name;
use crate::request::{authorize, bounded_body, credentials, query, remote, with_app};
use crate::room::{HttpSync, HttpSyncReply, RoomCmd, RoomError};

/// One request under `/api/docs/`.
struct Request {
    method: Method,
    tail: String,
    query: HashMap<String, String>,
    token: Option<String>,
    remote: Option<SocketAddr>,
    if_none_match: Option<String>,
    accept: Option<String>,
    body: Bytes,
}

pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let frame_max = u64::try_from(app.config.limits.frame_size_max_bytes).unwrap_or(u64::MAX);
    warp::path!("api" / "docs" / ..)
        .and(warp::path::tail())
        .and(warp::method())
        .and(query())
        .and(credentials())
        .and(remote())
        .and(warp::header::optional::<String>("if-none-match"))
        .and(warp::header::optional::<String>("accept"))
        .and(bounded_body(frame_max))
        .and(with_app(app))
        .then(
            |tail: Tail,
             method,
             query,
             token,
             remote,
             if_none_match,
             accept,
             body,
             app: Arc<App>| async move {
                let request = Request {
                    method,
                    tail: tail.as_str().to_string(),
                    query,
                    token,
                    remote,
                    if_none_match,
                    accept,
                    body,
                };
                dispatch(request, app)
                    .await
                    .unwrap_or_else(ApiError::into_response)
            },
        )
}

async fn dispatch(req: Request, app: Arc<App>) -> Result<Response, ApiError> {
    let tail = req.tail.as_str();
    let (doc, op): (&str, Op) = if let Some(doc) = tail.strip_suffix("/sync") {
        (doc, Op::Sync)
    } else if let Some(doc) = tail.strip_suffix("/history") {
        (doc, Op::History)
    } else if let Some(doc) = tail.strip_suffix("/presence") {
        (doc, Op::Presence)
    } else if let Some((doc, v)) = split_version(tail, "/at/") {
        (doc, Op::At(v?))
    } else if let Some((doc, v)) = split_version(tail, "/restore/") {
        (doc, Op::Restore(v?))
    } else {
        (tail, Op::Document)
    };
    let expected = match op {
        Op::Sync | Op::Restore(_) => Method::POST,
        Op::History | Op::At(_) | Op::Presence => Method::GET,
        Op::Document => Method::DELETE,
    };
    if req.method != expected {
        return Ok(crate::api_error::method_not_allowed(&[expected.as_str()]));
    }
    doc_name::validate(doc)
        .map_err(|why| ApiError::new(StatusCode::BAD_REQUEST, "invalid_document_name", why))?;
    let (principal, role) = authorize(&app, req.remote, req.token.as_deref(), doc)?;
    if !matches!(op, Op::Sync | Op::Presence) && role < Role::Admin && app.config.auth.is_some() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_required",
            "this operation needs the admin role on the document",
        ));
    }
    match op {
        Op::Sync => sync(doc, &principal, role, req.if_none_match, &req.body, &app).await,
        Op::History => history(doc, &req.query, &app).await,
        Op::At(version) => {
            let want_json = req.query.get("format").is_some_and(|f| f == "json")
                || req
                    .accept
                    .as_deref()
                    .is_some_and(|a| a.contains("application/json"));
            at(doc, version, want_json, &app).await
        }
        Op::Restore(version) => restore(doc, version, &principal, &app).await,
        Op::Document => delete(doc, &principal.sub, &app).await,
        Op::Presence => Ok(crate::people::http::doc_presence(&app, doc)),
    }
}

enum Op {
    Sync,
    History,
    /// Who is online on the document (read role).
    Presence,
    At(u64),
    Restore(u64),
    Document,
}

/// `notes/1/at/42` → `("notes/1", Ok(42))`.
fn split_version<'a>(tail: &'a str, marker: &str) -> Option<(&'a str, Result<u64, ApiError>)> {
    let at = tail.rfind(marker)?;
    let version = tail[at + marker.len()..].parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_version",
            "version: a history seq number",
        )
    });
    Some((&tail[..at], version))
}

async fn sync(
    doc: &str,
    principal: &Principal,
    role: Role,
    if_none_match: Option<String>,
    body: &[u8],
    app: &Arc<App>,
) -> Result<Response, ApiError> {
    let malformed = |what: String| ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", what);
    let can_write = role >= Role::Write;
    let decoding = protocol::Decoding {
        frame_size_max_bytes: app.config.limits.frame_size_max_bytes,
        nesting_max: app.config.limits.nesting_depth_max,
        may_write: can_write,
    };
    let mut messages = protocol::decode_frame(body, &decoding)
        .map_err(|e| malformed(e.to_string()))?
        .into_iter();
    let Some(Inbound::SyncStep1(state_vector)) = messages.next() else {
        return Err(malformed(
            "the body must start with a SyncStep1 message (the client's state vector)".into(),
        ));
    };
    let (mut updates, mut read_only) = (Vec::new(), Vec::new());
    for message in messages {
        match message {
            Inbound::Update(update) => updates.push(update),
            Inbound::ReadOnlyUpdate(shape) => read_only.push(shape),
            other => {
                return Err(malformed(format!(
                    "only sync Update messages may follow the SyncStep1, not {}",
                    describe(&other)
                )))
            }
        }
    }
    let answer = room_sync(
        app,
        doc,
        HttpSyncParts {
            state_vector,
            updates,
            read_only,
            author: &principal.sub,
            if_none_match,
        },
    )
    .await?;
    let mut response = match sync_body(&answer) {
        None => warp::reply::with_status(Vec::new(), StatusCode::NOT_MODIFIED).into_response(),
        Some(body) => {
            let mut r = warp::reply::with_header(body, "content-type", "application/octet-stream")
                .into_response();
            r.headers_mut().insert(
                "x-tandem-refused-updates",
                warp::http::HeaderValue::from(answer.refused_updates),
            );
            r
        }
    };
    if let Ok(etag) = warp::http::HeaderValue::from_str(&answer.tag) {
        response.headers_mut().insert("etag", etag);
    }
    Ok(response)
}

/// The body of an HTTP sync answer: SyncStep2 (what the client lacks), our SyncStep1, and a
/// permission-denied message if edits were refused; `None` for "not modified".
fn sync_body(answer: &HttpSyncReply) -> Option<Vec<u8>> {
    let diff = answer.diff.as_ref()?;
    let mut body = protocol::encode_sync_step2(diff);
    body.extend_from_slice(&protocol::encode_sync_step1(&answer.state_vector));
    if answer.refused_updates > 0 {
        body.extend_from_slice(&protocol::encode_permission_denied(crate::room::READ_ONLY));
    }
    Some(body)
}

struct HttpSyncParts<'a> {
    state_vector: yrs::StateVector,
    updates: Vec<ClientUpdate>,
    read_only: Vec<UpdateShape>,
    author: &'a str,
    if_none_match: Option<String>,
}

/// Opens the document's room, sends it the command `make` builds around a reply channel, and
/// waits for the answer: the one way HTTP handlers talk to a room.
pub(crate) async fn ask_room<T>(
    app: &Arc<App>,
    doc: &str,
    make: impl FnOnce(oneshot::Sender<T>) -> RoomCmd,
) -> Result<T, ApiError> {
    let room = app.rooms.open(app, doc).await?;
    let (reply, answer) = oneshot::channel();
    room.send(make(reply)).await?;
    answer.await.map_err(|_| RoomError::Gone.into())
}

/// Sends edits through the document's room (so they are persisted, attributed and broadcast
/// like socket edits) and waits for the durable answer.
async fn room_sync(
    app: &Arc<App>,
    doc: &str,
    parts: HttpSyncParts<'_>,
) -> Result<HttpSyncReply, ApiError> {
    ask_room(app, doc, |reply| {
        RoomCmd::HttpSync(Box::new(HttpSync {
            state_vector: parts.state_vector,
            updates: parts.updates,
            read_only: parts.read_only,
            author: Arc::from(parts.author),
            if_none_match: parts.if_none_match,
            reply,
        }))
    })
    .await?
    .map_err(ApiError::from)
}

async fn history(
    doc: &str,
    query: &HashMap<String, String>,
    app: &Arc<App>,
) -> Result<Response, ApiError> {
    let bad =
        |what: &str| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", what.to_string());
    let after: u64 = match query.get("after") {
        Some(v) => v.parse().map_err(|_| bad("after: a version number"))?,
        None => 0,
    };
    let limit: usize = match query.get("limit") {
        Some(v) => v.parse().map_err(|_| bad("limit: a number"))?,
        None => 100,
    };
    let limit = limit.clamp(1, app.config.limits.history_page_len_max);
    let store = Arc::clone(&app.store);
    let name = doc.to_string();
    let entries = tokio::task::spawn_blocking(move || store.history(&name, after, limit + 1))
        .await
        .map_err(|_| ApiError::storage())?
        .map_err(|_| ApiError::storage())?;
    let more = entries.len() > limit;
    let page: Vec<_> = entries.into_iter().take(limit).collect();
    let next = if more {
        page.last().map(|e| e.seq)
    } else {
        None
    };
    let versions = page
        .iter()
        .map(|e| Version {
            version: e.seq,
            author: &e.author,
            time_ms: e.time_ms,
            size: e.size,
        })
        .collect();
    let history = History {
        doc,
        versions,
        next_after: next,
    };
    Ok(json_reply(StatusCode::OK, &history))
}

async fn past_state(doc: &str, version: u64, app: &Arc<App>) -> Result<Vec<u8>, ApiError> {
    let store = Arc::clone(&app.store);
    let name = doc.to_string();
    tokio::task::spawn_blocking(move || store.state_at(&name, version))
        .await
        .map_err(|_| ApiError::storage())?
        .map_err(|_| ApiError::storage())?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "version_not_found",
                "no such version, or its history is no longer kept",
            )
        })
}

/// The document as of `version`: a Yjs update, or its JSON with `?format=json` (or an `Accept`
/// of `application/json`).
async fn at(
    doc: &str,
    version: u64,
    want_json: bool,
    app: &Arc<App>,
) -> Result<Response, ApiError> {
    let state = past_state(doc, version, app).await?;
    if !want_json {
        return Ok(
            warp::reply::with_header(state, "content-type", "application/octet-stream")
                .into_response(),
        );
    }
    let json =
        tokio::task::spawn_blocking(move || tandem_crdt_model::history::state_to_json(&state))
            .await
            .map_err(|_| ApiError::storage())?
            .map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "render_failed",
                    e.to_string(),
                )
            })?;
    let past = Past {
        doc,
        version,
        content: json,
    };
    Ok(json_reply(StatusCode::OK, &past))
}

async fn restore(
    doc: &str,
    version: u64,
    principal: &Principal,
    app: &Arc<App>,
) -> Result<Response, ApiError> {
    let past = past_state(doc, version, app).await?;
    let current = ask_room(app, doc, RoomCmd::State).await?;
    // The revert is computed here, off the room's task; edits that land meanwhile survive it.
    let revert =
        tokio::task::spawn_blocking(move || tandem_crdt_model::history::revert_to(&current, &past))
            .await
            .map_err(|_| ApiError::storage())?
            .map_err(|e| ApiError::new(StatusCode::CONFLICT, "restore_failed", e.to_string()))?;
    let update = ClientUpdate::decode(revert, app.config.limits.nesting_depth_max)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "restore_failed", e.to_string()))?;
    let sv = update.decoded.state_vector();
    let answer = room_sync(
        app,
        doc,
        HttpSyncParts {
            state_vector: sv,
            updates: vec![update],
            read_only: Vec::new(),
            author: &principal.sub,
            if_none_match: None,
        },
    )
    .await?;
    let restored = Restored {
        doc,
        restored: version,
        etag: &answer.tag,
    };
    Ok(json_reply(StatusCode::OK, &restored))
}

async fn delete(doc: &str, by: &str, app: &Arc<App>) -> Result<Response, ApiError> {
    if delete_document(app, doc, by).await? {
        let deleted = DocDeleted { doc, deleted: true };
        Ok(json_reply(StatusCode::OK, &deleted))
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "document_not_found",
            "no such document",
        ))
    }
}

/// Deletes a document through its room: its sockets are closed with 4404 and the change feed
/// says `document.deleted`. False when there was no such document.
pub(crate) async fn delete_document(app: &Arc<App>, doc: &str, by: &str) -> Result<bool, ApiError> {
    let by = Arc::from(by);
    ask_room(app, doc, |reply| RoomCmd::Delete { by, reply })
        .await?
        .map_err(|_| ApiError::storage())
}

fn describe(message: &Inbound) -> &'static str {
    match message {
        Inbound::SyncStep1(_) => "a second SyncStep1",
        Inbound::Update(_) | Inbound::ReadOnlyUpdate(_) => "an update",
        Inbound::Awareness(_) => "an awareness message",
        Inbound::QueryAwareness => "a query-awareness message",
        Inbound::Auth => "an auth message",
        Inbound::Unknown(_) => "a message of unknown type",
        Inbound::Stateless(_) => "a stateless message",
    }
}

/// `GET <doc>/history`: a page of versions, oldest first.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct History<'a> {
    doc: &'a str,
    versions: Vec<Version<'a>>,
    /// Pass as `after` for the next page; null on the last.
    next_after: Option<u64>,
}

#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Version<'a> {
    version: u64,
    author: &'a str,
    time_ms: u64,
    size: u64,
}

/// `GET <doc>/at/<version>?format=json`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Past<'a> {
    doc: &'a str,
    version: u64,
    content: serde_json::Value,
}

/// `POST <doc>/restore/<version>`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Restored<'a> {
    doc: &'a str,
    restored: u64,
    etag: &'a str,
}

/// `DELETE <doc>`.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct DocDeleted<'a> {
    doc: &'a str,
    deleted: bool,
}
