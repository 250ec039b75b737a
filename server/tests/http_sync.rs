//! One-round-trip HTTP sync (`POST /api/docs/<doc>/sync`): a client that was offline sends its
//! state vector and its edits in one body and gets back exactly what it lacks.

mod common;

use common::*;
use tandem::auth::Role;
use tandem_crdt_model::protocol::{self, Inbound};
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

/// The body a client sends: its SyncStep1, then one Update per offline edit.
fn body(doc: &Doc, since: &StateVector) -> Vec<u8> {
    let txn = doc.transact();
    let mut b = protocol::encode_sync_step1(&txn.state_vector());
    let update = txn.encode_state_as_update_v1(since);
    b.extend_from_slice(&protocol::encode_update(&update));
    b
}

/// Applies the answer's SyncStep2 to `doc`; returns the server's state vector (its SyncStep1)
/// and whether a permission-denied message ended the answer.
fn apply_answer(doc: &Doc, answer: &[u8]) -> (StateVector, bool) {
    let messages =
        protocol::decode_frame(answer, &protocol::Decoding::writer(1 << 26)).expect("valid answer");
    let mut it = messages.into_iter();
    match it.next() {
        Some(Inbound::Update(u)) => doc.transact_mut().apply_update(u.decoded).expect("applies"),
        other => panic!("expected a SyncStep2 first, got {other:?}"),
    }
    let sv = match it.next() {
        Some(Inbound::SyncStep1(sv)) => sv,
        other => panic!("expected a SyncStep1 second, got {other:?}"),
    };
    (sv, matches!(it.next(), Some(Inbound::Auth)))
}

fn text(doc: &Doc) -> String {
    let t = doc.get_or_insert_text("t");
    let s = t.get_string(&doc.transact());
    s
}

async fn post_sync(
    s: &Running,
    doc: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers = vec![("content-type", "application/octet-stream")];
    headers.extend_from_slice(extra);
    // `doc` may carry a query string: `d?token=...`.
    let (name, query) = doc.split_once('?').unwrap_or((doc, ""));
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    http(
        s.addr(),
        "POST",
        &format!("/api/docs/{name}/sync{query}"),
        &headers,
        body,
    )
    .await
}

// Two offline clients sync by HTTP, a third edits over a socket; all converge with every edit,
// and the socket client sees the HTTP edits live.
#[tokio::test]
async fn offline_clients_converge_with_socket_client() {
    let s = start(|_| {}).await;
    let mut ws = connect_ok(s.addr(), "notes/1").await;
    let online = edit(1, "online ");
    send(&mut ws, online.clone()).await;
    recv_with(&mut ws, &[0, 2]).await;

    let a = Doc::with_client_id(2);
    a.get_or_insert_text("t")
        .insert(&mut a.transact_mut(), 0, "from-a ");
    let b = Doc::with_client_id(3);
    b.get_or_insert_text("t")
        .insert(&mut b.transact_mut(), 0, "from-b ");

    let (status, _, answer) =
        post_sync(&s, "notes/1", &body(&a, &StateVector::default()), &[]).await;
    assert_eq!(status, 200);
    apply_answer(&a, &answer);
    // The socket client receives a's edit live.
    let live = recv_with(&mut ws, &[0, 2]).await;
    assert!(live.windows(7).any(|w| w == b"from-a "));

    let (status, _, answer) =
        post_sync(&s, "notes/1", &body(&b, &StateVector::default()), &[]).await;
    assert_eq!(status, 200);
    apply_answer(&b, &answer);
    // a syncs again with nothing new and catches up with b.
    let sv = a.transact().state_vector();
    let (_, _, answer) = post_sync(&s, "notes/1", &protocol::encode_sync_step1(&sv), &[]).await;
    apply_answer(&a, &answer);
    assert_eq!(text(&a), text(&b));
    for part in ["online ", "from-a ", "from-b "] {
        assert!(
            text(&a).contains(part),
            "{part} missing from {:?}",
            text(&a)
        );
    }
}

