//! Every limit of the Hocuspocus endpoint at its edge, in-process over real sockets: the
//! y-websocket limits (frame size, message rate, document size, sockets per user counted once
//! per socket, connections per address) and the pre-authentication bounds (documents, bytes and
//! frames held per socket, documents per socket, the wait for a token).

mod common;

use std::time::Duration;

use common::hocuspocus::{self as hp, In};
use common::{start, with_auth, WAIT};
use tandem::auth::Role;
use tandem_crdt_model::hocuspocus as codec;
use tokio_tungstenite::tungstenite;

const QUIET: Duration = Duration::from_millis(300);

// A frame one byte over `frame_size_max_bytes` closes the socket with 1009; one at the limit
// passes.
#[tokio::test]
async fn frame_size_at_its_edge() {
    let server = start(|c| c.limits.frame_size_max_bytes = 1024).await;
    let mut c = hp::connect(server.addr()).await;
    c.open("f", "").await;
    c.take("f", In::is_authenticated).await;
    let stateless = |len: usize| {
        let frame = codec::encode_stateless("f", &"x".repeat(len));
        let overhead = frame.len() - len;
        codec::encode_stateless("f", &"x".repeat(len - overhead))
    };
    c.send(stateless(1024)).await;
    c.send(hp::update("f", &hp::text(1, "ok"))).await;
    assert_eq!(c.take("f", |f| f.ack().is_some()).await.ack(), Some(true));
    c.send(stateless(1025)).await;
    assert_eq!(c.close_code().await, 1009);
}

// The socket's message rate, across all its documents: the burst passes, the next frame
// closes it with 4429.
#[tokio::test]
async fn message_rate_per_socket() {
    let server = start(|c| {
        c.limits.messages_per_sec_per_conn = 1;
        c.limits.messages_burst_per_conn = 6;
    })
    .await;
    let mut c = hp::connect(server.addr()).await;
    for doc in ["r/1", "r/2", "r/3"] {
        c.open(doc, "").await; // two frames each: six
    }
    c.take("r/3", In::is_authenticated).await;
    c.send(codec::encode_query_awareness("r/1")).await;
    assert_eq!(c.close_code().await, 4429);
}

// An update that would take a document past `doc_size_max_bytes` ends that document (4413 in
// its CLOSE); the socket's other document carries on.
#[tokio::test]
async fn document_size_limit_ends_only_its_document() {
    let server = start(|c| c.limits.doc_size_max_bytes = 200).await;
    let mut c = hp::connect(server.addr()).await;
    for doc in ["big", "small"] {
        c.open(doc, "").await;
        c.take(doc, In::is_authenticated).await;
    }
    c.send(hp::update("big", &hp::text(1, &"x".repeat(300))))
        .await;
    let close = c.take("big", |f| f.kind == 7).await;
    assert_eq!(close.text(), "4413 document size limit reached");
    c.send(hp::update("small", &hp::text(2, "fits"))).await;
    assert_eq!(
        c.take("small", |f| f.ack().is_some()).await.ack(),
        Some(true)
    );
}

/// A server with the pre-authentication bounds set small.
async fn preauth_server() -> common::Running {
    start(|c| {
        c.limits.preauth_docs_per_conn_max = 2;
        c.limits.preauth_bytes_per_conn_max = 100;
        c.limits.preauth_messages_per_conn_max = 4;
        c.limits.hocuspocus_docs_per_conn_max = 3;
        c.timing.preauth_wait_max = Duration::from_secs(2);
    })
    .await
}

// Two documents may wait for their tokens; a third is refused (`preauth_documents_limit`),
// and the two carry on: once their tokens come, what they held is answered.
#[tokio::test]
async fn pending_documents_at_their_edge() {
    let server = preauth_server().await;
    let mut c = hp::connect(server.addr()).await;
    c.send(hp::step1("a")).await;
    c.send(hp::step1("b")).await;
    c.send(hp::step1("c")).await;
    assert_eq!(
        c.take("c", In::is_denied).await.text(),
        "preauth_documents_limit"
    );
    for doc in ["a", "b"] {
        c.send(hp::token(doc, "")).await;
        c.take(doc, In::is_authenticated).await;
        c.take(doc, |f| f.sync_step() == Some(1)).await; // the held SyncStep1, answered
    }
    // Three documents are open; a fourth is refused whatever it sends.
    c.open("c", "").await;
    c.take("c", In::is_authenticated).await;
    c.open("d", "").await;
    assert_eq!(
        c.take("d", In::is_denied).await.text(),
        "too_many_documents"
    );
}

