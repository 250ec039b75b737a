//! The REST API and the change feed at the edges of their limits: request body size, page
//! length, short-text and list lengths (shared with the OpenAPI schemas), open feed streams.

mod common;

use common::*;
use tandem::auth::Role;
use tandem_crdt_model::schema::{LIST_LEN_MAX, SHORT_TEXT_CHARS_MAX};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn json_body(value: &serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("encodes")
}

fn field_of(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v["error"]["field"].as_str().map(str::to_string)
}

#[tokio::test]
async fn rest_requests_at_their_limits() {
    let s = start(|c| {
        c.limits.rest_body_max_bytes = 8 * 1024;
        c.limits.rest_page_len_max = 7;
        c.limits.rest_page_len_default = 5;
    })
    .await;
    let addr = s.addr();
    let post =
        move |body: Vec<u8>| async move { http(addr, "POST", "/api/notes", &[], &body).await };

    // Short texts: the limit itself passes, one more character is refused with the field named.
    let title = "é".repeat(SHORT_TEXT_CHARS_MAX);
    let (status, _, _) = post(json_body(&serde_json::json!({ "title": title }))).await;
    assert_eq!(status, 201);
    let (status, _, body) = post(json_body(
        &serde_json::json!({ "title": format!("{title}x") }),
    ))
    .await;
    assert_eq!((status, field_of(&body).as_deref()), (400, Some("title")));

    // A contact's short fields, created and patched: the limit passes, one more is refused, and
    // a too-long field is named before an empty name.
    let contact = |method: &'static str, path: &'static str, value: serde_json::Value| async move {
        let (status, _, body) = http(addr, method, path, &[], &json_body(&value)).await;
        (status, field_of(&body))
    };
    let email = "e".repeat(SHORT_TEXT_CHARS_MAX);
    let at_limit = serde_json::json!({ "id": "c1", "name": "Ada", "email": email });
    assert_eq!(contact("POST", "/api/contacts", at_limit).await.0, 201);
    let over = serde_json::json!({ "name": "", "email": format!("{email}x") });
    let refused = contact("POST", "/api/contacts", over).await;
    assert_eq!(refused, (400, Some("email".into())));
    let blank = serde_json::json!({ "name": " " });
    let refused = contact("POST", "/api/contacts", blank).await;
    assert_eq!(refused, (400, Some("name".into())));
    let phone = serde_json::json!({ "phone": "p".repeat(SHORT_TEXT_CHARS_MAX) });
    assert_eq!(contact("PATCH", "/api/contacts/c1", phone).await.0, 200);
    let phone = serde_json::json!({ "phone": "p".repeat(SHORT_TEXT_CHARS_MAX + 1) });
    let refused = contact("PATCH", "/api/contacts/c1", phone).await;
    assert_eq!(refused, (400, Some("phone".into())));

    // Lists: as many entries as allowed, then one more.
    let tags: Vec<String> = (0..LIST_LEN_MAX).map(|i| format!("t{i}")).collect();
    let (status, _, _) = post(json_body(&serde_json::json!({ "tags": tags }))).await;
    assert_eq!(status, 201);
    let mut more = tags.clone();
    more.push("one too many".into());
    let (status, _, body) = post(json_body(&serde_json::json!({ "tags": more }))).await;
    assert_eq!((status, field_of(&body).as_deref()), (400, Some("tags")));

    // The request body: a JSON document one byte over the limit is refused before parsing.
    let filler = "x".repeat(8 * 1024);
    let (status, _, _) = post(json_body(&serde_json::json!({ "body": filler }))).await;
    assert_eq!(status, 413);

    // Page length (`rest_page_len_max`): the maximum is accepted and fills a page, one more is
    // refused with the field named. Two notes exist; six more make one more than a page.
    for i in 0..6 {
        let (status, _, _) =
            post(json_body(&serde_json::json!({ "title": format!("n{i}") }))).await;
        assert_eq!(status, 201);
    }
    let (status, _, body) = http(s.addr(), "GET", "/api/notes?limit=7", &[], b"").await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(7), "{page}");
    assert!(page["next_after"].is_string(), "a next page: {page}");
    let (status, _, body) = http(s.addr(), "GET", "/api/notes?limit=8", &[], b"").await;
    assert_eq!((status, field_of(&body).as_deref()), (400, Some("limit")));
    // Without `?limit=` a page holds `rest_page_len_default` items.
    let (status, _, body) = http(s.addr(), "GET", "/api/notes", &[], b"").await;
    assert_eq!(status, 200);
    let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(5), "{page}");
}

/// Opens `/api/events` (with a bearer token if given) and returns the socket once the response
/// head has arrived.
async fn open_stream_as(
    addr: std::net::SocketAddr,
    token: Option<&str>,
) -> (tokio::net::TcpStream, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request = format!("GET /api/events HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    tcp.write_all(request.as_bytes()).await.expect("writes");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, tcp.read(&mut byte))
            .await
            .expect("head in time")
            .expect("reads");
        assert!(n > 0, "closed before the head");
        head.push(byte[0]);
    }
    (tcp, String::from_utf8_lossy(&head).to_string())
}

async fn open_stream(addr: std::net::SocketAddr) -> (tokio::net::TcpStream, String) {
    open_stream_as(addr, None).await
}

#[tokio::test]
async fn feed_streams_are_bounded() {
    let s = start(|c| c.limits.feed_streams_max = 1).await;
    let (_first, head) = open_stream(s.addr()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/event-stream"), "{head}");
    let (status, _, body) = http(s.addr(), "GET", "/api/events", &[], b"").await;
    assert_eq!(status, 503);
    assert!(String::from_utf8_lossy(&body).contains("too_many_streams"));
}

// One user, or one address, cannot hold every stream: the limit-th stream of a user opens and the
// next gets 429, other users still get theirs until the address is at its own limit, and
// closing a stream gives its place back. The server's total (503) is never reached.
#[tokio::test]
async fn feed_streams_per_user_and_per_address() {
    let s = start(|c| {
        with_auth(c);
        c.limits.feed_streams_max = 10;
        c.limits.feed_streams_per_user_max = 2;
        c.limits.feed_streams_per_ip_max = 3;
    })
    .await;
    let alice = token("alice", &[("**", Role::Read)], 60);
    let bob = token("bob", &[("**", Role::Read)], 60);
    let addr = s.addr();
    let events = move |t: &str| {
        let auth = format!("Bearer {t}");
        async move {
            let headers = [("authorization", auth.as_str())];
            let (status, _, body) = http(addr, "GET", "/api/events", &headers, b"").await;
            (status, error_code(&body))
        }
    };
    let (first, head) = open_stream_as(s.addr(), Some(&alice)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (_second, head) = open_stream_as(s.addr(), Some(&alice)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(
        events(&alice).await,
        (429, "too_many_streams_for_user".into())
    );
    let (_third, head) = open_stream_as(s.addr(), Some(&bob)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "bob is not alice: {head}");
    assert_eq!(events(&bob).await, (429, "too_many_streams_from_ip".into()));
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (tcp, head) = open_stream_as(s.addr(), Some(&bob)).await;
        if head.starts_with("HTTP/1.1 200") {
            drop(tcp);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed stream's place never came back: {head}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
