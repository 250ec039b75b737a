//! Crash safety: a child process appends and flushes updates, printing each seq once its flush
//! returned, then keeps appending without flushing; it is killed with SIGKILL. Reopening the store
//! must succeed and hold every printed (acknowledged) update.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tandem_storage::{DocStore, SledStore, StoreConfig};

const MODE: &str = "TANDEM_STORAGE_KILL9_WRITER";

fn writer(path: &str) {
    let store = SledStore::open(std::path::Path::new(path), StoreConfig::default()).expect("opens");
    let mut n = 0u64;
    loop {
        let update = vec![0u8, 0u8]; // an empty Yjs update: the bytes do not matter here
        let seq = store.append("doc", "w", n, &update).expect("appends");
        if n.is_multiple_of(3) {
            store.flush().expect("flushes");
            println!("{seq}");
        }
        n += 1;
    }
}

#[test]
fn kill9_keeps_every_flushed_append() {
    if let Ok(path) = std::env::var(MODE) {
        writer(&path);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "kill9_keeps_every_flushed_append", "--nocapture"])
        .env(MODE, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawns");
    let stdout = child.stdout.take().expect("stdout");
    let mut acked = Vec::new();
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Ok(seq) = line.trim().parse::<u64>() {
            acked.push(seq);
        }
        if acked.len() >= 300 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    assert!(!acked.is_empty(), "the writer acknowledged nothing");
    let store = SledStore::open(&path, StoreConfig::default()).expect("reopens after kill -9");
    let stored = store.load("doc").expect("loads").expect("exists");
    let seqs: std::collections::HashSet<u64> = stored.tail.iter().map(|r| r.seq).collect();
    let lost: Vec<_> = acked.iter().filter(|s| !seqs.contains(s)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged appends lost: {lost:?}",
        lost.len()
    );
}
