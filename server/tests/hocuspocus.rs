//! The Hocuspocus endpoint over real sockets, in-process: the handshake and acknowledgements,
//! several documents on one socket, per-document refusals that leave the others alone,
//! stateless relay, expiry, keep-alive, and attachments counted by dialect. Frames are built
//! with the crate's codec as the stock provider lays them out; the interop tests drive the real
//! provider.

mod common;

use std::time::Duration;

use common::hocuspocus::{self as hp, In};
use common::{start, with_auth, Running};
use tandem::auth::Role;
use tandem_crdt_model::hocuspocus as codec;

const QUIET: Duration = Duration::from_millis(300);

async fn open_server() -> Running {
    start(|_| {}).await
}

// The provider's handshake, in open development mode (any token): Authenticated read-write,
// then our SyncStep1, then the SyncStep2 answering its SyncStep1. An update is echoed, then
// acknowledged once; the ack of the provider's SyncStep2 answering ours is the one its
// `unsyncedChanges` starts at.
#[tokio::test]
async fn handshake_echo_and_one_ack_per_update() {
    let server = open_server().await;
    let mut c = hp::connect(server.addr()).await;
    c.open("notes/1", "anything goes in development mode").await;
    let first = c.take("notes/1", |_| true).await;
    assert!(first.is_authenticated(), "{first:?}");
    assert_eq!(first.text(), "read-write");
    let step1 = c.take("notes/1", |f| f.sync_step() == Some(0)).await;
    let step2 = c.take("notes/1", |f| f.sync_step() == Some(1)).await;
    assert_eq!(step1.body, [0, 1, 0], "our empty state vector");
    assert_eq!(step2.body, [1, 2, 0, 0], "an empty document");
    // The provider answers our SyncStep1 with its SyncStep2: acknowledged once.
    let empty = codec::encode_addressed(
        "notes/1",
        &tandem_crdt_model::protocol::encode_sync_step2(&[0, 0]),
    );
    c.send(empty).await;
    assert_eq!(
        c.take("notes/1", |f| f.ack().is_some()).await.ack(),
        Some(true)
    );
    let update = hp::text(7, "hello");
    c.send(hp::update("notes/1", &update)).await;
    let got = c.drain(QUIET).await;
    let echo = got.iter().position(|f| f.sync_step() == Some(2));
    let ack = got.iter().position(|f| f.ack().is_some());
    assert!(echo.is_some() && echo < ack, "echo, then ack: {got:?}");
    assert_eq!(
        got.iter().filter(|f| f.ack().is_some()).count(),
        1,
        "{got:?}"
    );
    assert_eq!(got[ack.expect("ack")].ack(), Some(true));
}

// Three documents on one socket, plain and session addresses, stay apart: each is answered at
// its exact address, and an edit of one reaches only that document's members.
#[tokio::test]
async fn documents_on_one_socket_stay_apart() {
    let server = open_server().await;
    let mut a = hp::connect(server.addr()).await;
    let mut b = hp::connect(server.addr()).await;
    for address in ["d/1", "d/2", "d/3\0s1"] {
        a.open(address, "").await;
        b.open(address, "").await;
        a.take(address, In::is_authenticated).await;
        b.take(address, In::is_authenticated).await;
    }
    a.drain(QUIET).await;
    b.drain(QUIET).await;
    a.send(hp::update("d/3\0s1", &hp::text(1, "three"))).await;
    let got = b.drain(QUIET).await;
    let updates: Vec<_> = got.iter().filter(|f| f.sync_step() == Some(2)).collect();
    assert_eq!(updates.len(), 1, "{got:?}");
    assert_eq!(
        updates[0].address, "d/3\0s1",
        "answered at the exact address"
    );
    // A second provider of the same document on one socket, under its own session.
    b.open("d/3\0s2", "").await;
    b.take("d/3\0s2", In::is_authenticated).await;
    let step2 = b.take("d/3\0s2", |f| f.sync_step() == Some(1)).await;
    assert!(step2.body.len() > 4, "the stored edit: {step2:?}");
}

