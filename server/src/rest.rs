//! The typed REST API: notes, contacts and issues as JSON, with the same tokens and roles as the
//! websocket. Every write is a CRDT transaction made by the document's room (`RoomCmd::Edit`),
//! so connected editors see it live, it is persisted and attributed to the token's `sub`, and
//! the change feed describes it like any other edit.
//!
//! [`ROUTES`] is the one description of the API: requests are dispatched by matching it, and
//! `GET /api/openapi.json` is generated from it (see `openapi.rs`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use bytes::Bytes;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tandem_crdt_model::contact::{self, Contact, ContactEdit};
use tandem_crdt_model::issue::{self, Issue, IssueEdit};
use tandem_crdt_model::note::{self, Note, NoteEdit};
use tandem_crdt_model::schema::{SchemaIssue, LIST_LEN_MAX, SHORT_TEXT_CHARS_MAX};
use tandem_crdt_model::thread::{self, Entry};
use tandem_crdt_model::typed::{self, DocKind, Typed};
use warp::http::{Method, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;
use yrs::Doc;

use crate::api::{ask_room, delete_document, room_error, storage_error};
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::authorship::Authors;
use crate::http::{authenticate, credentials, role_on, ApiError};
use crate::room::{Edit, EditError, EditFn, RoomCmd};

/// A typed collection as the API exposes it: a kind, shared or in the caller's private space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub kind: DocKind,
    pub private: bool,
}

const NOTES: Scope = Scope {
    kind: DocKind::Note,
    private: false,
};
const PRIVATE_NOTES: Scope = Scope {
    kind: DocKind::Note,
    private: true,
};
const CONTACTS: Scope = Scope {
    kind: DocKind::Contact,
    private: false,
};
const ISSUES: Scope = Scope {
    kind: DocKind::Issue,
    private: false,
};

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    List(Scope),
    Create(Scope),
    Read(Scope),
    Patch(Scope),
    Delete(Scope),
    AddEntry(Scope),
    EditEntry(Scope),
    DeleteEntry(Scope),
    SetStatus,
}

/// A change to a document, made after the checks that decide whether it may be made.
type Change = Box<dyn FnOnce(&Doc) + Send>;

/// A schema generator for a request or response body.
pub type SchemaOf = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// One REST operation: how it is matched and how it is documented.
pub struct Route {
    pub method: Method,
    /// `{id}` and `{entry}` are path parameters (one segment of `[A-Za-z0-9._~-]`).
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    pub body: Option<SchemaOf>,
    /// The success status and body.
    pub ok: (u16, SchemaOf),
    /// The error statuses it may answer besides 401/403/429.
    pub errors: &'static [u16],
}

fn schema<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

macro_rules! route {
    ($method:ident $path:literal, $op:expr, $summary:literal, body $body:ty, ok $code:literal $ok:ty, errors $errors:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            op: $op,
            summary: $summary,
            body: Some(schema::<$body>),
            ok: ($code, schema::<$ok>),
            errors: $errors,
        }
    };
    ($method:ident $path:literal, $op:expr, $summary:literal, ok $code:literal $ok:ty, errors $errors:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            op: $op,
            summary: $summary,
            body: None,
            ok: ($code, schema::<$ok>),
            errors: $errors,
        }
    };
}

