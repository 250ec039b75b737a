//! Every JSON body the HTTP API answers with, byte for byte. The web demo, the interop tests and
//! schemathesis read these bodies, so reorganising the handlers must not change one byte. Each
//! case sends one request to the real server and compares status, `content-type` and body with
//! what it has always been; times, sizes, tags and generated ids vary from run to run and are
//! replaced by fixed stand-ins first (`stable`).

mod common;

use common::*;
use tandem::auth::Role;

/// Method, path, headers and body.
type Request<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

/// A request, the status it gets and its stable body.
type Case<'a> = (Request<'a>, u16, &'a str);

/// Sends one request and checks its status and its stable body.
async fn check(addr: std::net::SocketAddr, request: Request<'_>, status: u16, expected: &str) {
    let (method, path, headers, body) = request;
    let (got_status, got_headers, got_body) =
        http(addr, method, path, headers, body.as_bytes()).await;
    let got = stable(&got_body);
    assert_eq!(
        (got_status, got.as_str()),
        (status, expected),
        "{method} {path} {body}"
    );
    assert_eq!(
        header(&got_headers, "content-type"),
        Some("application/json"),
        "{method} {path}"
    );
}

/// The body with what varies between runs replaced: integers after time and size keys by `0`
/// (a fraction or an exponent stays, and fails the comparison: times are whole milliseconds),
/// the values of `etag` and `token` by `<etag>` / `<token>`, and generated 16-hex-digit ids by
/// `<id>`.
fn stable(body: &[u8]) -> String {
    let mut text = String::from_utf8(body.to_vec()).expect("UTF-8 body");
    for key in ["created", "updated", "time", "time_ms", "size"] {
        text = replace_after(
            &text,
            &format!("\"{key}\":"),
            |c| c.is_ascii_digit() || c == '-',
            "0",
        );
    }
    for key in ["etag", "token"] {
        // The string's content up to its closing quote (an escaped quote `\"` stays inside).
        let mut escaped = false;
        text = replace_after(
            &text,
            &format!("\"{key}\":\""),
            |c| {
                let inside = escaped || c != '"';
                escaped = !escaped && c == '\\';
                inside
            },
            &format!("<{key}>"),
        );
    }
    // Generated ids: a quoted string of exactly 16 lower-case hex digits.
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..=start]);
        rest = &rest[start + 1..];
        let end = rest.find('"').unwrap_or(rest.len());
        let inner = &rest[..end];
        if inner.len() == 16
            && inner
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            out.push_str("<id>");
        } else {
            out.push_str(inner);
        }
        if end < rest.len() {
            out.push('"');
            rest = &rest[end + 1..];
        } else {
            rest = "";
        }
    }
    out.push_str(rest);
    out
}

/// Replaces the run of characters matching `keep` that follows each `marker` with `with`.
fn replace_after(
    text: &str,
    marker: &str,
    mut keep: impl FnMut(char) -> bool,
    with: &str,
) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let end = rest.find(|c: char| !keep(c)).unwrap_or(rest.len());
        out.push_str(with);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

const NONE: &[(&str, &str)] = &[];

