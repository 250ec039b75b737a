//! Soak: many connections over many documents, churning (each client reconnects after a random
//! lifetime and edits now and then), against the real binary. Checks that memory and file
//! descriptors stay flat after warm-up, that documents unload after their last socket leaves,
//! and that the store compacts.
//!
//! CI runs a short variant (the defaults). The on-demand run, e.g.:
//!   ulimit -n 16384; cargo test --release -p tandem --test soak -- --minutes 10 --connections 1000 --docs 100 --churn-s 30-120

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tandem_crdt_model::protocol;
use tokio_tungstenite::tungstenite::Message;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

struct Args {
    minutes: f64,
    connections: usize,
    docs: usize,
    churn_s: (u64, u64),
}

fn args() -> Args {
    let mut a = Args {
        minutes: 0.5,
        connections: 200,
        docs: 20,
        churn_s: (3, 10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match flag.as_str() {
            "--minutes" => a.minutes = value().parse().expect("--minutes N"),
            "--connections" => a.connections = value().parse().expect("--connections N"),
            "--docs" => a.docs = value().parse().expect("--docs N"),
            "--churn-s" => {
                let v = value();
                let (lo, hi) = v.split_once('-').expect("--churn-s LO-HI");
                a.churn_s = (lo.parse().expect("LO"), hi.parse().expect("HI"));
            }
            _ => {}
        }
    }
    a
}

/// Resident set size (KiB) and open file descriptors of a process, from /proc.
fn usage(pid: u32) -> (u64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (rss, fds)
}

async fn get_json(addr: &str, path: &str) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.expect("writes");
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.expect("reads");
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("{}");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

async fn metric(addr: &str, name: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut resp = String::new();
    tcp.read_to_string(&mut resp).await.expect("reads");
    resp.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One churning client: connect, sync, edit now and then, leave after its lifetime, repeat.
async fn client(
    addr: String,
    doc: String,
    id: u64,
    churn: (u64, u64),
    stop: Arc<AtomicBool>,
    edits: Arc<AtomicU64>,
) {
    let mut rng = Rng::new(id.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut rand = move |n: u64| rng.below(n);
    let ydoc = Doc::with_client_id(id);
    let text = ydoc.get_or_insert_text("t");
    while !stop.load(Relaxed) {
        let Ok((mut ws, _)) =
            tokio_tungstenite::connect_async(format!("ws://{addr}/sync/{doc}")).await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let lifetime = Duration::from_secs(churn.0 + rand(churn.1.saturating_sub(churn.0) + 1));
        let until = Instant::now() + lifetime;
        let mut next_edit = Instant::now() + Duration::from_millis(500 + rand(2500));
        while Instant::now() < until && !stop.load(Relaxed) {
            tokio::select! {
                msg = ws.next() => if !matches!(msg, Some(Ok(_))) { break },
                _ = tokio::time::sleep_until(next_edit.into()) => {
                    let before = ydoc.transact().state_vector();
                    text.insert(&mut ydoc.transact_mut(), 0, "x");
                    let update = ydoc.transact().encode_state_as_update_v1(&before);
                    if ws.send(Message::binary(protocol::encode_update(&update))).await.is_err() {
                        break;
                    }
                    edits.fetch_add(1, Relaxed);
                    next_edit = Instant::now() + Duration::from_millis(500 + rand(2500));
                }
            }
        }
        let _ = ws.close(None).await;
        let _ = StateVector::default();
    }
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args([
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--room-idle-grace-s",
            "1",
            "--compact-after-updates",
            "50",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let pid = child.id();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .split("http://")
        .nth(1)
        .expect("address")
        .trim()
        .to_string();
    println!(
        "soak: {} connections over {} documents for {} min, churn {}-{} s",
        a.connections, a.docs, a.minutes, a.churn_s.0, a.churn_s.1
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let result = rt.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let edits = Arc::new(AtomicU64::new(0));
        let tasks: Vec<_> = (0..a.connections)
            .map(|i| {
                let doc = format!("soak/{}", i % a.docs);
                tokio::spawn(client(
                    addr.clone(),
                    doc,
                    1 + i as u64,
                    a.churn_s,
                    Arc::clone(&stop),
                    Arc::clone(&edits),
                ))
            })
            .collect();
        let total = Duration::from_secs_f64(a.minutes * 60.0);
        let warm_up = total / 5;
        let started = Instant::now();
        let mut samples = Vec::new();
        while started.elapsed() < total {
            tokio::time::sleep(total / 20).await;
            let (rss, fds) = usage(pid);
            println!(
                "t={:>5.1}s rss={rss} KiB fds={fds} edits={}",
                started.elapsed().as_secs_f64(),
                edits.load(Relaxed)
            );
            if started.elapsed() > warm_up {
                samples.push((rss, fds));
            }
        }
        stop.store(true, Relaxed);
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        // Every socket has left: after the grace period every document unloads.
        let deadline = Instant::now() + Duration::from_secs(15);
        let rooms = loop {
            let stats = get_json(&addr, "/api/stats").await;
            let rooms = stats["rooms"].as_u64().unwrap_or(u64::MAX);
            if rooms == 0 || Instant::now() > deadline {
                break rooms;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let compactions = metric(&addr, "tandem_compactions_total").await;
        let (rss_end, fds_end) = usage(pid);
        (
            samples,
            rooms,
            compactions,
            edits.load(Relaxed),
            rss_end,
            fds_end,
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    let (samples, rooms, compactions, edits, rss_end, fds_end) = result;
    let first = samples.first().copied().expect("samples after warm-up");
    let max_rss = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let max_fds = samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!("after warm-up: rss {} -> max {max_rss} KiB, fds {} -> max {max_fds}; at rest: rss {rss_end} KiB, fds {fds_end}", first.0, first.1);
    println!("edits {edits}, compactions {compactions}, rooms left {rooms}");
    assert!(edits > 0, "no edit was made: the soak tested nothing");
    assert!(
        max_rss <= first.0 + first.0 / 2 + 32 * 1024,
        "memory grew after warm-up: {} -> {max_rss} KiB",
        first.0
    );
    let fd_slack = a.connections / 5 + 32;
    assert!(
        max_fds <= first.1 + fd_slack,
        "file descriptors grew after warm-up: {} -> {max_fds}",
        first.1
    );
    assert!(fds_end < 64, "descriptors left open at rest: {fds_end}");
    assert_eq!(
        rooms, 0,
        "documents stayed loaded after their last socket left"
    );
    assert!(compactions > 0, "the store never compacted");
    println!("1 passed, 0 failed: soak");
}