/// Every REST operation.
pub static ROUTES: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
    vec![
        route!(GET "/api/notes", Op::List(NOTES), "List shared notes", ok 200 Page<Item<Note>>, errors &[400]),
        route!(POST "/api/notes", Op::Create(NOTES), "Create a shared note", body NoteCreate, ok 201 Item<Note>, errors &[400, 409, 413]),
        route!(GET "/api/notes/{id}", Op::Read(NOTES), "Read a note", ok 200 Item<Note>, errors &[400, 404]),
        route!(PATCH "/api/notes/{id}", Op::Patch(NOTES), "Edit a note's title, tags or private flag", body NoteEdit, ok 200 Item<Note>, errors &[400, 404, 413]),
        route!(DELETE "/api/notes/{id}", Op::Delete(NOTES), "Delete a note (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
        route!(POST "/api/notes/{id}/replies", Op::AddEntry(NOTES), "Reply to a note", body EntryText, ok 201 Entry, errors &[400, 404, 413]),
        route!(PATCH "/api/notes/{id}/replies/{entry}", Op::EditEntry(NOTES), "Edit a reply (its author or an admin)", body EntryText, ok 200 Entry, errors &[400, 404, 413]),
        route!(DELETE "/api/notes/{id}/replies/{entry}", Op::DeleteEntry(NOTES), "Delete a reply (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
        route!(GET "/api/private/notes", Op::List(PRIVATE_NOTES), "List the caller's private notes", ok 200 Page<Item<Note>>, errors &[400]),
        route!(POST "/api/private/notes", Op::Create(PRIVATE_NOTES), "Create a private note", body NoteCreate, ok 201 Item<Note>, errors &[400, 409, 413]),
        route!(GET "/api/private/notes/{id}", Op::Read(PRIVATE_NOTES), "Read a private note", ok 200 Item<Note>, errors &[400, 404]),
        route!(PATCH "/api/private/notes/{id}", Op::Patch(PRIVATE_NOTES), "Edit a private note", body NoteEdit, ok 200 Item<Note>, errors &[400, 404, 413]),
        route!(DELETE "/api/private/notes/{id}", Op::Delete(PRIVATE_NOTES), "Delete a private note", ok 200 Deleted, errors &[400, 404]),
        route!(POST "/api/private/notes/{id}/replies", Op::AddEntry(PRIVATE_NOTES), "Reply to a private note", body EntryText, ok 201 Entry, errors &[400, 404, 413]),
        route!(PATCH "/api/private/notes/{id}/replies/{entry}", Op::EditEntry(PRIVATE_NOTES), "Edit a reply of a private note", body EntryText, ok 200 Entry, errors &[400, 404, 413]),
        route!(DELETE "/api/private/notes/{id}/replies/{entry}", Op::DeleteEntry(PRIVATE_NOTES), "Delete a reply of a private note", ok 200 Deleted, errors &[400, 404]),
        route!(GET "/api/contacts", Op::List(CONTACTS), "List contacts", ok 200 Page<Item<Contact>>, errors &[400]),
        route!(POST "/api/contacts", Op::Create(CONTACTS), "Create a contact", body ContactCreate, ok 201 Item<Contact>, errors &[400, 409, 413]),
        route!(GET "/api/contacts/{id}", Op::Read(CONTACTS), "Read a contact", ok 200 Item<Contact>, errors &[400, 404]),
        route!(PATCH "/api/contacts/{id}", Op::Patch(CONTACTS), "Edit a contact's fields (a custom field set to null is removed)", body ContactEdit, ok 200 Item<Contact>, errors &[400, 404, 413]),
        route!(DELETE "/api/contacts/{id}", Op::Delete(CONTACTS), "Delete a contact (admin)", ok 200 Deleted, errors &[400, 404]),
        route!(GET "/api/issues", Op::List(ISSUES), "List issues", ok 200 Page<Item<Issue>>, errors &[400]),
        route!(POST "/api/issues", Op::Create(ISSUES), "Create an issue", body IssueCreate, ok 201 Item<Issue>, errors &[400, 409, 413]),
        route!(GET "/api/issues/{id}", Op::Read(ISSUES), "Read an issue", ok 200 Item<Issue>, errors &[400, 404]),
        route!(PATCH "/api/issues/{id}", Op::Patch(ISSUES), "Edit an issue", body IssueEdit, ok 200 Item<Issue>, errors &[400, 404, 413]),
        route!(DELETE "/api/issues/{id}", Op::Delete(ISSUES), "Delete an issue (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
        route!(PUT "/api/issues/{id}/status", Op::SetStatus, "Change an issue's status", body StatusChange, ok 200 Item<Issue>, errors &[400, 404]),
        route!(POST "/api/issues/{id}/comments", Op::AddEntry(ISSUES), "Comment on an issue", body EntryText, ok 201 Entry, errors &[400, 404, 413]),
        route!(PATCH "/api/issues/{id}/comments/{entry}", Op::EditEntry(ISSUES), "Edit a comment (its author or an admin)", body EntryText, ok 200 Entry, errors &[400, 404, 413]),
        route!(DELETE "/api/issues/{id}/comments/{entry}", Op::DeleteEntry(ISSUES), "Delete a comment (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
    ]
});

/// A typed document as the API returns it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Item<T> {
    /// The id in its collection.
    pub id: String,
    /// The Yjs document name (connect a y-websocket provider to `/sync/<doc>`).
    pub doc: String,
    #[serde(flatten)]
    pub value: T,
    /// Where the document deviates from its layout (a client wrote a number where text
    /// belongs, ...). Such values read as defaults; the document itself is left as it is.
    pub schema_issues: Vec<SchemaIssue>,
}

/// A page of a listing, in id order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    pub deleted: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteCreate {
    /// Chosen by the client (one segment of `[A-Za-z0-9._~-]`, at most 64); generated if absent.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$"))]
    pub id: Option<String>,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub title: String,
    /// Plain text; each line becomes a paragraph of the rich-text body.
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::LIST_LEN_MAX), inner(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX)))]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCreate {
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$"))]
    pub id: Option<String>,
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX), regex(pattern = r"\S"))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub email: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub phone: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub company: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCreate {
    #[serde(default)]
    #[schemars(regex(pattern = r"^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$"))]
    pub id: Option<String>,
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// `open` (default), `in_progress`, `done` or `cancelled`.
    #[serde(default)]
    #[schemars(extend("enum" = ["open", "in_progress", "done", "cancelled", null]))]
    pub status: Option<String>,
    /// `low`, `medium` (default), `high` or `urgent`.
    #[serde(default)]
    #[schemars(extend("enum" = ["low", "medium", "high", "urgent", null]))]
    pub priority: Option<String>,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::LIST_LEN_MAX), inner(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX)))]
    pub assignees: Vec<String>,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::LIST_LEN_MAX), inner(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX)))]
    pub labels: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryText {
    pub text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `open`, `in_progress`, `done` or `cancelled`.
    #[schemars(extend("enum" = ["open", "in_progress", "done", "cancelled"]))]
    pub status: String,
}

