//! The endpoints outside the typed REST table, described for the OpenAPI document: HTTP sync,
//! history, past states, restore and delete of any document; who is online; notifications; the
//! people directory; the webhook admin API; health, stats, session and dev tokens; the websocket endpoints and
//! `/metrics`. Their JSON bodies are the types the handlers serialize (schemars), so they cannot
//! drift; the paths and statuses are written here, beside the handlers they describe.

use schemars::SchemaGenerator;
use serde_json::{json, Map, Value};

use crate::api::{DocDeleted, History, Past, Restored};
use crate::http::{DevLogin, DevToken, Health, Session, Stats};
use crate::people::http::{MarkReadBody, NotificationPage, PeoplePage, PresenceList, Unread};
use crate::people::online::DocPresence;
use crate::webhooks::admin::{Requeued, WebhookList};

/// What the descriptions share: the generator of schemas and the JSON error answer.
pub(super) struct Describe<'a> {
    pub generator: &'a mut SchemaGenerator,
    pub error: Value,
}

impl Describe<'_> {
    fn schema<T: schemars::JsonSchema>(&mut self) -> Value {
        serde_json::to_value(self.generator.subschema_for::<T>()).unwrap_or_default()
    }

    fn json<T: schemars::JsonSchema>(&mut self, description: &str) -> Value {
        json!({ "description": description, "content": { "application/json": { "schema": self.schema::<T>() } } })
    }

    fn error(&self, description: &str) -> Value {
        json!({ "description": description, "content": { "application/json": { "schema": self.error } } })
    }

    /// The refusals every authenticated endpoint may answer.
    fn refusals(&self, responses: &mut Map<String, Value>) {
        for (status, what) in [
            (401, "missing, invalid or expired token"),
            (429, "too many failed authentications from this address"),
        ] {
            responses.insert(status.to_string(), self.error(what));
        }
    }
}

fn doc_param() -> Value {
    json!({
        "name": "doc", "in": "path", "required": true,
        "description": "a document name (1 to 255 of A-Z a-z 0-9 . _ ~ - /, no `..`; here one segment)",
        "schema": { "type": "string", "maxLength": 255, "pattern": "^(\\.|\\.?([A-Za-z0-9_~-]+\\.?)+)$" }
    })
}

fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

fn op(summary: &str, id: &str, parameters: Vec<Value>, responses: Map<String, Value>) -> Value {
    json!({
        "summary": summary,
        "operationId": id,
        "parameters": parameters,
        "responses": responses,
        "security": [{}, { "bearer": [] }],
    })
}

fn responses(pairs: Vec<(u16, Value)>) -> Map<String, Value> {
    pairs.into_iter().map(|(s, v)| (s.to_string(), v)).collect()
}