// With authentication, each document is checked with its own token: a valid one gets
// read-write, a read-only one `readonly` (its edits acknowledged 0 and never applied), a
// forged or expired one PermissionDenied and nothing else, and none disturbs the others.
#[tokio::test]
async fn tokens_per_document() {
    let server = start(with_auth).await;
    let writer = common::token("ada", &[("w/**", Role::Write), ("r/**", Role::Read)], 600);
    let expired = common::token("ada", &[("**", Role::Write)], -60);
    let mut forged = common::token("ada", &[("**", Role::Admin)], 600);
    forged.replace_range(forged.len() - 4.., "AAAA");
    let mut c = hp::connect(server.addr()).await;
    c.open("w/1", &writer).await;
    c.open("r/1", &writer).await;
    c.open("x/forged", &forged).await;
    c.open("x/expired", &expired).await;
    c.open("x/none", &writer).await;
    assert_eq!(
        c.take("w/1", |f| f.auth_kind().is_some()).await.text(),
        "read-write"
    );
    assert_eq!(
        c.take("r/1", |f| f.auth_kind().is_some()).await.text(),
        "readonly"
    );
    for (address, reason) in [
        ("x/forged", "token_bad_signature"),
        ("x/expired", "token_expired"),
        ("x/none", "forbidden"),
    ] {
        let denied = c.take(address, |f| f.auth_kind().is_some()).await;
        assert!(denied.is_denied(), "{denied:?}");
        assert_eq!(denied.text(), reason);
    }
    c.send(hp::update("r/1", &hp::text(3, "nope"))).await;
    assert_eq!(
        c.take("r/1", |f| f.ack().is_some()).await.ack(),
        Some(false)
    );
    c.send(hp::update("w/1", &hp::text(4, "yes"))).await;
    assert_eq!(c.take("w/1", |f| f.ack().is_some()).await.ack(), Some(true));
    let rest = c.drain(QUIET).await;
    assert!(
        rest.iter().all(|f| !f.address.starts_with("x/")),
        "refused documents receive nothing: {rest:?}"
    );
    assert!(!rest
        .iter()
        .any(|f| f.address == "r/1" && f.sync_step() == Some(2)));
}

// Garbage, unknown types, an address over the name rules, a session over its rules and a
// frame for a document never authenticated each get an answer for their own address; the
// socket's attached document carries on.
#[tokio::test]
async fn bad_frames_answer_their_own_document() {
    let server = open_server().await;
    let mut c = hp::connect(server.addr()).await;
    c.open("ok", "").await;
    c.open("bad", "").await;
    c.take("ok", In::is_authenticated).await;
    c.take("bad", In::is_authenticated).await;
    c.send(vec![3, b'b', b'a', b'd', 11]).await; // unknown type on an attached document
    let close = c.take("bad", |f| f.kind == 7).await;
    assert!(close.text().starts_with("1007 "), "{close:?}");
    c.send(vec![4, b'a', b'/', b'/', b'b', 0, 0, 1, 0]).await; // "a//b"
    let denied = c.take("a//b", In::is_denied).await;
    assert_eq!(denied.text(), "invalid_document_name");
    c.send(vec![3, b'x', 0, 1, 0]).await; // a control byte in the session
    assert_eq!(
        c.take("x\0\x01", In::is_denied).await.text(),
        "malformed_message"
    );
    c.send(vec![0xff, 0xff, 0xff]).await; // no readable address: dropped
    c.send(vec![5, b'o', b't', b'h', b'e', b'r', 2, 0, 0xff])
        .await; // a broken token
    assert_eq!(
        c.take("other", In::is_denied).await.text(),
        "malformed_message"
    );
    c.send(hp::update("ok", &hp::text(9, "still"))).await;
    assert_eq!(c.take("ok", |f| f.ack().is_some()).await.ack(), Some(true));
    assert_eq!(c.closed, None);
}

// A stateless message reaches the document's other Hocuspocus members, never its sender and
// never a y-websocket client of the same document.
#[tokio::test]
async fn stateless_goes_to_the_other_hocuspocus_members() {
    let server = open_server().await;
    let mut ywebsocket = common::connect_ok(server.addr(), "s/1").await;
    let mut a = hp::connect(server.addr()).await;
    let mut b = hp::connect(server.addr()).await;
    for c in [&mut a, &mut b] {
        c.open("s/1", "").await;
        c.take("s/1", In::is_authenticated).await;
        c.drain(QUIET).await;
    }
    a.send(codec::encode_stateless("s/1", "comments changed"))
        .await;
    let got = b.take("s/1", |f| f.kind == 5).await;
    assert_eq!(got.text(), "comments changed");
    assert!(a.drain(QUIET).await.iter().all(|f| f.kind != 5));
    // The y-websocket client hears its SyncStep1 and the presence, never a stateless frame.
    let mut frames = Vec::new();
    while let Ok(Some(Ok(m))) =
        tokio::time::timeout(QUIET, futures_util::StreamExt::next(&mut ywebsocket)).await
    {
        frames.push(m.into_data().to_vec());
    }
    assert!(frames.iter().all(|f| f.first() != Some(&5)), "{frames:?}");
}