/// The body of every error answer.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `invalid_field`, `not_found`, `already_exists`, ...
    pub code: String,
    /// For people.
    pub message: String,
    /// The request field at fault, for `invalid_field`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// One matched request.
struct Call<'a> {
    op: Op,
    id: Option<&'a str>,
    entry: Option<&'a str>,
}

/// Finds the route of `method path`: `Ok(None)` when no route has this path (another filter may
/// serve it), `Err` with the answer for a known path with the wrong method (405 with `Allow`) or
/// a malformed parameter.
fn route_of<'a>(method: &Method, path: &'a str) -> Result<Option<Call<'a>>, Box<Response>> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut allowed = Vec::new();
    for route in ROUTES.iter() {
        let template: Vec<&str> = route.path.split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut id = None;
        let mut entry = None;
        let matches = template.iter().zip(&segments).all(|(t, s)| match *t {
            "{id}" => {
                id = Some(*s);
                true
            }
            "{entry}" => {
                entry = Some(*s);
                true
            }
            literal => literal == *s,
        });
        if !matches {
            continue;
        }
        if route.method != *method {
            allowed.push(route.method.as_str());
            continue;
        }
        for (name, value) in [("id", id), ("entry", entry)] {
            if let Some(value) = value {
                check_id(name, value).map_err(|e| Box::new(e.into_response()))?;
            }
        }
        return Ok(Some(Call {
            op: route.op,
            id,
            entry,
        }));
    }
    if allowed.is_empty() {
        return Ok(None);
    }
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {} here", allowed.join(" or ")),
    )
    .into_response();
    if let Ok(allow) = warp::http::HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert("allow", allow);
    }
    Err(Box::new(response))
}

/// Ids are one document-name segment: short, and safe in names and URLs.
fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    let ok = (1..=64).contains(&id.len())
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            field,
            "1 to 64 characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit",
        ))
    }
}

/// A fresh id: 16 hex digits from the process's hasher keys, the clock and a counter.
fn new_id() -> String {
    use std::hash::BuildHasher;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = COUNTER.fetch_add(1, Relaxed);
    format!(
        "{:016x}",
        std::collections::hash_map::RandomState::new().hash_one((nanos, n))
    )
}

/// The typed documents keep times as JavaScript numbers (milliseconds, as `Date.now()`).
#[allow(clippy::cast_precision_loss)] // exact below 2^53 ms, the year 287,396
fn now_ms() -> f64 {
    crate::clock::now_ms() as f64
}

pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let body_max = app.config.limits.rest_body_max_bytes;
    let with_app = warp::any().map(move || Arc::clone(&app));
    let query = warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify();
    warp::path("api")
        .and(warp::path::full())
        .and(warp::method())
        .and(query)
        .and(credentials())
        .and(crate::accept::remote())
        .and(crate::http::bounded_body(body_max))
        .and(with_app)
        .and_then(
            |path: warp::path::FullPath,
             method: Method,
             query: HashMap<String, String>,
             token: Option<String>,
             remote: Option<SocketAddr>,
             body: Bytes,
             app: Arc<App>| async move {
                let call = match route_of(&method, path.as_str()) {
                    Ok(Some(call)) => call,
                    Ok(None) => return Err(warp::reject::not_found()),
                    Err(refusal) => return Ok(*refusal),
                };
                let request = Request {
                    query: &query,
                    token: token.as_deref(),
                    remote,
                    body: &body,
                };
                Ok(handle(&app, &call, request)
                    .await
                    .unwrap_or_else(ApiError::into_response))
            },
        )
}

struct Request<'a> {
    query: &'a HashMap<String, String>,
    token: Option<&'a str>,
    remote: Option<SocketAddr>,
    body: &'a [u8],
}

async fn handle(app: &Arc<App>, call: &Call<'_>, req: Request<'_>) -> Result<Response, ApiError> {
    let principal = authenticate(app, req.remote, req.token)?;
    match call.op {
        Op::List(scope) => list(app, &principal, scope, req.query).await,
        Op::Create(scope) => {
            let (id, edit) = create_edit(scope, req.body, &principal)?;
            let doc = doc_of(scope, &id, &principal);
            require(&principal, &doc, Role::Write)?;
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            update_index(app, &principal, scope, &id, Some(&value)).await;
            Ok(json_reply(StatusCode::CREATED, &value))
        }
        Op::Read(scope) => {
            let doc = doc_of(scope, param(call.id)?, &principal);
            require(&principal, &doc, Role::Read)?;
            let (kind, id, name) = (scope.kind, param(call.id)?.to_string(), doc.clone());
            let value = edit_in_room(
                app,
                &doc,
                &principal.sub,
                Box::new(move |d, _| existing(kind, d, &id, &name)),
            )
            .await?;
            Ok(json_reply(StatusCode::OK, &value))
        }
        Op::Patch(scope) => {
            let doc = doc_of(scope, param(call.id)?, &principal);
            require(&principal, &doc, Role::Write)?;
            let edit = patch_edit(scope.kind, param(call.id)?, &doc, req.body)?;
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            update_index(app, &principal, scope, param(call.id)?, Some(&value)).await;
            Ok(json_reply(StatusCode::OK, &value))
        }
        Op::SetStatus => {
            let doc = doc_of(ISSUES, param(call.id)?, &principal);
            require(&principal, &doc, Role::Write)?;
            let StatusChange { status } = parse(req.body)?;
            let change = issue_change(IssueEdit {
                status: Some(status),
                ..IssueEdit::default()
            })?;
            let edit = on_existing(DocKind::Issue, param(call.id)?.into(), doc.clone(), change);
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            update_index(app, &principal, ISSUES, param(call.id)?, Some(&value)).await;
            Ok(json_reply(StatusCode::OK, &value))
        }
        Op::Delete(scope) => delete(app, &principal, scope, param(call.id)?).await,
        Op::AddEntry(scope) | Op::EditEntry(scope) | Op::DeleteEntry(scope) => {
            let doc = doc_of(scope, param(call.id)?, &principal);
            let role = require(&principal, &doc, Role::Write)?;
            let text = match call.op {
                Op::DeleteEntry(_) => None,
                _ => Some(parse::<EntryText>(req.body)?.text),
            };
            let edit = entry_edit(
                scope.kind,
                call.op,
                call.entry.map(str::to_string),
                text,
                &principal.sub,
                role >= Role::Admin,
            )?;
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            let status = if matches!(call.op, Op::AddEntry(_)) {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_reply(status, &value))
        }
    }
}

fn param(value: Option<&str>) -> Result<&str, ApiError> {
    value.ok_or_else(|| ApiError::invalid("id", "missing"))
}

