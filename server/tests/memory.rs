//! Memory after unload: fills the real binary with documents from several clients at once (many
//! small objects each, like a contact with thousands of custom fields), lets every room unload,
//! and checks that RSS comes back to within a few MiB per document of where it started. Before
//! the server ran on mimalloc it did not: glibc kept what the rooms had freed in its per-thread
//! arenas (with the defaults below, a debug build kept 177 MiB over its start; now 34-42 MiB,
//! which is sled's page cache, see `KEPT_PER_FIELD_MAX_BYTES`).
//!
//! CI runs the defaults (about 10 s in a debug build). A bigger run, or an older build:
//!   cargo test --release -p tandem --test memory -- --docs 40 --fields 40000
//!   TANDEM_BIN=path/to/tandem cargo test -p tandem --test memory

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tandem_crdt_model::protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yrs::{Doc, Map, ReadTxn, StateVector, Text, TextPrelim, Transact};

struct Args {
    docs: usize,
    fields: usize,
}

fn args() -> Args {
    let mut a = Args {
        docs: 8,
        fields: 20_000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_default();
        match flag.as_str() {
            "--docs" => a.docs = value().parse().expect("--docs N"),
            "--fields" => a.fields = value().parse().expect("--fields N"),
            _ => {}
        }
    }
    a
}

/// Retries of a sync answered 503 (see `fill`).
const SYNC_RETRIES_MAX: usize = 5;
/// Fields per update (and request).
const FIELDS_PER_UPDATE: usize = 5_000;
/// What the server may keep per field after unload (6 MiB per document of 20,000 fields): sled's
/// page cache holds each document's update and snapshot, and sled does not evict cold pages (see
/// the README's "Guarantees"). Measured for 8 x 20,000 fields: mimalloc kept 22 MiB (release
/// build) and 34-42 MiB (debug); glibc kept 134 MiB (release) and 177-180 MiB (debug).
const KEPT_PER_FIELD_MAX_BYTES: u64 = 300;
/// What the server may keep besides (sled's page table and the parts of its metrics touched).
const KEPT_FIXED_MAX_KIB: u64 = 16 * 1024;
/// An idle server's RSS: 10 MiB in a release build, 40 MiB in a debug one. Catches gross
/// regressions only (mimalloc committing its first arena eagerly made a release build idle at 49).
const IDLE_RSS_MAX_KIB: u64 = 64 * 1024;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// One HTTP/1.1 request on its own connection; returns the status and the body.
async fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut tcp = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("writes");
    tcp.write_all(body).await.expect("writes");
    let mut resp = Vec::new();
    tcp.read_to_end(&mut resp).await.expect("reads");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(resp.len(), |i| i + 4);
    let status = std::str::from_utf8(&resp[..split.min(12)])
        .ok()
        .and_then(|s| s.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, resp[split..].to_vec())
}

/// Gives `doc` `fields` short texts in a map (a contact's custom fields, as the REST API would
/// make them), sent through the one-round-trip HTTP sync in updates of `FIELDS_PER_UPDATE`.
/// Many small objects per document are what left glibc's arenas fragmented.
async fn fill(addr: String, doc: String, fields: usize, seed: u64) {
    let ydoc = Doc::with_client_id(seed);
    let custom = ydoc.get_or_insert_map("custom");
    let mut done = 0;
    while done < fields {
        let before = ydoc.transact().state_vector();
        {
            let mut txn = ydoc.transact_mut();
            for k in done..fields.min(done + FIELDS_PER_UPDATE) {
                let text = custom.insert(&mut txn, format!("field{k:06}"), TextPrelim::new(""));
                text.insert(&mut txn, 0, &format!("value {k} of {doc}"));
            }
        }
        done = fields.min(done + FIELDS_PER_UPDATE);
        let update = ydoc.transact().encode_state_as_update_v1(&before);
        let mut body = protocol::encode_sync_step1(&StateVector::default());
        body.extend(protocol::encode_update(&update));
        // A 503 `room_busy` ("retry") comes when the request meets the room as it unloads (a
        // debug build can take over the 1 s grace building the next update): retry, bounded.
        let path = format!("/api/docs/{doc}/sync");
        let mut answer = http(&addr, "POST", &path, &body).await;
        for _ in 0..SYNC_RETRIES_MAX {
            if answer.0 != 503 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            answer = http(&addr, "POST", &path, &body).await;
        }
        let (status, reply) = answer;
        assert_eq!(
            status,
            200,
            "sync of {doc} answered {status}: {}",
            String::from_utf8_lossy(&reply)
        );
    }
}

async fn rooms_open(addr: &str) -> u64 {
    let (_, body) = http(addr, "GET", "/api/stats", b"").await;
    serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default()["rooms"]
        .as_u64()
        .unwrap_or(u64::MAX)
}

/// Kills the server however the test ends: a failed request panics inside the runtime, and the
/// server must not outlive the test.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let a = args();
    let dir = tempfile::tempdir().expect("tempdir");
    // `TANDEM_BIN` runs another build (e.g. an older one, to see this test fail on it).
    let bin = std::env::var("TANDEM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_tandem").into());
    let mut child = Command::new(bin)
        .args(["serve", "--addr", "127.0.0.1:0", "--room-idle-grace-s", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts");
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let child = KillOnDrop(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let addr = line
        .split("http://")
        .nth(1)
        .expect("address")
        .trim()
        .to_string();
    println!(
        "memory: {} documents of {} fields, filled at once",
        a.docs, a.fields
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (start, loaded, after, rooms) = rt.block_on(async {
        let start = rss_kib(pid);
        let fills: Vec<_> = (0..a.docs)
            .map(|i| {
                let seed = 1 + i as u64;
                tokio::spawn(fill(addr.clone(), format!("mem/{i}"), a.fields, seed))
            })
            .collect();
        for f in fills {
            f.await.expect("fill task");
        }
        let loaded = rss_kib(pid);
        // Every room unloads one second after its last request; wait for all of them.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut rooms = rooms_open(&addr).await;
        while rooms > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            rooms = rooms_open(&addr).await;
        }
        // Freed pages go back at once; a moment for the last frees of the room tasks.
        tokio::time::sleep(Duration::from_millis(500)).await;
        (start, loaded, rss_kib(pid), rooms)
    });
    drop(child);
    println!("rss: idle {start} KiB, loaded {loaded} KiB, after unload {after} KiB");
    assert_eq!(rooms, 0, "rooms still open after 30 s");
    assert!(
        start <= IDLE_RSS_MAX_KIB,
        "an idle server takes {start} KiB (at most {IDLE_RSS_MAX_KIB})"
    );
    let docs = u64::try_from(a.docs).unwrap_or(u64::MAX);
    let fields = u64::try_from(a.fields).unwrap_or(u64::MAX);
    let kept_max = docs * fields * KEPT_PER_FIELD_MAX_BYTES / 1024 + KEPT_FIXED_MAX_KIB;
    let kept = after.saturating_sub(start);
    assert!(
        kept <= kept_max,
        "after unload the server kept {kept} KiB over its start (at most {kept_max} for {} \
         documents of {} fields)",
        a.docs,
        a.fields
    );
    println!("1 passed, 0 failed: memory");
}
