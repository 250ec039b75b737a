//! Socket-level tests: the real server (in-process, on 127.0.0.1:0, with a temporary data
//! directory) driven by a real websocket client. Each limit and each refusal is tested at its
//! edge, and each time a well-behaved client in the same room checks that it still syncs.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tandem::auth::{mint_hs256, Claims, Role};
use tandem_crdt_model::protocol;
use tokio_tungstenite::tungstenite::Message;
use yrs::StateVector;

// Names outside the allowed alphabet, too long, or escaping get 400 before any upgrade.
#[tokio::test]
async fn invalid_names_get_400() {
    let s = start(|_| {}).await;
    let long = "a".repeat(256);
    for bad in ["a%20b", "..", "a/../b", "a//b", long.as_str(), ""] {
        assert_eq!(refused_status(s.addr(), bad).await, 400, "{bad:?}");
    }
    connect_ok(s.addr(), &"a".repeat(255)).await;
}

// The connection limit: the last allowed socket opens, the next gets 503.
#[tokio::test]
async fn connection_limit_edge() {
    let s = start(|c| c.limits.connections_max = 2).await;
    let mut a = connect_ok(s.addr(), "d").await;
    let _b = connect_ok(s.addr(), "d").await;
    assert_eq!(refused_status(s.addr(), "d").await, 503);
    still_syncs(&mut a, 1).await;
}

// A frame one byte over the limit closes its socket with 1009; a frame at the limit passes;
// the neighbour is unaffected.
#[tokio::test]
async fn frame_size_edge() {
    let limit = 64 * 1024;
    let s = start(|c| c.limits.frame_size_max_bytes = limit).await;
    let mut good = connect_ok(s.addr(), "d").await;
    let mut bad = connect_ok(s.addr(), "d").await;
    // Build an update frame of exactly `limit` bytes.
    let mut n = limit - 100;
    let at_limit = loop {
        let f = edit(5, &"x".repeat(n));
        if f.len() == limit {
            break f;
        }
        n = n + limit - f.len();
    };
    send(&mut bad, at_limit).await;
    recv_with(&mut bad, &[0, 2]).await;
    send(&mut bad, vec![0u8; limit + 1]).await;
    assert_eq!(close_code(&mut bad).await, 1009);
    still_syncs(&mut good, 2).await;
}