// An up-to-date client gets an empty step 2; an unchanged state answers 304 to If-None-Match.
#[tokio::test]
async fn up_to_date_client_and_etag() {
    let s = start(|_| {}).await;
    let a = Doc::with_client_id(5);
    a.get_or_insert_text("t")
        .insert(&mut a.transact_mut(), 0, "x");
    let (status, headers, answer) =
        post_sync(&s, "d", &body(&a, &StateVector::default()), &[]).await;
    assert_eq!(status, 200);
    let etag = header(&headers, "etag").expect("etag").to_string();
    apply_answer(&a, &answer);
    let sv = protocol::encode_sync_step1(&a.transact().state_vector());
    let (status, headers, answer) = post_sync(&s, "d", &sv, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
    let messages =
        protocol::decode_frame(&answer, &protocol::Decoding::writer(1 << 20)).expect("valid");
    match &messages[0] {
        Inbound::Update(u) => assert!(u.decoded.is_empty(), "step 2 should be empty"),
        other => panic!("{other:?}"),
    }
    let (status, _, answer) = post_sync(&s, "d", &sv, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 304);
    assert!(answer.is_empty());
}

// A read-only token gets the data; its edits are refused, reported, never stored.
#[tokio::test]
async fn read_only_http_sync() {
    let s = start(with_auth).await;
    let writer = token("w", &[("d", Role::Write)], 60);
    let reader = token("r", &[("d", Role::Read)], 60);
    let w = Doc::with_client_id(7);
    w.get_or_insert_text("t")
        .insert(&mut w.transact_mut(), 0, "kept ");
    let bearer = format!("Bearer {writer}");
    let (status, _, _) = post_sync(
        &s,
        "d",
        &body(&w, &StateVector::default()),
        &[("authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200);
    let r = Doc::with_client_id(8);
    r.get_or_insert_text("t")
        .insert(&mut r.transact_mut(), 0, "refused ");
    let (status, headers, answer) = post_sync(
        &s,
        &format!("d?token={reader}"),
        &body(&r, &StateVector::default()),
        &[],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "x-tandem-refused-updates"), Some("1"));
    let fresh = Doc::new();
    let (_, denied) = apply_answer(&fresh, &answer);
    assert!(denied, "permission denied message ends the answer");
    let reason = protocol::encode_permission_denied(
        "read-only: the token's role on this document is read, so its edits are refused",
    );
    assert!(
        answer.ends_with(&reason),
        "the reason says the role is read-only"
    );
    assert_eq!(text(&fresh), "kept ");
    let (status, _, _) = post_sync(&s, "d", &body(&r, &StateVector::default()), &[]).await;
    assert_eq!(status, 401);
}

// Bodies that are not a SyncStep1 followed by updates get 400 with a JSON error.
#[tokio::test]
async fn malformed_bodies() {
    let s = start(|_| {}).await;
    let update = {
        let d = Doc::with_client_id(9);
        d.get_or_insert_text("t")
            .insert(&mut d.transact_mut(), 0, "x");
        let u = d
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        u
    };
    let cases: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff, 0xff],
        protocol::encode_update(&update),
        [
            protocol::encode_sync_step1(&StateVector::default()),
            vec![1, 1, 0],
        ]
        .concat(),
    ];
    for case in cases {
        let (status, _, body) = post_sync(&s, "d", &case, &[]).await;
        assert_eq!(status, 400, "{case:?}");
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["error"]["code"], "malformed_body");
    }
    let (status, _, _) = post_sync(
        &s,
        "a%20b",
        &protocol::encode_sync_step1(&StateVector::default()),
        &[],
    )
    .await;
    assert_eq!(status, 400);
}

