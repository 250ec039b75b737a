//! Who wrote what comes from the server's own records. A client ID belongs to the first author
//! who writes under it (or is present under it), so nobody can write as someone else; and
//! "author or admin" rules read the server's record of who created a note or wrote a reply,
//! never the `author` fields any writer can change.

mod common;

use common::*;
use tandem::auth::Role;
use tandem_crdt_model::protocol::{self, Inbound};
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Map, ReadTxn, StateVector, Text, Transact, Update};

fn token_for(sub: &str) -> String {
    token(sub, &[("notes/*", Role::Write)], 600)
}

async fn join(addr: std::net::SocketAddr, doc: &str, sub: &str) -> Ws {
    connect_ok(addr, &format!("{doc}?token={}", token_for(sub))).await
}

/// The room's whole state, asked for with an empty SyncStep1.
async fn state_of(ws: &mut Ws) -> Vec<u8> {
    send(ws, protocol::encode_sync_step1(&StateVector::default())).await;
    let frame = recv_with(ws, &[0, 1]).await;
    match protocol::decode_frame(&frame, &protocol::Decoding::writer(1 << 24))
        .expect("valid")
        .pop()
    {
        Some(Inbound::Update(u)) => u.bytes,
        other => panic!("not a SyncStep2: {other:?}"),
    }
}

fn replica(client: u64, state: &[u8]) -> Doc {
    let doc = Doc::with_client_id(client);
    doc.transact_mut()
        .apply_update(Update::decode_v1(state).expect("decodes"))
        .expect("applies");
    doc
}

/// Appends `text` to root text `t` of `doc`; returns the update.
fn type_text(doc: &Doc, text: &str) -> Vec<u8> {
    let t = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    let len = t.len(&txn);
    t.insert(&mut txn, len, text);
    txn.encode_update_v1()
}

fn text_of(state: &[u8]) -> String {
    let doc = replica(1, state);
    let t = doc.get_or_insert_text("t");
    let s = t.get_string(&doc.transact());
    s
}

#[tokio::test]
async fn nobody_can_write_under_another_authors_client_id() {
    // Goal: the reported attack. Ada types "hello", then " REAL" while offline; Eve sends
    // " EVIL" under Ada's client ID at Ada's next clocks first. Before client IDs were bound,
    // the room took Eve's update and then dropped Ada's real one as already known: Ada saw
    // "hello REAL", everyone else "hello EVIL", for good. Now Eve is refused (permission
    // denied, nothing applied) and everyone converges on Ada's text.
    let running = start(with_auth).await;
    let addr = running.addr();
    let ada_doc = Doc::with_client_id(1001);
    let mut ada = join(addr, "notes/forge", "ada").await;
    let hello = protocol::encode_update(&type_text(&ada_doc, "hello"));
    send(&mut ada, hello.clone()).await;
    assert_eq!(recv_with(&mut ada, &[0, 2]).await, hello);
    drop(ada); // offline
    let real = type_text(&ada_doc, " REAL");

    let mut eve = join(addr, "notes/forge", "eve").await;
    let forged_doc = replica(1001, &state_of(&mut eve).await);
    let forged = type_text(&forged_doc, " EVIL");
    send(&mut eve, protocol::encode_update(&forged)).await;
    let denied = recv_with(&mut eve, &[2]).await;
    assert!(String::from_utf8_lossy(&denied).contains("another author"));

    let mut ada = join(addr, "notes/forge", "ada").await;
    let real = protocol::encode_update(&real);
    send(&mut ada, real.clone()).await;
    assert_eq!(
        recv_with(&mut ada, &[0, 2]).await,
        real,
        "Ada's edit is applied"
    );
    let mut reader = join(addr, "notes/forge", "rita").await;
    assert_eq!(text_of(&state_of(&mut reader).await), "hello REAL");
}

#[tokio::test]
async fn presence_holds_a_client_id_before_its_first_edit() {
    // Goal: awareness shows everyone's client ID. Someone who is present but has not typed yet
    // keeps their ID: writing under it first is refused, and their own first edit goes through.
    let running = start(with_auth).await;
    let addr = running.addr();
    let mut bob = join(addr, "notes/present", "bob").await;
    let bob_doc = Doc::with_client_id(2002);
    let mut awareness = yrs::sync::Awareness::new(Doc::with_client_id(2002));
    awareness
        .set_local_state(serde_json::json!({ "user": { "name": "Bob" } }))
        .expect("state");
    let update = awareness.update().expect("awareness update");
    send(&mut bob, protocol::encode_awareness(&update)).await;
    // The room has taken the announcement once it is broadcast back.
    recv_with(&mut bob, &[1]).await;

    let mut eve = join(addr, "notes/present", "eve").await;
    let squatter = Doc::with_client_id(2002);
    send(
        &mut eve,
        protocol::encode_update(&type_text(&squatter, "mine")),
    )
    .await;
    recv_with(&mut eve, &[2]).await;

    let first = protocol::encode_update(&type_text(&bob_doc, "bob was here"));
    send(&mut bob, first.clone()).await;
    assert_eq!(recv_with(&mut bob, &[0, 2]).await, first);
}