// Hostile frames each close only their own socket, with the documented code.
#[tokio::test]
async fn hostile_frames_get_close_codes() {
    let s = start(|_| {}).await;
    let mut good = connect_ok(s.addr(), "d").await;
    let cases: Vec<(Message, u16)> = vec![
        (Message::text("hello"), 1003),
        (Message::binary(vec![0xff, 0xff, 0xff]), 1007),
        (
            Message::binary(vec![0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            1007,
        ),
        (Message::binary(vec![0, 2, 5, 1, 2]), 1007),
        (Message::binary(vec![0, 7, 0]), 1007),
    ];
    for (frame, code) in cases {
        let mut ws = connect_ok(s.addr(), "d").await;
        ws.send(frame.clone()).await.expect("sent");
        assert_eq!(close_code(&mut ws).await, code, "{frame:?}");
    }
    still_syncs(&mut good, 3).await;
}

// SIGTERM-style shutdown closes sockets with 1012, and what was acknowledged is there after a
// restart on the same directory.
#[tokio::test]
async fn graceful_shutdown_closes_with_1012_and_keeps_data() {
    let mut s = start(|_| {}).await;
    let mut ws = connect_ok(s.addr(), "notes/1").await;
    still_syncs(&mut ws, 4).await;
    let server = s.server.take().expect("running");
    let stopping = tokio::spawn(server.shutdown());
    let asked = std::time::Instant::now();
    assert_eq!(close_code(&mut ws).await, 1012);
    // Polled once more, the client sends its close reply, as browsers do at once; the server
    // then has nothing left to wait for.
    assert!(ws.next().await.is_none(), "the socket ends after the close");
    stopping.await.expect("joins").expect("clean shutdown");
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "a shutdown with answering clients does not wait out a timeout: {:?}",
        asked.elapsed()
    );
    let s = start_in(s.dir, |_| {}).await;
    let mut ws = connect_ok(s.addr(), "notes/1").await;
    send(
        &mut ws,
        protocol::encode_sync_step1(&StateVector::default()),
    )
    .await;
    let step2 = recv_with(&mut ws, &[0, 1]).await;
    assert!(
        step2.windows(2).any(|w| w == b"ok"),
        "content survived restart"
    );
}

// Every authentication refusal happens before the upgrade, with 401 or 403 and a JSON body.
#[tokio::test]
async fn auth_refusals() {
    let s = start(with_auth).await;
    let a = s.addr();
    assert_eq!(refused_status(a, "notes/1").await, 401);
    assert_eq!(refused_status(a, "notes/1?token=garbage").await, 401);
    let forged = {
        let claims = Claims {
            sub: "eve".into(),
            name: None,
            docs: [("**".to_string(), Role::Admin)].into(),
            exp: None,
            nbf: None,
            iss: None,
            aud: None,
        };
        mint_hs256(b"not-the-secret", &claims).expect("mints")
    };
    assert_eq!(
        refused_status(a, &format!("notes/1?token={forged}")).await,
        401
    );
    let expired = token("alice", &[("**", Role::Write)], -5);
    assert_eq!(
        refused_status(a, &format!("notes/1?token={expired}")).await,
        401
    );
    let only_1 = token("alice", &[("notes/1", Role::Write)], 60);
    assert_eq!(
        refused_status(a, &format!("notes/2?token={only_1}")).await,
        403
    );
    connect_ok(a, &format!("notes/1?token={only_1}")).await;
    let everything = token("alice", &[("**", Role::Write)], 60);
    assert_eq!(
        refused_status(a, &format!("private/bob/x?token={everything}")).await,
        403
    );
    connect_ok(a, &format!("private/alice/x?token={everything}")).await;
}

// A read-only socket gets the document, but its edit is answered with permission-denied and
// reaches nobody.
#[tokio::test]
async fn read_only_socket() {
    let s = start(with_auth).await;
    let writer_token = token("w", &[("d", Role::Write)], 60);
    let reader_token = token("r", &[("d", Role::Read)], 60);
    let mut writer = connect_ok(s.addr(), &format!("d?token={writer_token}")).await;
    let mut reader = connect_ok(s.addr(), &format!("d?token={reader_token}")).await;
    still_syncs(&mut writer, 10).await;
    recv_with(&mut reader, &[0, 2]).await; // the reader receives the writer's edit
    send(&mut reader, edit(11, "forbidden")).await;
    let denied = recv_with(&mut reader, &[2]).await;
    assert_eq!(
        denied,
        // The provider shows the reason: it says the role is read-only.
        protocol::encode_permission_denied(
            "read-only: the token's role on this document is read, so its edits are refused"
        )
    );
    // The writer's next frame is its own echo, not the reader's edit.
    let frame = edit(12, "next");
    send(&mut writer, frame.clone()).await;
    assert_eq!(recv_with(&mut writer, &[0, 2]).await, frame);
}

// A socket whose token expires is closed with 4401; a fresh token reconnects.
#[tokio::test]
async fn token_expiry_closes_socket() {
    let s = start(with_auth).await;
    let short = token("a", &[("d", Role::Write)], 2);
    let mut ws = connect_ok(s.addr(), &format!("d?token={short}")).await;
    assert_eq!(close_code(&mut ws).await, 4401);
    let fresh = token("a", &[("d", Role::Write)], 60);
    let mut ws = connect_ok(s.addr(), &format!("d?token={fresh}")).await;
    still_syncs(&mut ws, 20).await;
}

// A flooding socket is closed with 4429 once past its burst; its neighbour keeps syncing.
#[tokio::test]
async fn message_rate_limit() {
    let s = start(|c| {
        c.limits.messages_per_sec_per_conn = 5;
        c.limits.messages_burst_per_conn = 20;
    })
    .await;
    let mut good = connect_ok(s.addr(), "d").await;
    let mut flood = connect_ok(s.addr(), "d").await;
    for _ in 0..40 {
        if flood.send(Message::binary(vec![3])).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut flood).await, 4429);
    still_syncs(&mut good, 30).await;
}

// New connections per IP: the limit-th passes, the next gets 429.
#[tokio::test]
async fn connections_per_ip_edge() {
    let s = start(|c| c.limits.connections_per_ip_per_min = 3).await;
    let mut first = connect_ok(s.addr(), "d").await;
    connect_ok(s.addr(), "d").await;
    connect_ok(s.addr(), "d").await;
    assert_eq!(refused_status(s.addr(), "d").await, 429);
    still_syncs(&mut first, 40).await;
}