// A client missing 1% of a large document receives a diff near 1% of its size, not the whole.
#[tokio::test]
async fn reconnect_diff_is_small() {
    let s = start(|_| {}).await;
    let server_side = Doc::with_client_id(10);
    let t = server_side.get_or_insert_text("t");
    let mut client_sv = StateVector::default();
    // 100 updates of 1000 characters; the client has the first 99.
    for i in 0..100u32 {
        t.insert(&mut server_side.transact_mut(), 0, &format!("{i:0>1000}"));
        if i == 98 {
            client_sv = server_side.transact().state_vector();
        }
    }
    let full = server_side
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let (status, _, _) =
        post_sync(&s, "big", &body(&server_side, &StateVector::default()), &[]).await;
    assert_eq!(status, 200);
    let client = Doc::with_client_id(11);
    client
        .transact_mut()
        .apply_update(
            Update::decode_v1(
                &server_side
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default()),
            )
            .expect("decodes"),
        )
        .expect("applies");
    let _ = client;
    let ask = protocol::encode_sync_step1(&client_sv);
    let (_, _, answer) = post_sync(&s, "big", &ask, &[]).await;
    eprintln!(
        "full document {} bytes, diff answer {} bytes",
        full.len(),
        answer.len()
    );
    assert!(
        answer.len() * 50 < full.len(),
        "diff of {} bytes for a {}-byte document",
        answer.len(),
        full.len()
    );
    let _ = client_sv.encode_v1();
}

// Times a client wrote as fractions of a millisecond (any JavaScript number may be) come out of
// the REST API as integers: a note's and an issue's created and updated, a reply's and a
// comment's time; the OpenAPI document says integer for each.
#[tokio::test]
async fn rest_answers_give_times_as_integer_milliseconds() {
    use tandem_crdt_model::{issue, note};
    let s = start(|_| {}).await;
    let fraction = 1_796_153_363_581.437_3;
    let n = Doc::with_client_id(21);
    note::create(&n, "ada", fraction, "Fractions", false);
    note::add_reply(&n, "r1", "ada", "hi", fraction);
    let i = Doc::with_client_id(22);
    issue::create(&i, "ada", fraction, "Fractions");
    issue::add_comment(&i, "c1", "ada", "hi", fraction);
    for (doc, name) in [(&n, "notes/frac"), (&i, "issues/frac")] {
        let (status, _, _) = post_sync(&s, name, &body(doc, &StateVector::default()), &[]).await;
        assert_eq!(status, 200);
    }
    let time = 1_796_153_363_581_i64;
    for (path, thread) in [
        ("/api/notes/frac", "replies"),
        ("/api/issues/frac", "comments"),
    ] {
        let (status, _, answer) = http(s.addr(), "GET", path, &[], b"").await;
        assert_eq!(status, 200, "{path}");
        let item: serde_json::Value = serde_json::from_slice(&answer).expect("JSON");
        assert_eq!(item["created"].as_i64(), Some(time), "{item}");
        assert_eq!(item["updated"].as_i64(), Some(time), "{item}");
        assert_eq!(item[thread][0]["time"].as_i64(), Some(time), "{item}");
        assert!(!String::from_utf8_lossy(&answer).contains(".437"));
    }
    let (_, _, spec) = http(s.addr(), "GET", "/api/openapi.json", &[], b"").await;
    let spec: serde_json::Value = serde_json::from_slice(&spec).expect("JSON");
    // Every time in every schema of the API (typed items, threads, notifications, history,
    // the feed, presence) is an integer.
    let schemas = spec["components"]["schemas"].as_object().expect("schemas");
    let mut times = 0;
    for (schema, body) in schemas {
        let Some(properties) = body["properties"].as_object() else {
            continue;
        };
        for (field, property) in properties {
            let is_time = ["created", "updated", "time", "at"].contains(&field.as_str())
                || field.ends_with("_ms");
            if is_time {
                times += 1;
                assert_eq!(property["type"], "integer", "{schema}.{field}: {property}");
            }
        }
    }
    assert!(times >= 7, "only {times} times in the schemas");
}