// Frames held before authentication: up to 100 bytes pass, the frame that would pass them
// refuses its own document (`preauth_bytes_limit`); the other waiting document keeps what it
// held.
#[tokio::test]
async fn held_bytes_at_their_edge() {
    let server = preauth_server().await;
    let mut c = hp::connect(server.addr()).await;
    let sixty = codec::encode_stateless("a", &"x".repeat(60 - 4));
    let forty = codec::encode_stateless("b", &"y".repeat(40 - 4));
    assert_eq!((sixty.len(), forty.len()), (60, 40));
    c.send(sixty).await;
    c.send(forty).await;
    c.send(hp::step1("b")).await;
    assert_eq!(
        c.take("b", In::is_denied).await.text(),
        "preauth_bytes_limit"
    );
    c.send(hp::token("a", "")).await;
    c.take("a", In::is_authenticated).await;
    assert!(c.drain(QUIET).await.iter().all(|f| f.address != "b"));
}

// Frames held before authentication: four pass, the fifth refuses its document
// (`preauth_messages_limit`).
#[tokio::test]
async fn held_frames_at_their_edge() {
    let server = preauth_server().await;
    let mut c = hp::connect(server.addr()).await;
    for _ in 0..4 {
        c.send(codec::encode_query_awareness("q")).await;
    }
    c.send(codec::encode_query_awareness("q")).await;
    assert_eq!(
        c.take("q", In::is_denied).await.text(),
        "preauth_messages_limit"
    );
}

// A document whose token does not come within `preauth_wait_max` is refused (`token_missing`)
// once the socket authenticated something; a socket that authenticates nothing in that time is
// closed with 4408.
#[tokio::test]
async fn the_wait_for_a_token_is_bounded() {
    let server = preauth_server().await;
    let mut c = hp::connect(server.addr()).await;
    c.open("t/ok", "").await;
    c.take("t/ok", In::is_authenticated).await;
    c.send(hp::step1("t/never")).await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        c.take("t/never", In::is_denied).await.text(),
        "token_missing"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );

    let mut silent = hp::connect(server.addr()).await;
    silent.send(hp::step1("t/quiet")).await;
    assert_eq!(silent.close_code().await, 4408);
}

// Sockets per user count a socket once however many of the user's documents it holds: with a
// limit of one, one socket opens two of ada's documents, a second socket gets
// `too_many_sockets_for_user` for ada and serves bob.
#[tokio::test]
async fn sockets_per_user_counted_per_socket() {
    let server = start(|c| {
        with_auth(c);
        c.limits.sockets_per_user_max = 1;
    })
    .await;
    let ada = common::token("ada", &[("**", Role::Write)], 600);
    let bob = common::token("bob", &[("**", Role::Write)], 600);
    let mut first = hp::connect(server.addr()).await;
    for doc in ["u/1", "u/2"] {
        first.open(doc, &ada).await;
        first.take(doc, In::is_authenticated).await;
    }
    let mut second = hp::connect(server.addr()).await;
    second.open("u/3", &ada).await;
    assert_eq!(
        second.take("u/3", In::is_denied).await.text(),
        "too_many_sockets_for_user"
    );
    second.open("u/4", &bob).await;
    second.take("u/4", In::is_authenticated).await;
}

// New connections per address per minute: the limit-th upgrade passes, the next gets 429.
#[tokio::test]
async fn connections_per_ip() {
    let server = start(|c| c.limits.connections_per_ip_per_min = 2).await;
    let _one = hp::connect(server.addr()).await;
    let _two = hp::connect(server.addr()).await;
    let third = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{}/hocuspocus", server.addr())),
    )
    .await
    .expect("answer in time");
    match third {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 429),
        other => panic!("expected 429, got {other:?}"),
    }
}
