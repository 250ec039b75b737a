//! Cluster mode against a real `redis-server` (Debian's, started on a free loopback port by
//! `common::redis_server`, `appendonly yes` + `appendfsync always`): `/health` follows Redis
//! through a restart, edits made while it is away are held and written when it is back, nothing
//! acknowledged is lost across it, and shutdown stops the cluster threads.

mod common;

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;
use tandem_storage::redis_store::RedisStore;
use tandem_storage::DocStore;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Transact, Update};

/// Stops redis-server as an operator's restart does (SIGTERM: it finishes its AOF and exits).
fn terminate(child: &mut Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    child.wait().expect("redis-server exits");
}

async fn health(addr: std::net::SocketAddr) -> (u16, String) {
    let (status, _, body) = http(addr, "GET", "/health", &[], b"").await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn wait_health(addr: std::net::SocketAddr, want: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let (status, body) = health(addr).await;
        if status == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "/health still {status} after {within:?}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends `frame` and waits for its echo, the acknowledgement that it is stored.
async fn acknowledged(ws: &mut Ws, frame: Vec<u8>) {
    send(ws, frame.clone()).await;
    while recv_with(ws, &[0, 2]).await != frame {}
}

fn stored_text(url: &str, doc: &str) -> String {
    let store = RedisStore::open(url, "checker", Default::default()).expect("connects");
    let stored = store.load(doc).expect("loads").expect("exists");
    let ydoc = Doc::new();
    for update in stored.updates() {
        ydoc.transact_mut()
            .apply_update(Update::decode_v1(update).expect("decodes"))
            .expect("applies");
    }
    let text = ydoc.get_or_insert_text("t");
    let s = text.get_string(&ydoc.transact());
    s
}

// Redis restarts under a node (SIGTERM, then a new redis-server on the same port and AOF), with
// no outage grace (`--cluster-outage-grace-s 0`): `/health` turns 503 while it is away and back
// to 200 by itself within 10 s of its return; an edit while it is away is refused at once
// (1011); an edit acknowledged before the restart and one made after it are both in Redis; and
// shutdown joins the cluster threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_redis_through_a_restart() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut redis = Redis(redis_server(port, dir.path()));
    let url = format!("redis://127.0.0.1:{port}/");
    let mut s = start(|c| {
        c.redis = Some(tandem_storage::redis_store::RedisTarget::Single(
            url.clone(),
        ));
        c.cluster.heartbeat_interval = Duration::from_millis(200);
        c.cluster.node_lease = Duration::from_secs(1);
        c.timing.store_probe_interval = Duration::from_millis(200);
        c.cluster.outage_grace = Duration::ZERO;
    })
    .await;
    let addr = s.addr();
    assert_eq!(health(addr).await.0, 200);
    let mut ws = connect_ok(addr, "cluster/restart").await;
    acknowledged(&mut ws, edit(1, "before ")).await;

    terminate(&mut redis.0);
    let down = wait_health(addr, 503, Duration::from_secs(10)).await;
    // An edit while Redis is away is refused (its socket closed), never acknowledged.
    send(&mut ws, edit(2, "lost? ")).await;
    assert_eq!(close_code(&mut ws).await, 1011);

    drop(ws);
    redis.0 = redis_server(port, dir.path());
    let up = wait_health(addr, 200, Duration::from_secs(10)).await;
    eprintln!("/health: 503 after {down:?} without Redis, 200 after {up:?} with it back");
    let mut ws = connect_ok(addr, "cluster/restart").await;
    acknowledged(&mut ws, edit(3, "after ")).await;
    let text = stored_text(&url, "cluster/restart");
    assert!(
        text.contains("before ") && text.contains("after "),
        "stored: {text:?}"
    );

    // A socket that is not read would make shutdown wait out its close handshake.
    drop(ws);
    let server = s.server.take().expect("running");
    let app = std::sync::Arc::clone(&server.app);
    let stopping = Instant::now();
    server.shutdown().await.expect("shuts down");
    let took = stopping.elapsed();
    eprintln!("shutdown took {took:?}");
    assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
    let cluster = app.cluster.as_ref().expect("cluster mode");
    assert!(cluster.stopped(), "the cluster threads were joined");
}

// Redis goes away (SIGTERM) while a client edits, and comes back (a new redis-server on the same
// port and AOF) within the outage grace: the edit is not acknowledged while Redis is away (no
// echo) and its socket stays open; `/health` says 503 with the cause; once Redis is back the
// held edit is written and echoed on the same socket, without a reconnect or a restart, and it
// is in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_made_while_redis_is_away_are_held_then_written() {
    let port = tandem_storage::redis_testing::free_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut redis = Redis(redis_server(port, dir.path()));
    let url = format!("redis://127.0.0.1:{port}/");
    let s = start(|c| {
        c.redis = Some(tandem_storage::redis_store::RedisTarget::Single(
            url.clone(),
        ));
        c.cluster.heartbeat_interval = Duration::from_millis(200);
        c.cluster.node_lease = Duration::from_secs(1);
        c.timing.store_probe_interval = Duration::from_millis(200);
        c.cluster.outage_grace = Duration::from_secs(30);
    })
    .await;
    let addr = s.addr();
    let mut ws = connect_ok(addr, "cluster/held").await;
    acknowledged(&mut ws, edit(1, "before ")).await;

    terminate(&mut redis.0);
    let held = edit(2, "held ");
    send(&mut ws, held.clone()).await;
    wait_health(addr, 503, Duration::from_secs(10)).await;
    let (_, body) = health(addr).await;
    assert!(body.contains("redis"), "/health names the cause: {body}");
    // Nothing comes back for the held edit while Redis is away, and the socket stays open.
    let silent = tokio::time::timeout(Duration::from_secs(1), recv_with(&mut ws, &[0, 2])).await;
    assert!(silent.is_err(), "no echo while Redis is away: {silent:?}");

    redis.0 = redis_server(port, dir.path());
    let echoed = tokio::time::timeout(Duration::from_secs(15), async {
        while recv_with(&mut ws, &[0, 2]).await != held {}
    })
    .await;
    assert!(
        echoed.is_ok(),
        "the held edit is acknowledged once Redis is back"
    );
    wait_health(addr, 200, Duration::from_secs(10)).await;
    let text = stored_text(&url, "cluster/held");
    assert!(
        text.contains("before ") && text.contains("held "),
        "stored: {text:?}"
    );
}