// A document whose token expires is closed with 4401 in its CLOSE; the socket follows once
// nothing is left on it.
#[tokio::test]
async fn expiry_closes_the_document_then_the_socket() {
    let server = start(with_auth).await;
    let long = common::token("ada", &[("**", Role::Write)], 600);
    let short = common::token("ada", &[("**", Role::Write)], 2);
    let mut c = hp::connect(server.addr()).await;
    c.open("e/long", &long).await;
    c.open("e/short", &short).await;
    c.take("e/long", In::is_authenticated).await;
    c.take("e/short", In::is_authenticated).await;
    let close = c.take("e/short", |f| f.kind == 7).await;
    assert_eq!(close.text(), "4401 token expired");
    c.send(hp::update("e/long", &hp::text(2, "on"))).await;
    assert_eq!(
        c.take("e/long", |f| f.ack().is_some()).await.ack(),
        Some(true)
    );

    let mut alone = hp::connect(server.addr()).await;
    alone.open("e/alone", &short).await;
    alone.take("e/alone", In::is_authenticated).await;
    assert_eq!(alone.close_code().await, 4401);
}

// Ping and pong: a bare [9] is answered [10]; a 4.x provider (one that sends its version) gets
// bare pings every half ping interval, so it never sees 30 s of silence, presence or not.
#[tokio::test]
async fn ping_pong() {
    let server = start(|c| c.timing.ping_interval = Duration::from_millis(400)).await;
    let mut c = hp::connect(server.addr()).await;
    c.open("p", "").await;
    c.take("p", In::is_authenticated).await;
    c.send(codec::PING.to_vec()).await;
    let pong = tokio::time::timeout(common::WAIT, async {
        loop {
            match futures_util::StreamExt::next(&mut c.ws).await {
                Some(Ok(m)) if m.is_binary() && m.clone().into_data()[..] == codec::PONG => return,
                Some(Ok(_)) => {}
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
    assert!(pong.is_ok(), "pong in time");
    c.drain_for(Duration::from_millis(700)).await;
    assert!(c.pings >= 2, "{} pings", c.pings);
}

// `/api/stats` and `/metrics` count attachments by dialect: one per y-websocket socket, one
// per document open on a Hocuspocus socket.
#[tokio::test]
async fn attachments_counted_by_dialect() {
    let server = open_server().await;
    let _y = common::connect_ok(server.addr(), "m/1").await;
    let mut c = hp::connect(server.addr()).await;
    for address in ["m/1", "m/2", "m/2\0s"] {
        c.open(address, "").await;
        c.take(address, In::is_authenticated).await;
    }
    let metric = |name: &'static str| common::metric(server.addr(), name);
    assert_eq!(
        metric("tandem_attachments{dialect=\"hocuspocus\"}").await,
        3
    );
    assert_eq!(
        metric("tandem_attachments{dialect=\"y-websocket\"}").await,
        1
    );
    let (_, _, body) = common::http(server.addr(), "GET", "/api/stats", &[], b"").await;
    let stats: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(stats["attachments"]["hocuspocus"], 3, "{stats}");
    assert_eq!(stats["attachments"]["y-websocket"], 1, "{stats}");
    assert_eq!(stats["connections"], 2, "{stats}");
    c.send(codec::encode_client_close("m/2")).await;
    let close = c.take("m/2", |f| f.kind == 7).await;
    assert_eq!(close.text(), "1000 closed by the client");
    tokio::time::sleep(QUIET).await;
    assert_eq!(
        metric("tandem_attachments{dialect=\"hocuspocus\"}").await,
        2
    );
}

// A Hocuspocus page that published presence and then went silent (its network gone without a
// close frame) is closed with 4002 within two presence ping periods, and a y-websocket watcher
// sees its presence removed then, not at the 30 s keep-alive.
#[tokio::test]
async fn presence_ping_edge() {
    let every = Duration::from_millis(300);
    let server = start(|c| {
        c.timing.ping_interval = Duration::from_secs(30);
        c.timing.presence_ping_interval = every;
    })
    .await;
    let mut watcher = common::connect_ok(server.addr(), "h/p").await;
    let mut page = hp::connect(server.addr()).await;
    page.open("h/p", "").await;
    page.take("h/p", In::is_authenticated).await;
    let frame = common::presence(88, 1, r#"{"user":"tiptap"}"#);
    page.send(codec::encode_addressed("h/p", &frame)).await;
    common::presence_of(&mut watcher, 88, |json| json.contains("tiptap")).await;
    // From now on the page reads nothing, so it answers no ping.
    let gone_at = tokio::time::Instant::now();
    let removed_at = common::presence_of(&mut watcher, 88, |json| json == "null").await;
    let took = removed_at - gone_at;
    assert!(
        took <= every * 2 + Duration::from_millis(700),
        "removed after {took:?}"
    );
    assert_eq!(page.close_code().await, 4002);
    common::still_syncs(&mut watcher, 89).await;
}
