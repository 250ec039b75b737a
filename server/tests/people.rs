//! The people layer against the real server: notifications from REST and websocket edits alike,
//! each person's inbox (read state, pages, its bound, surviving a restart), the notification
//! stream, who is online, and the directory of names.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tandem::auth::{mint_hs256, Claims, Role};
use yrs::{Array, Doc, ReadTxn, StateVector, Transact};

fn person(sub: &str, name: Option<&str>) -> String {
    let claims = Claims {
        sub: sub.into(),
        name: name.map(str::to_string),
        docs: [
            ("issues/*".to_string(), Role::Write),
            ("notes/*".to_string(), Role::Write),
        ]
        .into(),
        exp: Some(tandem::auth::now_s() + 600),
        nbf: None,
        iss: None,
        aud: None,
    };
    mint_hs256(SECRET, &claims).expect("mints")
}

async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (status, _, raw) = http(
        addr,
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &body,
    )
    .await;
    let json = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    (status, json)
}

async fn inbox(addr: std::net::SocketAddr, token: &str, query: &str) -> Value {
    let (status, body) = call(
        addr,
        "GET",
        &format!("/api/me/notifications{query}"),
        token,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn kinds(page: &Value) -> Vec<String> {
    page["notifications"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| n["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn rest_edits_notify_the_right_people_and_never_the_actor() {
    let running = start(with_auth).await;
    let addr = running.addr();
    let (ada, bob, cy) = (
        person("ada", Some("Ada Lovelace")),
        person("bob", Some("Bob")),
        person("cy", None),
    );
    let (status, body) = call(
        addr,
        "POST",
        "/api/issues",
        &ada,
        json!({"id": "1", "title": "Crash on save"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    call(
        addr,
        "PATCH",
        "/api/issues/1",
        &ada,
        json!({"assignees": ["bob", "ada"], "description": "cc @cy"}),
    )
    .await;
    let page = inbox(addr, &bob, "").await;
    assert_eq!(kinds(&page), ["assigned"], "{page}");
    let n = &page["notifications"][0];
    assert_eq!(n["text"], "Ada Lovelace assigned you to “Crash on save”");
    assert_eq!(
        (n["doc"].as_str(), n["by"].as_str()),
        (Some("issues/1"), Some("ada"))
    );
    assert!(n["at"].as_u64().expect("ms") > 1_600_000_000_000);
    assert_eq!(page["unread"], 1);
    assert_eq!(kinds(&inbox(addr, &cy, "").await), ["mentioned"]);
    assert!(
        kinds(&inbox(addr, &ada, "").await).is_empty(),
        "never the actor"
    );

    // Bob comments and moves it: Ada (creator) hears both, Bob nothing of his own.
    call(
        addr,
        "POST",
        "/api/issues/1/comments",
        &bob,
        json!({"text": "on it"}),
    )
    .await;
    call(
        addr,
        "PUT",
        "/api/issues/1/status",
        &bob,
        json!({"status": "done"}),
    )
    .await;
    let page = inbox(addr, &ada, "").await;
    assert_eq!(
        kinds(&page),
        ["status_changed", "commented"],
        "newest first: {page}"
    );
    assert_eq!(
        page["notifications"][0]["text"],
        "Bob moved “Crash on save” to done"
    );
    assert_eq!(kinds(&inbox(addr, &bob, "").await), ["assigned"]);

    // A reply on a note goes to the note's creator.
    call(
        addr,
        "POST",
        "/api/notes",
        &bob,
        json!({"id": "n", "title": "Plan"}),
    )
    .await;
    call(
        addr,
        "POST",
        "/api/notes/n/replies",
        &ada,
        json!({"text": "+1"}),
    )
    .await;
    assert_eq!(kinds(&inbox(addr, &bob, "").await), ["replied", "assigned"]);
}

#[tokio::test]
async fn a_websocket_edit_that_adds_an_assignee_notifies() {
    let running = start(with_auth).await;
    let addr = running.addr();
    let (ada, bob) = (person("ada", None), person("bob", None));
    call(
        addr,
        "POST",
        "/api/issues",
        &ada,
        json!({"id": "7", "title": "Slow"}),
    )
    .await;
    let mut ws = connect_ok(addr, &format!("issues/7?token={ada}")).await;
    // A stock client's edit: push "bob" to the `assignees` array on a replica of the document.
    let replica = Doc::with_client_id(4242);
    let update = {
        let assignees = replica.get_or_insert_array("assignees");
        let mut txn = replica.transact_mut();
        assignees.push_back(&mut txn, "bob");
        txn.encode_state_as_update_v1(&StateVector::default())
    };
    send(&mut ws, tandem_crdt_model::protocol::encode_update(&update)).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if kinds(&inbox(addr, &bob, "").await) == ["assigned"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no notification");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_mention_in_a_private_note_reaches_no_one_else() {
    let running = start(with_auth).await;
    let addr = running.addr();
    let (ada, bob) = (person("ada", None), person("bob", None));
    let (status, body) = call(
        addr,
        "POST",
        "/api/private/notes",
        &ada,
        json!({"title": "Secret plan", "body": "ask @bob"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    call(
        addr,
        "POST",
        "/api/notes",
        &ada,
        json!({"id": "p", "title": "Open", "body": "ask @bob"}),
    )
    .await;
    let page = inbox(addr, &bob, "").await;
    assert_eq!(kinds(&page), ["mentioned"], "only the public one: {page}");
    assert!(!page.to_string().contains("Secret plan"));
}

#[tokio::test]
async fn read_state_pages_and_bounds() {
    let running = start(|c| {
        with_auth(c);
        c.store.inbox_len_max = 3;
    })
    .await;
    let addr = running.addr();
    let (ada, bob) = (person("ada", None), person("bob", None));
    for i in 0..4 {
        call(
            addr,
            "POST",
            "/api/issues",
            &ada,
            json!({"id": format!("{i}"), "title": format!("t{i}"), "assignees": ["bob"]}),
        )
        .await;
    }
    let titles = |page: &Value| -> Vec<String> {
        page["notifications"]
            .as_array()
            .expect("list")
            .iter()
            .map(|n| n["doc"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let all = inbox(addr, &bob, "").await;
    assert_eq!(
        titles(&all),
        ["issues/3", "issues/2", "issues/1"],
        "the bound drops the oldest"
    );
    let first = inbox(addr, &bob, "?limit=2").await;
    assert_eq!(titles(&first), ["issues/3", "issues/2"]);
    let next = first["next_after"].as_u64().expect("a next page");
    let second = inbox(addr, &bob, &format!("?limit=2&after={next}")).await;
    assert_eq!(titles(&second), ["issues/1"]);
    assert!(second["next_after"].is_null());

    let newest = all["notifications"][0]["id"].as_u64().expect("id");
    let (status, body) = call(
        addr,
        "POST",
        "/api/me/notifications/read",
        &bob,
        json!({"ids": [newest]}),
    )
    .await;
    assert_eq!((status, body["unread"].as_u64()), (200, Some(2)));
    let unread = inbox(addr, &bob, "?unread=true").await;
    assert_eq!(titles(&unread), ["issues/2", "issues/1"]);
    let (_, body) = call(
        addr,
        "POST",
        "/api/me/notifications/read",
        &bob,
        json!({"all": true}),
    )
    .await;
    assert_eq!(body["unread"], 0);

    for bad in ["?limit=0", "?limit=201", "?after=x", "?unread=maybe"] {
        let (status, body) = call(
            addr,
            "GET",
            &format!("/api/me/notifications{bad}"),
            &bob,
            Value::Null,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    assert_eq!(inbox(addr, &bob, "?limit=200").await["unread"], 0);
    let (status, _) = call(
        addr,
        "POST",
        "/api/me/notifications/read",
        &bob,
        json!({"ids": [1], "all": true}),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = http(addr, "GET", "/api/me/notifications", &[], b"").await;
    assert_eq!(status, 401);
}

/// Reads one SSE event (`event:` and `data:` lines) from a raw HTTP stream.
async fn next_event(
    stream: &mut tokio::io::BufReader<tokio::net::TcpStream>,
) -> (String, String, Value) {
    use tokio::io::AsyncBufReadExt;
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(WAIT, stream.read_line(&mut line))
            .await
            .expect("an event in time")
            .expect("reads");
        assert!(n > 0, "stream ended");
        let line = line.trim_end();
        // Chunked transfer: skip chunk-size lines (hex digits only).
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data = v.trim().to_string();
        } else if line.is_empty() && !data.is_empty() {
            return (id, event, serde_json::from_str(&data).expect("JSON data"));
        }
    }
}

async fn open_stream(
    addr: std::net::SocketAddr,
    token: &str,
    last_event_id: Option<&str>,
) -> tokio::io::BufReader<tokio::net::TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let request = format!(
        "GET /api/me/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{resume}\r\n"
    );
    tcp.write_all(request.as_bytes()).await.expect("writes");
    tokio::io::BufReader::new(tcp)
}

#[tokio::test]
async fn the_stream_delivers_within_a_second_and_resumes_after_a_restart() {
    let mut running = start(with_auth).await;
    let addr = running.addr();
    let (ada, bob) = (person("ada", Some("Ada")), person("bob", None));
    let mut stream = open_stream(addr, &bob, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent = std::time::Instant::now();
    call(
        addr,
        "POST",
        "/api/issues",
        &ada,
        json!({"id": "1", "title": "A", "assignees": ["bob"]}),
    )
    .await;
    let (id, event, data) = next_event(&mut stream).await;
    assert!(
        sent.elapsed() < Duration::from_secs(1),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(event, "notification");
    assert_eq!(data["kind"], "assigned");
    assert_eq!(data["id"].as_u64().map(|n| n.to_string()), Some(id.clone()));

    // Two more while Bob is away, then a restart.
    call(
        addr,
        "POST",
        "/api/issues",
        &ada,
        json!({"id": "2", "title": "B", "assignees": ["bob"]}),
    )
    .await;
    call(
        addr,
        "POST",
        "/api/issues",
        &ada,
        json!({"id": "3", "title": "C", "assignees": ["bob"]}),
    )
    .await;
    drop(stream);
    let dir = std::mem::replace(&mut running.dir, tempfile::tempdir().expect("tempdir"));
    running
        .server
        .take()
        .expect("running")
        .shutdown()
        .await
        .expect("stops");
    let running = start_in(dir, with_auth).await;
    let mut stream = open_stream(running.addr(), &bob, Some(&id)).await;
    let docs: Vec<String> = [next_event(&mut stream).await, next_event(&mut stream).await]
        .into_iter()
        .map(|(_, _, d)| d["doc"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        docs,
        ["issues/2", "issues/3"],
        "oldest first, after the last one seen"
    );
}

#[tokio::test]
async fn presence_lists_authenticated_people_not_what_awareness_claims() {
    let running = start(with_auth).await;
    let addr = running.addr();
    let (ada, bob) = (person("ada", Some("Ada Lovelace")), person("bob", None));
    let tab1 = connect_ok(addr, &format!("notes/x?token={ada}")).await;
    let tab2 = connect_ok(addr, &format!("notes/x?token={ada}")).await;
    let mut bobs = connect_ok(addr, &format!("notes/x?token={bob}")).await;
    // Bob's awareness says he is Ada: presence does not care.
    let awareness = {
        let state = r#"{"user":{"name":"Ada Lovelace"}}"#;
        let mut body = vec![1u8, 0x90, 0x4e, 1];
        body.push(u8::try_from(state.len()).expect("short"));
        body.extend_from_slice(state.as_bytes());
        tandem_crdt_model::protocol::encode_awareness_bytes(&body)
    };
    send(&mut bobs, awareness).await;
    let (status, here) = call(addr, "GET", "/api/docs/notes/x/presence", &bob, Value::Null).await;
    assert_eq!(status, 200, "{here}");
    assert_eq!(here["connections"], 3);
    let users: Vec<(String, String, u64)> = here["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|u| {
            (
                u["sub"].as_str().unwrap_or_default().to_string(),
                u["name"].as_str().unwrap_or_default().to_string(),
                u["connections"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        users,
        [
            ("ada".to_string(), "Ada Lovelace".to_string(), 2),
            ("bob".to_string(), "bob".to_string(), 1)
        ]
    );
    let (_, all) = call(addr, "GET", "/api/presence?docs=notes/*", &bob, Value::Null).await;
    assert_eq!(all["docs"].as_array().map(Vec::len), Some(1), "{all}");
    let outsider = token("eve", &[("issues/*", Role::Read)], 600);
    let (status, _) = call(
        addr,
        "GET",
        "/api/docs/notes/x/presence",
        &outsider,
        Value::Null,
    )
    .await;
    assert_eq!(status, 403);
    let (_, none) = call(addr, "GET", "/api/presence", &outsider, Value::Null).await;
    assert_eq!(
        none["docs"],
        json!([]),
        "only documents the caller may read"
    );

    drop(tab1);
    drop(tab2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        let (_, here) = call(addr, "GET", "/api/docs/notes/x/presence", &bob, Value::Null).await;
        if here["users"].as_array().map(Vec::len) == Some(1) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "ada still listed: {here}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_directory_names_people_from_their_tokens() {
    let running = start(with_auth).await;
    let addr = running.addr();
    let ada = person("ada", Some("Ada Lovelace"));
    call(addr, "GET", "/api/me/notifications", &ada, Value::Null).await;
    let bob = person("bob", None);
    let (status, body) = call(addr, "GET", "/api/people", &bob, Value::Null).await;
    assert_eq!(status, 200);
    let people = body["people"].as_array().expect("people");
    let ada_entry = people
        .iter()
        .find(|p| p["sub"] == "ada")
        .expect("ada known");
    assert_eq!(ada_entry["name"], "Ada Lovelace");
    assert!(ada_entry["color"]
        .as_str()
        .is_some_and(|c| c.starts_with('#')));
    let max = tandem::config::Limits::default().people_page_max;
    for (limit, expect) in [(0, 400), (max, 200), (max + 1, 400)] {
        let path = format!("/api/people?limit={limit}");
        let (status, _) = call(addr, "GET", &path, &bob, Value::Null).await;
        assert_eq!(status, expect, "limit {limit}");
    }
}

#[tokio::test]
async fn dev_tokens_exist_only_in_open_mode_or_with_dev_login() {
    let running = start(with_auth).await;
    let (status, _, body) = http(
        running.addr(),
        "POST",
        "/api/dev/token",
        &[("content-type", "application/json")],
        br#"{"sub":"ada"}"#,
    )
    .await;
    assert_eq!(
        (status, String::from_utf8_lossy(&body).to_string()),
        (
            404,
            r#"{"error":{"code":"not_found","message":"dev login is not enabled"}}"#.to_string()
        )
    );
}

#[tokio::test]
async fn open_mode_tells_people_apart_with_dev_tokens() {
    // Open mode as the binary starts it: a signing key of the process, made at start.
    let running = start(|_| {}).await;
    let addr = running.addr();
    let mint = |sub: &'static str| async move {
        let (status, _, body) = http(
            addr,
            "POST",
            "/api/dev/token",
            &[("content-type", "application/json")],
            json!({"sub": sub, "name": sub.to_uppercase()})
                .to_string()
                .as_bytes(),
        )
        .await;
        assert_eq!(status, 200);
        let body: Value = serde_json::from_slice(&body).expect("json");
        body["token"].as_str().expect("token").to_string()
    };
    let (ada, bob) = (mint("ada").await, mint("bob").await);
    call(
        addr,
        "POST",
        "/api/issues",
        &ada,
        json!({"id": "1", "title": "T", "assignees": ["bob"]}),
    )
    .await;
    let page = inbox(addr, &bob, "").await;
    assert_eq!(kinds(&page), ["assigned"], "{page}");
    assert_eq!(page["notifications"][0]["text"], "ADA assigned you to “T”");
    // Without a token, still the anonymous open mode.
    let (status, _, _) = http(addr, "GET", "/api/issues/1", &[], b"").await;
    assert_eq!(status, 200);
}
