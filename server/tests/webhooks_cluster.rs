//! Webhooks in cluster mode: nodes of the real `tandem` binary on one real `redis-server`
//! (`common::redis_server`, a free loopback port), one endpoint configured on every node, a
//! loopback receiver (`common/receiver.rs`).

mod common;
#[path = "common/receiver.rs"]
mod receiver;

use std::collections::HashSet;
use std::time::Duration;

use common::{redis_server, Redis};
use receiver::{create_note, created, flags, Answer, Receiver, Tandem, WITHIN};
use tandem_storage::redis_testing::Deployment;

/// A `redis-server` on a free port, and its URL.
fn redis(dir: &std::path::Path) -> (Redis, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    (
        Redis(redis_server(port, dir)),
        format!("redis://127.0.0.1:{port}/"),
    )
}

// Cluster mode: two nodes on one real redis-server, and on a 3-shard Redis Cluster, the same
// endpoint on both, changes made on both; the receiver gets each event once (derived by the node
// that accepted the change, sent by the one node holding the endpoint's lease), in the order
// they were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_delivers_each_event_once_per_endpoint() {
    for deployment in Deployment::ALL {
        delivers_each_event_once_on(deployment).await;
    }
}

async fn delivers_each_event_once_on(deployment: Deployment) {
    let redis = deployment.start();
    let r = Receiver::start(|_| Answer::Status(200)).await;
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let redis_flags = redis.flags();
    let redis_flags: Vec<&str> = redis_flags.iter().map(String::as_str).collect();
    let args = flags(&[r.url("/")], &redis_flags);
    let nodes: Vec<Tandem> = dirs
        .iter()
        .map(|d| Tandem::start(d.path(), &args))
        .collect();
    let mut ids = Vec::new();
    for i in 0..30 {
        let id = format!("c{i}");
        create_note(nodes[i % 2].addr, &id, None).await;
        ids.push(id);
    }
    let got = r.wait_deduped(ids.len(), WITHIN).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(created(&got), ids, "in order");
    assert_eq!(r.log().len(), ids.len(), "each sent once, by one node");
    let distinct: HashSet<String> = r
        .log()
        .iter()
        .map(|x| x.header("x-tandem-delivery").to_string())
        .collect();
    assert_eq!(distinct.len(), ids.len());
}

// The node delivering an endpoint is killed -9 while its events wait (the receiver is down);
// another node takes the endpoint over once the lease expires (2 × the 1 s timeout + the
// 100 ms poll) and delivers every event, in order, the one in flight perhaps twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_takes_over_when_the_delivering_one_dies() {
    let redis_dir = tempfile::tempdir().expect("dir");
    let (_redis, url) = redis(redis_dir.path());
    let r = Receiver::start(|_| Answer::Status(503)).await;
    let dirs = [
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    ];
    let args = flags(
        &[r.url("/")],
        &["--redis", &url, "--webhook-timeout-s", "1"],
    );
    // The first node is alone when the events come: it takes the lease.
    let first = Tandem::start(dirs[0].path(), &args);
    let ids: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    for id in &ids {
        create_note(first.addr, id, None).await;
    }
    let second = Tandem::start(dirs[1].path(), &args);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!r.log().is_empty(), "the first node was delivering");
    first.kill9();
    let killed = r.log().len();
    r.set_plan(|_| Answer::Status(200));
    let got = r.wait_deduped(ids.len(), WITHIN).await;
    assert_eq!(created(&got), ids, "every one, in order");
    let took = got[0].at - r.log()[killed.saturating_sub(1)].at;
    eprintln!(
        "the second node delivered the first event {took:?} after the first node's last attempt"
    );
    drop(second);
}