/// An HTTP request with a bearer token and a JSON body; returns (status, body as JSON).
async fn rest(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    sub: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {}", token_for(sub));
    let body = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let (status, _, answer) = http(
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
    (
        status,
        serde_json::from_slice(&answer).unwrap_or(serde_json::Value::Null),
    )
}

/// Bob, a writer, rewrites `meta.author` and every reply's `author` of a note to himself over
/// the websocket, as any Yjs client can.
async fn claim_everything(addr: std::net::SocketAddr, doc: &str) {
    let mut bob = join(addr, doc, "bob").await;
    let state = state_of(&mut bob).await;
    let copy = replica(3003, &state);
    let before = copy.transact().state_vector();
    {
        let meta = copy.get_or_insert_map("meta");
        let replies = copy.get_or_insert_array("replies");
        let mut txn = copy.transact_mut();
        meta.insert(&mut txn, "author", "bob");
        let entries: Vec<yrs::Out> = yrs::Array::iter(&replies, &txn).collect();
        for entry in entries {
            if let yrs::Out::YMap(reply) = entry {
                reply.insert(&mut txn, "author", "bob");
            }
        }
    }
    let update = copy.transact().encode_state_as_update_v1(&before);
    let frame = protocol::encode_update(&update);
    send(&mut bob, frame.clone()).await;
    assert_eq!(
        recv_with(&mut bob, &[0, 2]).await,
        frame,
        "Bob may write fields"
    );
}

#[tokio::test]
async fn author_rules_use_the_servers_record_not_fields_clients_write() {
    // Goal: the reported attack. A writer set `meta.author` to himself over the websocket, and
    // `DELETE /api/notes/<id>` then deleted another author's note and all its history. Now the
    // note's creator (the author of its first update) decides, and a reply's author is who
    // wrote its item; the fields stay what clients made them.
    let running = start(with_auth).await;
    let addr = running.addr();
    let (status, _) = rest(
        addr,
        "POST",
        "/api/notes",
        "ada",
        serde_json::json!({ "id": "plan", "title": "Plan" }),
    )
    .await;
    assert_eq!(status, 201);
    let (status, reply) = rest(
        addr,
        "POST",
        "/api/notes/plan/replies",
        "ada",
        serde_json::json!({ "text": "first" }),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let reply_id = reply["item"]["id"]
        .as_str()
        .or(reply["id"].as_str())
        .expect("reply id")
        .to_string();

    claim_everything(addr, "notes/plan").await;
    let (_, note) = rest(
        addr,
        "GET",
        "/api/notes/plan",
        "bob",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(note["author"], "bob", "the field is Bob's now: {note}");

    let reply_path = format!("/api/notes/plan/replies/{reply_id}");
    let change = serde_json::json!({ "text": "bob's now" });
    let (status, _) = rest(addr, "PATCH", &reply_path, "bob", change.clone()).await;
    assert_eq!(status, 403, "Bob may not edit Ada's reply");
    let (status, _) = rest(addr, "DELETE", &reply_path, "bob", serde_json::Value::Null).await;
    assert_eq!(status, 403, "nor delete it");
    let (status, _) = rest(
        addr,
        "DELETE",
        "/api/notes/plan",
        "bob",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 403, "nor delete her note");
    let (status, _) = rest(addr, "PATCH", &reply_path, "ada", change).await;
    assert_eq!(status, 200, "Ada still may");
    let (status, _) = rest(
        addr,
        "DELETE",
        "/api/notes/plan",
        "ada",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_note_made_over_the_websocket_belongs_to_its_first_writer() {
    // Goal: the creator is whoever wrote the document's first update, whatever the client
    // wrote into `meta.author`, however the note was made.
    let running = start(with_auth).await;
    let addr = running.addr();
    let mut ada = join(addr, "notes/sketch", "ada").await;
    let doc = Doc::with_client_id(4004);
    // A client building the note layout, naming someone else as its author.
    tandem_crdt_model::note::create(&doc, "someone-else", 1.0, "Sketch", false);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let frame = protocol::encode_update(&update);
    send(&mut ada, frame.clone()).await;
    assert_eq!(recv_with(&mut ada, &[0, 2]).await, frame);
    let (status, _) = rest(
        addr,
        "DELETE",
        "/api/notes/sketch",
        "someone-else",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = rest(
        addr,
        "DELETE",
        "/api/notes/sketch",
        "ada",
        serde_json::Value::Null,
    )
    .await;
    assert_eq!(status, 200);
}