// Failed authentications per IP: the limit-th failure gets 401, the next 429; a good token from
// that address is accepted throughout.
#[tokio::test]
async fn auth_failures_per_ip_edge() {
    let s = start(|c| {
        with_auth(c);
        c.limits.auth_failures_per_ip_per_min = 2;
    })
    .await;
    let good = token("a", &[("d", Role::Write)], 60);
    assert_eq!(refused_status(s.addr(), "d?token=bad").await, 401);
    connect_ok(s.addr(), &format!("d?token={good}")).await;
    assert_eq!(refused_status(s.addr(), "d?token=bad").await, 401);
    assert_eq!(refused_status(s.addr(), "d?token=bad").await, 429);
    let mut ws = connect_ok(s.addr(), &format!("d?token={good}")).await;
    still_syncs(&mut ws, 45).await;
}

// Sockets per user: the limit-th opens, the next gets 429, and closing one frees a place.
#[tokio::test]
async fn sockets_per_user_edge() {
    let s = start(|c| {
        with_auth(c);
        c.limits.sockets_per_user_max = 2;
    })
    .await;
    let t = token("a", &[("d", Role::Write)], 60);
    let path = format!("d?token={t}");
    let mut one = connect_ok(s.addr(), &path).await;
    let mut two = connect_ok(s.addr(), &path).await;
    assert_eq!(refused_status(s.addr(), &path).await, 429);
    two.close(None).await.expect("closes");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match connect(s.addr(), &path).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("slot never freed: {e}"),
        }
    }
    still_syncs(&mut one, 50).await;
}

// A peer that never answers pings is closed with 4002 after one interval without a pong.
#[tokio::test]
async fn ping_timeout() {
    let s = start(|c| c.timing.ping_interval = Duration::from_millis(300)).await;
    let ws = connect_ok(s.addr(), "d").await;
    // Stop reading: tungstenite answers pings only while the stream is polled.
    let (_sink, mut stream) = ws.split();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut code = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(WAIT, stream.next()).await {
        if let Message::Close(Some(frame)) = msg {
            code = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(code, Some(4002));
}

// A socket that published presence and then went silent (its network gone without a close
// frame) is closed with 4002 within two presence ping periods, and the others see its presence
// removed then, not at the 30 s keep-alive; a socket without presence keeps the long period.
#[tokio::test]
async fn presence_ping_edge() {
    let every = Duration::from_millis(300);
    let s = start(|c| {
        c.timing.ping_interval = Duration::from_secs(30);
        c.timing.presence_ping_interval = every;
    })
    .await;
    let mut watcher = connect_ok(s.addr(), "p").await;
    let quiet = connect_ok(s.addr(), "p").await; // no presence, and it stops reading too
    let (quiet_sink, quiet_stream) = quiet.split();
    let mut leaver = connect_ok(s.addr(), "p").await;
    send(&mut leaver, presence(77, 1, r#"{"user":"bob"}"#)).await;
    presence_of(&mut watcher, 77, |json| json.contains("bob")).await;
    // The leaver's network is gone: it reads nothing more, so it answers no ping.
    let (_leaver_sink, mut leaver_stream) = leaver.split();
    let gone_at = tokio::time::Instant::now();
    let removed_at = presence_of(&mut watcher, 77, |json| json == "null").await;
    let took = removed_at - gone_at;
    assert!(
        took <= every * 2 + Duration::from_millis(700),
        "removed after {took:?}"
    );
    let mut code = None;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(WAIT, leaver_stream.next()).await {
        if let Message::Close(Some(frame)) = msg {
            code = Some(u16::from(frame.code));
            break;
        }
    }
    assert_eq!(code, Some(4002));
    // The quiet socket, silent as long, is still served.
    let mut quiet = quiet_sink.reunite(quiet_stream).expect("same socket");
    still_syncs(&mut quiet, 78).await;
    still_syncs(&mut watcher, 79).await;
}

// Health, stats and metrics answer with the documented shapes.
#[tokio::test]
async fn health_stats_metrics() {
    let s = start(|_| {}).await;
    let mut ws = connect_ok(s.addr(), "notes/9").await;
    still_syncs(&mut ws, 60).await;
    let (status, _, health) = http(s.addr(), "GET", "/health", &[], b"").await;
    let health = String::from_utf8_lossy(&health).to_string();
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("\"status\":\"ok\""));
    let (_, _, stats) = http(s.addr(), "GET", "/api/stats", &[], b"").await;
    let stats = String::from_utf8_lossy(&stats).to_string();
    assert!(stats.contains("\"per_room\":{\"notes/9\":1}"), "{stats}");
    let (_, _, metrics) = http(s.addr(), "GET", "/metrics", &[], b"").await;
    let metrics = String::from_utf8_lossy(&metrics).to_string();
    assert!(metrics.contains("tandem_connections 1"), "{metrics}");
    assert!(metrics.contains("tandem_persist_seconds_count"));
}