/// Adds every endpoint this module describes to `paths`.
pub(super) fn add(paths: &mut Map<String, Value>, d: &mut Describe<'_>) {
    let version = json!({ "name": "version", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 0, "maximum": u64::MAX } });
    let binary = json!({ "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } });

    // HTTP sync.
    let mut sync = responses(vec![
        (
            200,
            json!({ "description": "SyncStep2 (what the client lacks), then the server's SyncStep1; ETag: the state's tag", "content": binary }),
        ),
        (
            304,
            json!({ "description": "If-None-Match matched: nothing changed" }),
        ),
        (
            400,
            d.error("not a SyncStep1 followed by updates, or an update refused as malformed"),
        ),
        (403, d.error("the token grants no access to this document")),
        (413, d.error("the body or the document is too large")),
        (
            503,
            d.error("storage unavailable or the document busy; retry"),
        ),
    ]);
    d.refusals(&mut sync);
    let mut sync_op = op(
        "One-round-trip sync: the client's state vector and offline updates in, what it lacks out",
        "post_docs_doc_sync",
        vec![doc_param()],
        sync,
    );
    sync_op["requestBody"] = json!({ "required": true, "content": binary });
    paths.insert("/api/docs/{doc}/sync".into(), json!({ "post": sync_op }));

    // History, a past state, restore, delete (admin role when authentication is on).
    let admin = |d: &mut Describe<'_>, ok: Value, extra: Vec<(u16, &str)>| {
        let mut r = responses(vec![(200, ok)]);
        r.insert("400".into(), d.error("invalid document name or parameter"));
        r.insert(
            "403".into(),
            d.error("this operation needs the admin role on the document"),
        );
        for (status, what) in extra {
            r.insert(status.to_string(), d.error(what));
        }
        r.insert("503".into(), d.error("storage unavailable; retry"));
        d.refusals(&mut r);
        r
    };
    let ok = d.json::<History<'static>>("a page of versions, oldest first");
    let history = admin(d, ok, vec![]);
    paths.insert("/api/docs/{doc}/history".into(), json!({ "get": op(
        "The document's versions with their authors", "get_docs_doc_history",
        vec![doc_param(),
             query("after", "the next_after of the previous page", json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX })),
             query("limit", "versions per page, brought within 1 to --history-page-len-max", json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }))],
        history) }));
    let past = d.schema::<Past<'static>>();
    let at = admin(
        d,
        json!({ "description": "the document as of that version: a Yjs update, or with ?format=json its JSON", "content": {
        "application/octet-stream": { "schema": { "type": "string", "format": "binary" } },
        "application/json": { "schema": past } } }),
        vec![(404, "no such version, or its history is no longer kept")],
    );
    paths.insert("/api/docs/{doc}/at/{version}".into(), json!({ "get": op(
        "The document as it was at a version", "get_docs_doc_at_version",
        vec![doc_param(), version.clone(), query("format", "json for JSON (or Accept: application/json); anything else, the Yjs update", json!({ "type": "string" }))],
        at) }));
    let ok = d.json::<Restored<'static>>("restored as a new forward edit");
    let restore = admin(
        d,
        ok,
        vec![(404, "no such version, or its history is no longer kept")],
    );
    paths.insert("/api/docs/{doc}/restore/{version}".into(), json!({ "post": op(
        "Restore a past version as a new edit", "post_docs_doc_restore_version", vec![doc_param(), version], restore) }));
    let ok = d.json::<DocDeleted<'static>>("whether it existed");
    let delete = admin(d, ok, vec![(404, "no such document")]);
    paths.insert(
        "/api/docs/{doc}".into(),
        json!({ "delete": op(
        "Delete a document and its history", "delete_docs_doc", vec![doc_param()], delete) }),
    );

    // Who is online.
    let mut here = responses(vec![
        (
            200,
            d.json::<DocPresence>("the people with sockets on the document"),
        ),
        (400, d.error("invalid document name")),
        (403, d.error("the token grants no access to this document")),
    ]);
    d.refusals(&mut here);
    paths.insert("/api/docs/{doc}/presence".into(), json!({ "get": op(
        "Who is online on a document (authenticated sockets, one entry per person)", "get_docs_doc_presence", vec![doc_param()], here) }));
    let mut all = responses(vec![(
        200,
        d.json::<PresenceList>("every open document the caller may read that matches"),
    )]);
    d.refusals(&mut all);
    paths.insert("/api/presence".into(), json!({ "get": op(
        "Who is online, across documents", "get_presence",
        vec![query("docs", "a document pattern such as notes/*", json!({ "type": "string" }))], all) }));

    // Notifications.
    let mut list = responses(vec![
        (
            200,
            d.json::<NotificationPage>("the caller's notifications, newest first"),
        ),
        (400, d.error("invalid limit, after or unread")),
        (503, d.error("storage unavailable; retry")),
    ]);
    d.refusals(&mut list);
    paths.insert("/api/me/notifications".into(), json!({ "get": op(
        "The caller's notifications", "get_me_notifications",
        vec![query("unread", "only unread ones", json!({ "type": "string", "enum": ["true", "false"] })),
             query("limit", "notifications per page (default 50)", json!({ "type": "integer", "minimum": 1, "maximum": crate::config::Limits::default().notifications_page_max })),
             query("after", "the next_after of the previous page", json!({ "type": "integer", "minimum": 0, "maximum": u64::MAX }))],
        list) }));
    let mut read = responses(vec![
        (200, d.json::<Unread>("the unread count after")),
        (
            400,
            d.error("neither ids nor \"all\": true, or too many ids"),
        ),
        (413, d.error("the body is too large")),
        (503, d.error("storage unavailable; retry")),
    ]);
    d.refusals(&mut read);
    let mut read_op = op(
        "Mark notifications read",
        "post_me_notifications_read",
        vec![],
        read,
    );
    read_op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": d.schema::<MarkReadBody>() } } });
    paths.insert(
        "/api/me/notifications/read".into(),
        json!({ "post": read_op }),
    );
    let mut events = responses(vec![
        (
            200,
            json!({ "description": "an endless text/event-stream: `event: notification`, `id: <id>`, data a notification", "content": { "text/event-stream": { "schema": { "type": "string" } } } }),
        ),
        (400, d.error("invalid Last-Event-ID")),
        (503, d.error("too many open streams")),
    ]);
    d.refusals(&mut events);
    paths.insert("/api/me/events".into(), json!({ "get": op(
        "The caller's notifications as Server-Sent Events (resumable with Last-Event-ID, across restarts)", "get_me_events",
        vec![json!({ "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string", "pattern": "^[0-9]{1,19}$" } })],
        events) }));

    // The people directory.
    let mut people = responses(vec![
        (200, d.json::<PeoplePage>("people in sub order")),
        (400, d.error("invalid limit")),
        (503, d.error("storage unavailable; retry")),
    ]);
    d.refusals(&mut people);
    paths.insert("/api/people".into(), json!({ "get": op(
        "The people directory: the name each person signed in with", "get_people",
        vec![query("limit", "people per page", json!({ "type": "integer", "minimum": 1, "maximum": crate::config::Limits::default().people_page_max })),
             query("after", "the next_after of the previous page", json!({ "type": "string" }))],
        people) }));

    // The webhook admin API.
    let forbidden = "the token does not administer every document (\"**\": \"admin\")";
    let mut hooks = responses(vec![
        (
            200,
            d.json::<WebhookList>("every endpoint with its outbox, counts and last error"),
        ),
        (403, d.error(forbidden)),
        (503, d.error("storage unavailable; retry")),
    ]);
    d.refusals(&mut hooks);
    paths.insert("/api/admin/webhooks".into(), json!({ "get": op(
        "Webhook endpoints: waiting, delivered, failed and dead events", "get_admin_webhooks", vec![], hooks) }));
    let mut retry = responses(vec![
        (
            200,
            d.json::<Requeued>("how many dead events went back to the outbox"),
        ),
        (403, d.error(forbidden)),
        (404, d.error("no endpoint has this id")),
        (503, d.error("storage unavailable; retry")),
    ]);
    d.refusals(&mut retry);
    let id = json!({ "name": "id", "in": "path", "required": true, "description": "the endpoint's id, as listed",
        "schema": { "type": "string", "maxLength": 64 } });
    paths.insert("/api/admin/webhooks/{id}/retry".into(), json!({ "post": op(
        "Put an endpoint's dead events back in its outbox", "post_admin_webhook_retry", vec![id], retry) }));

    // The server.
    let health = d.schema::<Health>();
    paths.insert("/health".into(), json!({ "get": { "summary": "Whether this node can serve now", "operationId": "get_health",
        "responses": {
            "200": { "description": "ok", "content": { "application/json": { "schema": health } } },
            "503": { "description": "the store fails (until a probe finds it working) or, in cluster mode, Redis is unreachable", "content": { "application/json": { "schema": health } } } } } }));
    let mut stats = responses(vec![(
        200,
        d.json::<Stats>("counts; open documents' names for who may administer them"),
    )]);
    d.refusals(&mut stats);
    paths.insert(
        "/api/stats".into(),
        json!({ "get": op("Open rooms and connections", "get_stats", vec![], stats) }),
    );
    paths.insert("/api/session".into(), json!({ "get": { "summary": "What a sign-in screen offers", "operationId": "get_session",
        "responses": { "200": d.json::<Session>("whether tokens are checked and whether dev tokens are minted") } } }));
    let mut token = responses(vec![
        (200, d.json::<DevToken>("a write token for that name")),
        (400, d.error("not a plain name")),
        (
            404,
            d.error("dev login is not enabled (authentication on without --dev-login)"),
        ),
        (413, d.error("the body is too large")),
    ]);
    token.insert("415".into(), json!({ "description": "not JSON" }));
    let mut token_op = json!({ "summary": "Mint a dev token (open mode, or --dev-login)", "operationId": "post_dev_token", "responses": token });
    token_op["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": d.schema::<DevLogin>() } } });
    paths.insert("/api/dev/token".into(), json!({ "post": token_op }));
    paths.insert("/metrics".into(), json!({ "get": { "summary": "Prometheus metrics", "operationId": "get_metrics",
        "responses": { "200": { "description": "Prometheus text format", "content": { "text/plain": { "schema": { "type": "string" } } } } } } }));
    let mut sync_ws = responses(vec![
        (101, json!({ "description": "switching to the websocket" })),
        (400, d.error("invalid document name")),
        (403, d.error("the token grants no access to this document")),
        (426, d.error("not a websocket upgrade")),
        (
            429,
            d.error("too many connections from this address or user"),
        ),
        (
            503,
            d.error(
                "the connection limit is reached, the server restarts, or the document is busy",
            ),
        ),
    ]);
    sync_ws.insert("401".into(), d.error("missing, invalid or expired token"));
    sync_ws.insert(
        "500".into(),
        d.error("the document could not be loaded from storage"),
    );
    paths.insert("/sync/{doc}".into(), json!({ "get": op(
        "A document over the y-websocket protocol (websocket upgrade; token in ?token=)", "sync_doc", vec![doc_param()], sync_ws) }));
    let mut hocuspocus = responses(vec![
        (
            101,
            json!({ "description": "switching to the websocket; tokens come per document" }),
        ),
        (426, d.error("not a websocket upgrade")),
        (429, d.error("too many connections from this address")),
        (
            503,
            d.error("the connection limit is reached, or the server restarts"),
        ),
    ]);
    hocuspocus.remove("401");
    paths.insert("/hocuspocus".into(), json!({ "get": { "summary": "Many documents on one socket, in the Hocuspocus dialect", "operationId": "hocuspocus", "responses": hocuspocus } }));
}