fn doc_of(scope: Scope, id: &str, principal: &Principal) -> String {
    typed::doc_name(scope.kind, id, scope.private.then_some(principal.space()))
}

/// The caller's role on `doc` if it is at least `needed`.
fn require(principal: &Principal, doc: &str, needed: Role) -> Result<Role, ApiError> {
    let role = role_on(principal, doc)?;
    if role < needed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {needed:?} role on the document").to_lowercase(),
        ));
    }
    Ok(role)
}

fn json_reply(status: StatusCode, value: &Value) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

/// Parses a JSON body, naming the field at fault when it does not fit.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", inner.to_string())
        } else {
            ApiError::invalid(path, inner.to_string())
        }
    })
}

/// Short text fields are bounded in characters (what the OpenAPI schema can state).
fn check_short(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > SHORT_TEXT_CHARS_MAX {
        return Err(ApiError::invalid(
            field,
            format!("longer than {SHORT_TEXT_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

fn check_list(field: &str, values: &[String]) -> Result<(), ApiError> {
    if values.len() > LIST_LEN_MAX {
        return Err(ApiError::invalid(
            field,
            format!("more than {LIST_LEN_MAX} entries"),
        ));
    }
    for (i, v) in values.iter().enumerate() {
        check_short(&format!("{field}[{i}]"), v)?;
    }
    Ok(())
}

fn check_enum(field: &str, value: Option<&str>, allowed: &[&str]) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::invalid(
            field,
            format!("must be one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}

/// The typed reading of an existing document as the API returns it.
fn item_json(kind: DocKind, doc: &Doc, id: &str, name: &str) -> Option<Value> {
    let (value, schema_issues) = typed::read(kind, doc);
    if value.is_blank() {
        return None;
    }
    let mut out = serde_json::to_value(&value).unwrap_or_default();
    if let Value::Object(map) = &mut out {
        map.insert("id".into(), json!(id));
        map.insert("doc".into(), json!(name));
        map.insert("schema_issues".into(), json!(schema_issues));
    }
    Some(out)
}

fn existing(kind: DocKind, doc: &Doc, id: &str, name: &str) -> Result<Value, EditError> {
    item_json(kind, doc, id, name).ok_or_else(|| not_found(kind))
}

fn not_found(kind: DocKind) -> EditError {
    EditError::NotFound(format!("no such {}", kind.name()))
}

/// Validates a create request and returns the id and the edit that creates it.
fn create_edit(
    scope: Scope,
    body: &[u8],
    caller: &Principal,
) -> Result<(String, EditFn), ApiError> {
    let author = caller.sub.clone();
    let kind = scope.kind;
    let (id, make): (Option<String>, Change) = match kind {
        DocKind::Note => {
            let r: NoteCreate = parse(body)?;
            check_short("title", &r.title)?;
            check_list("tags", &r.tags)?;
            let private = scope.private;
            (
                r.id,
                Box::new(move |d: &Doc| {
                    let now = now_ms();
                    note::create(d, &author, now, &r.title, private);
                    if !r.body.is_empty() {
                        note::append_body(d, &r.body);
                    }
                    if !r.tags.is_empty() {
                        let edit = NoteEdit {
                            tags: Some(r.tags),
                            ..NoteEdit::default()
                        };
                        note::apply(d, &edit, now);
                    }
                }),
            )
        }
        DocKind::Contact => {
            let r: ContactCreate = parse(body)?;
            for (field, value) in [
                ("name", &r.name),
                ("email", &r.email),
                ("phone", &r.phone),
                ("company", &r.company),
            ] {
                check_short(field, value)?;
            }
            if r.name.trim().is_empty() {
                return Err(ApiError::invalid("name", "must not be empty"));
            }
            (
                r.id,
                Box::new(move |d: &Doc| {
                    let edit = ContactEdit {
                        name: Some(r.name),
                        email: Some(r.email),
                        phone: Some(r.phone),
                        company: Some(r.company),
                        notes: Some(r.notes),
                        custom: r.custom.into_iter().map(|(k, v)| (k, Some(v))).collect(),
                    };
                    contact::apply(d, &edit);
                }),
            )
        }
        DocKind::Issue => {
            let r: IssueCreate = parse(body)?;
            check_short("title", &r.title)?;
            check_enum("status", r.status.as_deref(), &issue::STATUSES)?;
            check_enum("priority", r.priority.as_deref(), &issue::PRIORITIES)?;
            check_list("assignees", &r.assignees)?;
            check_list("labels", &r.labels)?;
            (
                r.id,
                Box::new(move |d: &Doc| {
                    let now = now_ms();
                    issue::create(d, &author, now, &r.title);
                    let edit = IssueEdit {
                        description: Some(r.description),
                        status: r.status,
                        priority: r.priority,
                        assignees: Some(r.assignees),
                        labels: Some(r.labels),
                        ..IssueEdit::default()
                    };
                    // Validated above, so this cannot be refused.
                    let _ = issue::apply(d, &edit, now);
                }),
            )
        }
    };
    let id = match id {
        Some(id) => {
            check_id("id", &id)?;
            id
        }
        None => new_id(),
    };
    let name = doc_of(scope, &id, caller);
    let reply_id = id.clone();
    let edit: EditFn = Box::new(move |d: &Doc, _: &Authors| {
        if !typed::read(kind, d).0.is_blank() {
            return Err(EditError::Conflict(format!(
                "a {} with this id exists",
                kind.name()
            )));
        }
        make(d);
        existing(kind, d, &reply_id, &name)
    });
    Ok((id, edit))
}

/// Validates a patch and returns the edit that applies it to an existing document.
fn patch_edit(kind: DocKind, id: &str, name: &str, body: &[u8]) -> Result<EditFn, ApiError> {
    let (id, name) = (id.to_string(), name.to_string());
    let change: Change = match kind {
        DocKind::Note => {
            let e: NoteEdit = parse(body)?;
            if let Some(t) = &e.title {
                check_short("title", t)?;
            }
            if let Some(tags) = &e.tags {
                check_list("tags", tags)?;
            }
            Box::new(move |d: &Doc| note::apply(d, &e, now_ms()))
        }
        DocKind::Contact => {
            let e: ContactEdit = parse(body)?;
            for (field, value) in [
                ("name", &e.name),
                ("email", &e.email),
                ("phone", &e.phone),
                ("company", &e.company),
            ] {
                if let Some(v) = value {
                    check_short(field, v)?;
                }
            }
            Box::new(move |d: &Doc| contact::apply(d, &e))
        }
        DocKind::Issue => issue_change(parse(body)?)?,
    };
    Ok(on_existing(kind, id, name, change))
}

/// Validates an issue edit and returns the change that makes it.
fn issue_change(e: IssueEdit) -> Result<Change, ApiError> {
    if let Some(t) = &e.title {
        check_short("title", t)?;
    }
    check_enum("status", e.status.as_deref(), &issue::STATUSES)?;
    check_enum("priority", e.priority.as_deref(), &issue::PRIORITIES)?;
    for (field, list) in [("assignees", &e.assignees), ("labels", &e.labels)] {
        if let Some(list) = list {
            check_list(field, list)?;
        }
    }
    Ok(Box::new(move |d: &Doc| {
        // Validated above, so this cannot be refused.
        let _ = issue::apply(d, &e, now_ms());
    }))
}

/// The edit that makes `change` to an existing document and answers with its new reading.
fn on_existing(kind: DocKind, id: String, name: String, change: Change) -> EditFn {
    Box::new(move |d: &Doc, _: &Authors| {
        if typed::read(kind, d).0.is_blank() {
            return Err(not_found(kind));
        }
        change(d);
        existing(kind, d, &id, &name)
    })
}

/// Adds, edits or deletes a reply or comment. Only its author (or an admin) may change one.
fn entry_edit(
    kind: DocKind,
    op: Op,
    entry: Option<String>,
    text: Option<String>,
    caller: &str,
    admin: bool,
) -> Result<EditFn, ApiError> {
    let Some((thread_root, entry_name)) = kind.thread() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route",
        ));
    };
    let caller = caller.to_string();
    Ok(Box::new(move |d: &Doc, authors: &Authors| {
        if typed::read(kind, d).0.is_blank() {
            return Err(not_found(kind));
        }
        let entry_of = |d: &Doc, id: &str| -> Option<Entry> {
            let (value, _) = typed::read(kind, d);
            let entries = match value {
                Typed::Note(n) => n.replies,
                Typed::Issue(i) => i.comments,
                Typed::Contact(_) => Vec::new(),
            };
            entries.into_iter().find(|e| e.id == id)
        };
        let missing = || EditError::NotFound(format!("no such {entry_name}"));
        match (op, entry, text) {
            (Op::AddEntry(_), _, Some(text)) => {
                let id = new_id();
                thread::add(d, thread_root, &id, &caller, &text, now_ms());
                let e = entry_of(d, &id).ok_or_else(missing)?;
                Ok(serde_json::to_value(e).unwrap_or_default())
            }
            (op, Some(id), text) => {
                let item = thread::entry_item(d, thread_root, &id).ok_or_else(missing)?;
                // The server's record of who wrote the entry, not its `author` field.
                if authors.author_of(&item) != Some(caller.as_str()) && !admin {
                    return Err(EditError::Forbidden(format!(
                        "only the {entry_name}'s author or an admin may change it"
                    )));
                }
                match (op, text) {
                    (Op::EditEntry(_), Some(text)) => {
                        thread::edit(d, thread_root, &id, &text);
                        let e = entry_of(d, &id).ok_or_else(missing)?;
                        Ok(serde_json::to_value(e).unwrap_or_default())
                    }
                    _ => {
                        thread::delete(d, thread_root, &id);
                        Ok(json!({ "deleted": true }))
                    }
                }
            }
            _ => Err(missing()),
        }
    }))
}

/// The index document the web demo lists a collection from: `workspace/index`, or the owner's
/// `private/<sub>/index`. Each holds one `Y.Map` per collection (`notes`, `contacts`, `issues`)
/// of id → `Y.Map {title, updated, status?, private?}`; clients keep it up to date as they edit.
fn index_of(scope: Scope, principal: &Principal) -> String {
    if scope.private {
        format!("private/{}/index", principal.space())
    } else {
        "workspace/index".to_string()
    }
}

/// Keeps the index row of a REST-created, -edited or -deleted item in step, so lists built
/// from the index (the web demo's) show it. Best effort: the document is the truth, and a
/// caller without write access to the index leaves it to the clients that have it.
async fn update_index(
    app: &Arc<App>,
    principal: &Principal,
    scope: Scope,
    id: &str,
    item: Option<&Value>,
) {
    let index = index_of(scope, principal);
    if principal.role_for(&index).is_none_or(|r| r < Role::Write) {
        return;
    }
    let collection = scope.kind.collection();
    let id = id.to_string();
    let row: Option<Vec<(&'static str, yrs::Any)>> = item.map(|item| {
        let title = item["title"]
            .as_str()
            .or(item["name"].as_str())
            .unwrap_or_default();
        let mut row = vec![
            ("title", yrs::Any::from(title)),
            (
                "updated",
                yrs::Any::from(item["updated"].as_f64().unwrap_or_else(now_ms)),
            ),
        ];
        if let Some(status) = item["status"].as_str() {
            row.push(("status", yrs::Any::from(status)));
        }
        if scope.private {
            row.push(("private", yrs::Any::from(true)));
        }
        row
    });
    let edit: EditFn = Box::new(move |d: &Doc, _: &Authors| {
        use yrs::{Map, MapPrelim, Out, Transact};
        let map = d.get_or_insert_map(collection);
        let mut txn = d.transact_mut();
        match row {
            None => {
                map.remove(&mut txn, &id);
            }
            Some(fields) => {
                let row = match map.get(&txn, &id) {
                    Some(Out::YMap(row)) => row,
                    _ => map.insert(&mut txn, id.as_str(), MapPrelim::default()),
                };
                for (key, value) in fields {
                    if !matches!(row.get(&txn, key), Some(Out::Any(ref current)) if *current == value)
                    {
                        row.insert(&mut txn, key, value);
                    }
                }
            }
        }
        Ok(Value::Null)
    });
    if let Err(e) = edit_in_room(app, &index, &principal.sub, edit).await {
        tracing::debug!(index = %index, error = %e.message, "index row not updated");
    }
}

/// Sends an edit (or a read) to the document's room and waits for its durable answer.
async fn edit_in_room(
    app: &Arc<App>,
    doc: &str,
    author: &str,
    apply: EditFn,
) -> Result<Value, ApiError> {
    let author = Arc::from(author);
    ask_room(app, doc, |reply| {
        RoomCmd::Edit(Edit {
            author,
            apply,
            reply,
        })
    })
    .await?
    .map_err(edit_error)
}

fn edit_error(e: EditError) -> ApiError {
    match e {
        EditError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
        EditError::Invalid { field, message } => ApiError::invalid(field, message),
        EditError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "already_exists", m),
        EditError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
        EditError::TooLarge => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "document_too_large",
            e.to_string(),
        ),
        EditError::Failed => ApiError::new(StatusCode::CONFLICT, "edit_failed", e.to_string()),
        EditError::Storage => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "storage_failure",
            "the edit could not be made durable; retry",
        ),
        EditError::Room(e) => room_error(e),
    }
}