// The typed REST API in open mode: every kind of answer, success and refusal.
#[tokio::test]
async fn rest_bodies_are_unchanged() {
    let s = start(|_| {}).await;
    let a = s.addr();
    let cases: &[Case] = &[
        (
            (
                "POST",
                "/api/notes",
                NONE,
                r#"{"id":"n1","title":"Plan","body":"one\ntwo","tags":["a","b"]}"#,
            ),
            201,
            r#"{"author":"anonymous","body":"one\ntwo","created":0,"doc":"notes/n1","id":"n1","private":false,"replies":[],"schema_issues":[],"tags":["a","b"],"title":"Plan","updated":0}"#,
        ),
        (
            ("GET", "/api/notes/n1", NONE, ""),
            200,
            r#"{"author":"anonymous","body":"one\ntwo","created":0,"doc":"notes/n1","id":"n1","private":false,"replies":[],"schema_issues":[],"tags":["a","b"],"title":"Plan","updated":0}"#,
        ),
        (
            (
                "PATCH",
                "/api/notes/n1",
                NONE,
                r#"{"title":"Plan B","private":true}"#,
            ),
            200,
            r#"{"author":"anonymous","body":"one\ntwo","created":0,"doc":"notes/n1","id":"n1","private":true,"replies":[],"schema_issues":[],"tags":["a","b"],"title":"Plan B","updated":0}"#,
        ),
        (
            ("POST", "/api/notes/n1/replies", NONE, r#"{"text":"ok"}"#),
            201,
            r#"{"author":"anonymous","edited":false,"id":"<id>","text":"ok","time":0}"#,
        ),
        (
            ("POST", "/api/notes", NONE, r#"{"id":"n2"}"#),
            201,
            r#"{"author":"anonymous","body":"","created":0,"doc":"notes/n2","id":"n2","private":false,"replies":[],"schema_issues":[],"tags":[],"title":"","updated":0}"#,
        ),
        (
            ("GET", "/api/notes?limit=1", NONE, ""),
            200,
            r#"{"items":[{"author":"anonymous","body":"one\ntwo","created":0,"doc":"notes/n1","id":"n1","private":true,"replies":[{"author":"anonymous","edited":false,"id":"<id>","text":"ok","time":0}],"schema_issues":[],"tags":["a","b"],"title":"Plan B","updated":0}],"next_after":"n1"}"#,
        ),
        (
            ("GET", "/api/notes?after=n1", NONE, ""),
            200,
            r#"{"items":[{"author":"anonymous","body":"","created":0,"doc":"notes/n2","id":"n2","private":false,"replies":[],"schema_issues":[],"tags":[],"title":"","updated":0}]}"#,
        ),
        (
            (
                "POST",
                "/api/private/notes",
                NONE,
                r#"{"id":"p1","title":"Mine"}"#,
            ),
            201,
            r#"{"author":"anonymous","body":"","created":0,"doc":"private/anonymous/notes/p1","id":"p1","private":true,"replies":[],"schema_issues":[],"tags":[],"title":"Mine","updated":0}"#,
        ),
        (
            (
                "POST",
                "/api/contacts",
                NONE,
                r#"{"id":"c1","name":"Ada","email":"ada@example.com","custom":{"twitter":"@ada"}}"#,
            ),
            201,
            r#"{"company":"","custom":{"twitter":"@ada"},"doc":"contacts/c1","email":"ada@example.com","id":"c1","name":"Ada","notes":"","phone":"","schema_issues":[]}"#,
        ),
        (
            (
                "PATCH",
                "/api/contacts/c1",
                NONE,
                r#"{"phone":"123","custom":{"twitter":null}}"#,
            ),
            200,
            r#"{"company":"","custom":{},"doc":"contacts/c1","email":"ada@example.com","id":"c1","name":"Ada","notes":"","phone":"123","schema_issues":[]}"#,
        ),
        (
            (
                "POST",
                "/api/issues",
                NONE,
                r#"{"id":"i1","title":"Bug","priority":"high","labels":["ui"]}"#,
            ),
            201,
            r#"{"assignees":[],"author":"anonymous","comments":[],"created":0,"description":"","doc":"issues/i1","id":"i1","labels":["ui"],"priority":"high","schema_issues":[],"status":"open","title":"Bug","updated":0}"#,
        ),
        (
            ("PUT", "/api/issues/i1/status", NONE, r#"{"status":"done"}"#),
            200,
            r#"{"assignees":[],"author":"anonymous","comments":[],"created":0,"description":"","doc":"issues/i1","id":"i1","labels":["ui"],"priority":"high","schema_issues":[],"status":"done","title":"Bug","updated":0}"#,
        ),
        (
            (
                "POST",
                "/api/issues/i1/comments",
                NONE,
                r#"{"text":"seen"}"#,
            ),
            201,
            r#"{"author":"anonymous","edited":false,"id":"<id>","text":"seen","time":0}"#,
        ),
        (
            ("DELETE", "/api/issues/i1", NONE, ""),
            200,
            r#"{"deleted":true}"#,
        ),
        // Refusals.
        (
            (
                "POST",
                "/api/issues",
                NONE,
                r#"{"title":"x","priority":"whenever"}"#,
            ),
            400,
            r#"{"error":{"code":"invalid_field","field":"priority","message":"priority: must be one of low, medium, high, urgent"}}"#,
        ),
        (
            ("PATCH", "/api/notes/n1", NONE, r#"{"tags":"not a list"}"#),
            400,
            r#"{"error":{"code":"invalid_field","field":"tags","message":"tags: invalid type: string \"not a list\", expected a sequence at line 1 column 20"}}"#,
        ),
        (
            ("POST", "/api/notes", NONE, "not json"),
            400,
            r#"{"error":{"code":"invalid_body","message":"expected ident at line 1 column 2"}}"#,
        ),
        (
            ("POST", "/api/notes", NONE, r#"{"id":"n1"}"#),
            409,
            r#"{"error":{"code":"already_exists","message":"a note with this id exists"}}"#,
        ),
        (
            ("POST", "/api/notes", NONE, r#"{"id":".dot"}"#),
            400,
            r#"{"error":{"code":"invalid_field","field":"id","message":"id: 1 to 64 characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit"}}"#,
        ),
        (
            ("GET", "/api/notes/none", NONE, ""),
            404,
            r#"{"error":{"code":"not_found","message":"no such note"}}"#,
        ),
        (
            ("GET", "/api/notes/.x", NONE, ""),
            400,
            r#"{"error":{"code":"invalid_field","field":"id","message":"id: 1 to 64 characters of A-Z a-z 0-9 . _ ~ -, starting with a letter or digit"}}"#,
        ),
        (
            (
                "PATCH",
                "/api/notes/n1/replies/nope",
                NONE,
                r#"{"text":"x"}"#,
            ),
            404,
            r#"{"error":{"code":"not_found","message":"no such reply"}}"#,
        ),
        (
            ("GET", "/api/notes?limit=0", NONE, ""),
            400,
            r#"{"error":{"code":"invalid_field","field":"limit","message":"limit: a number from 1 to 100"}}"#,
        ),
        (
            ("PUT", "/api/notes", NONE, ""),
            405,
            r#"{"error":{"code":"method_not_allowed","message":"use GET or POST here"}}"#,
        ),
        (
            ("DELETE", "/api/issues/i1", NONE, ""),
            404,
            r#"{"error":{"code":"not_found","message":"no such issue"}}"#,
        ),
        (
            ("GET", "/api/nothing", NONE, ""),
            404,
            r#"{"error":{"code":"not_found","message":"no such endpoint"}}"#,
        ),
    ];
    for (request, status, expected) in cases {
        check(a, *request, *status, expected).await;
    }
    // The 405 says what is allowed.
    let (_, headers, _) = http(a, "PUT", "/api/notes", &[], b"").await;
    assert_eq!(header(&headers, "allow"), Some("GET, POST"));
}

// `/api/docs/<doc>/...`, the feed's refusals, the session, the websocket endpoint's refusals and
// the error bodies of the server's own filters.
#[tokio::test]
async fn document_and_server_bodies_are_unchanged() {
    let s = start(|c| c.limits.rest_body_max_bytes = 64).await;
    let a = s.addr();
    // One edit to have a history.
    let (status, _, _) = http(a, "POST", "/api/notes", &[], br#"{"id":"h"}"#).await;
    assert_eq!(status, 201);
    let cases: &[Case] = &[
        (
            ("GET", "/api/docs/notes/h/history", NONE, ""),
            200,
            r#"{"doc":"notes/h","next_after":null,"versions":[{"author":"anonymous","size":0,"time_ms":0,"version":1}]}"#,
        ),
        (
            ("GET", "/api/docs/notes/h/history?limit=x", NONE, ""),
            400,
            r#"{"error":{"code":"invalid_query","message":"limit: a number"}}"#,
        ),
        (
            ("GET", "/api/docs/notes/h/at/1?format=json", NONE, ""),
            200,
            r#"{"content":{"meta":{"author":"anonymous","created":0,"private":false,"updated":0}},"doc":"notes/h","version":1}"#,
        ),
        (
            ("GET", "/api/docs/notes/h/at/99", NONE, ""),
            404,
            r#"{"error":{"code":"version_not_found","message":"no such version, or its history is no longer kept"}}"#,
        ),
        (
            ("GET", "/api/docs/notes/h/at/x", NONE, ""),
            400,
            r#"{"error":{"code":"invalid_version","message":"version: a history seq number"}}"#,
        ),
        (
            ("POST", "/api/docs/notes/h/restore/1", NONE, ""),
            200,
            r#"{"doc":"notes/h","etag":"<etag>","restored":1}"#,
        ),
        (
            ("GET", "/api/docs/notes/h/sync", NONE, ""),
            405,
            r#"{"error":{"code":"method_not_allowed","message":"use POST here"}}"#,
        ),
        (
            ("POST", "/api/docs/notes/h/sync", NONE, "x"),
            400,
            r#"{"error":{"code":"malformed_body","message":"malformed message of unknown type: while trying to read more data (expected: 1 bytes), an unexpected end of buffer was reached"}}"#,
        ),
        (
            ("DELETE", "/api/docs/a..b", NONE, ""),
            400,
            r#"{"error":{"code":"invalid_document_name","message":"document name may not contain '..'"}}"#,
        ),
        (
            ("DELETE", "/api/docs/notes/h", NONE, ""),
            200,
            r#"{"deleted":true,"doc":"notes/h"}"#,
        ),
        (
            ("DELETE", "/api/docs/notes/h", NONE, ""),
            404,
            r#"{"error":{"code":"document_not_found","message":"no such document"}}"#,
        ),
        (
            ("GET", "/api/events?kind=bogus", NONE, ""),
            400,
            r#"{"error":{"code":"invalid_field","field":"kind","message":"kind: note, contact or issue"}}"#,
        ),
        (
            ("GET", "/api/session", NONE, ""),
            200,
            r#"{"auth":false,"dev_login":true}"#,
        ),
        (
            ("GET", "/sync/a..b", NONE, ""),
            400,
            r#"{"error":{"code":"invalid_document_name","message":"document name may not contain '..'"}}"#,
        ),
        (
            ("GET", "/sync/notes/x", NONE, ""),
            426,
            r#"{"error":{"code":"websocket_required","message":"connect with a websocket client (y-websocket protocol)"}}"#,
        ),
        (
            (
                "POST",
                "/api/notes",
                NONE,
                r#"{"title":"this body is longer than sixty-four bytes, the limit here"}"#,
            ),
            413,
            r#"{"error":{"code":"body_too_large","message":"the body exceeds its size limit"}}"#,
        ),
    ];
    for (request, status, expected) in cases {
        check(a, *request, *status, expected).await;
    }
}

// With authentication and dev login: the refusals that carry a token's or a role's reason.
#[tokio::test]
async fn auth_bodies_are_unchanged() {
    let s = start(|c| {
        with_auth(c);
        c.dev_login_secret = Some(SECRET.to_vec());
    })
    .await;
    let a = s.addr();
    let reader = format!("Bearer {}", token("rita", &[("notes/*", Role::Read)], 60));
    let reader: &[(&str, &str)] = &[("authorization", reader.as_str())];
    let cases: &[Case] = &[
        (
            ("GET", "/api/notes/x", NONE, ""),
            401,
            r#"{"error":{"code":"token_missing","message":"a token is required (?token= or Authorization: Bearer)"}}"#,
        ),
        (
            ("POST", "/api/notes", reader, r#"{"id":"x"}"#),
            403,
            r#"{"error":{"code":"read_only","message":"read-only: the token's role on this document is read, and this needs write"}}"#,
        ),
        (
            ("GET", "/api/contacts/x", reader, ""),
            403,
            r#"{"error":{"code":"forbidden","message":"the token grants no access to this document"}}"#,
        ),
        (
            ("DELETE", "/api/docs/notes/x", reader, ""),
            403,
            r#"{"error":{"code":"admin_required","message":"this operation needs the admin role on the document"}}"#,
        ),
        (
            ("GET", "/api/session", NONE, ""),
            200,
            r#"{"auth":true,"dev_login":true}"#,
        ),
        (
            (
                "POST",
                "/api/dev/token",
                NONE,
                r#"{"sub":"ada","name":"Ada"}"#,
            ),
            200,
            r#"{"token":"<token>"}"#,
        ),
        (
            ("POST", "/api/dev/token", NONE, r#"{"sub":".ada"}"#),
            400,
            r#"{"error":{"code":"invalid_sub","message":"sub: 1 to 64 characters of A-Z a-z 0-9 - _ . (a '.' neither first nor doubled)"}}"#,
        ),
    ];
    for (request, status, expected) in cases {
        check(a, *request, *status, expected).await;
    }
}