/// A page of a collection, read from the store (no room is opened for a listing).
async fn list(
    app: &Arc<App>,
    principal: &Principal,
    scope: Scope,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let max = app.config.limits.rest_page_len_max;
    let limit = match query.get("limit") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("a number from 1 to {max}")))?,
        None => app.config.limits.rest_page_len_default.min(max),
    };
    let after = match query.get("after") {
        Some(a) => {
            check_id("after", a)?;
            a.as_str()
        }
        None => "",
    };
    let prefix = format!("{}/", doc_of(scope, "", principal).trim_end_matches('/'));
    let after_name = if after.is_empty() {
        String::new()
    } else {
        format!("{prefix}{after}")
    };
    let store = Arc::clone(&app.store);
    let (kind, caller) = (scope.kind, principal.clone());
    let page = tokio::task::spawn_blocking(move || -> Result<(Vec<Value>, bool), String> {
        let infos = store
            .list_page(&prefix, &after_name, limit + 1)
            .map_err(|e| e.to_string())?;
        let more = infos.len() > limit;
        let mut items = Vec::new();
        for info in infos.into_iter().take(limit) {
            let id = &info.name[prefix.len()..];
            // Nested names (`notes/a/b`) are not typed documents; unreadable ones are skipped.
            if id.contains('/') || caller.role_for(&info.name).is_none() {
                continue;
            }
            let Some(stored) = store.load(&info.name).map_err(|e| e.to_string())? else {
                continue;
            };
            let Ok((doc, _)) = tandem_crdt_model::doc::build(stored.updates()) else {
                continue;
            };
            items.extend(item_json(kind, &doc, id, &info.name));
        }
        Ok((items, more))
    })
    .await
    .map_err(|_| storage_error())?
    .map_err(|_| storage_error())?;
    let (items, more) = page;
    let next_after = more
        .then(|| {
            items
                .last()
                .and_then(|i| i["id"].as_str().map(str::to_string))
        })
        .flatten();
    let mut body = json!({ "items": items });
    if let Some(next) = next_after {
        body["next_after"] = json!(next);
    }
    Ok(json_reply(StatusCode::OK, &body))
}

/// Deletes a typed document: its author (or an admin; anyone in their own private space).
async fn delete(
    app: &Arc<App>,
    principal: &Principal,
    scope: Scope,
    id: &str,
) -> Result<Response, ApiError> {
    let doc = doc_of(scope, id, principal);
    let role = require(principal, &doc, Role::Write)?;
    let kind = scope.kind;
    let author = edit_in_room(
        app,
        &doc,
        &principal.sub,
        Box::new(move |d: &Doc, authors: &Authors| {
            if typed::read(kind, d).0.is_blank() {
                return Err(not_found(kind));
            }
            // Who created it by the server's record (the author of its first update), never
            // the `author` field in its metadata, which any writer can change.
            Ok(json!(authors.creator()))
        }),
    )
    .await?;
    let allowed = role >= Role::Admin
        || scope.private
        || app.config.auth.is_none()
        || author.as_str() == Some(principal.sub.as_str());
    if !allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("only its author or an admin may delete a {}", kind.name()),
        ));
    }
    if delete_document(app, &doc, &principal.sub).await? {
        update_index(app, principal, scope, id, None).await;
        Ok(json_reply(StatusCode::OK, &json!({ "deleted": true })))
    } else {
        Err(edit_error(not_found(kind)))
    }
}
