//! Crash test: the real `tandem` binary, 8 writers inserting uniquely tagged tokens, SIGKILL at
//! random moments (while writing, while compacting, during start-up replay), restart, and check
//! that every acknowledged token is present, nothing present was never sent, and the document
//! decodes.
//!
//! `cargo test -p tandem --test crash -- --cycles 200 --seed 42`. The seed is printed; the same
//! seed replays the same kill schedule (thread timing still varies, so failures are found by
//! schedule, then reproduced by running that seed repeatedly).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_crdt_model::protocol::{self, Inbound};
use tokio_tungstenite::tungstenite::Message;
use yrs::{Array, Doc, ReadTxn, StateVector, Transact};

const WRITERS: u64 = 8;
const DOC: &str = "crash/doc";
/// Small, so that compaction runs often and kills land inside it.
const COMPACT_AFTER_UPDATES: &str = "40";

#[path = "common/rng.rs"]
mod rng;
use rng::Rng;

struct Args {
    cycles: u64,
    seed: u64,
}

fn args() -> Args {
    let mut args = Args {
        cycles: 20,
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ u32::try_from(d.as_secs() % (1 << 31)).unwrap_or(0))
            .map(u64::from)
            .unwrap_or(1)
            | 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--cycles" => args.cycles = it.next().and_then(|v| v.parse().ok()).expect("--cycles N"),
            "--seed" => args.seed = it.next().and_then(|v| v.parse().ok()).expect("--seed S"),
            _ => {} // libtest flags passed through by cargo (e.g. --nocapture) are ignored
        }
    }
    args
}

fn spawn(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(["--compact-after-updates", COMPACT_AFTER_UPDATES])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("binary starts")
}

/// Waits for the listening line; `None` if the process died first.
fn listening_addr(child: &mut Child) -> Option<String> {
    let stdout = child.stdout.take()?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).ok()?;
    line.split("http://").nth(1).map(|a| a.trim().to_string())
}

#[derive(Default)]
struct Ledger {
    sent: HashSet<String>,
    acked: HashSet<String>,
}

/// One writer: pushes tokens `c{cycle}w{writer}n{n}` into the shared array, one update each,
/// and records a token as acknowledged when the server echoes its exact update.
async fn writer(addr: String, cycle: u64, w: u64, ledger: Arc<Mutex<Ledger>>) {
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(format!("ws://{addr}/sync/{DOC}")).await
    else {
        return;
    };
    let doc = Doc::with_client_id(1 + cycle * WRITERS + w);
    let tokens = doc.get_or_insert_array("tokens");
    let mut pending: Vec<(Vec<u8>, String)> = Vec::new();
    for n in 0.. {
        let token = format!("c{cycle}w{w}n{n}");
        let before = doc.transact().state_vector();
        tokens.push_back(&mut doc.transact_mut(), token.as_str());
        let update = doc.transact().encode_state_as_update_v1(&before);
        let frame = protocol::encode_update(&update);
        ledger.lock().expect("ledger").sent.insert(token.clone());
        if ws.send(Message::binary(frame.clone())).await.is_err() {
            return;
        }
        pending.push((frame, token));
        // Read acknowledgements without blocking the next write for long.
        while let Ok(Some(Ok(msg))) =
            tokio::time::timeout(Duration::from_millis(2), ws.next()).await
        {
            if let Message::Binary(b) = msg {
                if let Some(i) = pending.iter().position(|(f, _)| f.as_slice() == &b[..]) {
                    let (_, t) = pending.remove(i);
                    ledger.lock().expect("ledger").acked.insert(t);
                }
            }
        }
    }
}

/// Reads the whole document from a fresh connection.
async fn read_tokens(addr: &str) -> Vec<String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/sync/{DOC}"))
        .await
        .expect("reader connects after restart");
    ws.send(Message::binary(protocol::encode_sync_step1(
        &StateVector::default(),
    )))
    .await
    .expect("sends");
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("step 2 in time")
            .expect("open")
            .expect("ok");
        let Message::Binary(b) = msg else { continue };
        if !b.starts_with(&[0, 1]) {
            continue;
        }
        let Some(Inbound::Update(u)) =
            protocol::decode_frame(&b, &protocol::Decoding::writer(usize::MAX))
                .expect("decodes")
                .pop()
        else {
            panic!("step 2 without an update");
        };
        let doc = Doc::new();
        doc.transact_mut()
            .apply_update(u.decoded)
            .expect("document decodes and applies");
        let arr = doc.get_or_insert_array("tokens");
        let txn = doc.transact();
        return arr.iter(&txn).map(|v| v.to_string(&txn)).collect();
    }
}

fn main() {
    let args = args();
    println!(
        "crash test: {} cycles, seed {} (replay with --seed {})",
        args.cycles, args.seed, args.seed
    );
    let mut rng = Rng::new(args.seed);
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut startup_kills = 0;
    for cycle in 0..args.cycles {
        let mut child = spawn(dir.path());
        // Now and then, kill during start-up replay, before the server even listens.
        if rng.below(5) == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(30)));
            let _ = child.kill();
            let _ = child.wait();
            startup_kills += 1;
            child = spawn(dir.path());
        }
        let addr = listening_addr(&mut child).expect("server listens");
        let run_ms = 50 + rng.below(600);
        rt.block_on(async {
            let writers: Vec<_> = (0..WRITERS)
                .map(|w| tokio::spawn(writer(addr.clone(), cycle, w, Arc::clone(&ledger))))
                .collect();
            tokio::time::sleep(Duration::from_millis(run_ms)).await;
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            for w in writers {
                w.abort();
            }
        });
        // Restart on the same directory and check the ledger.
        let mut child = spawn(dir.path());
        let addr = listening_addr(&mut child).expect("server restarts");
        let present = rt.block_on(read_tokens(&addr));
        let _ = child.kill();
        let _ = child.wait();
        let ledger = ledger.lock().expect("ledger");
        let present_set: HashSet<&String> = present.iter().collect();
        let lost: Vec<_> = ledger
            .acked
            .iter()
            .filter(|t| !present_set.contains(t))
            .collect();
        assert!(
            lost.is_empty(),
            "seed {}: cycle {cycle}: acknowledged tokens lost: {lost:?}",
            args.seed
        );
        let invented: Vec<_> = present
            .iter()
            .filter(|t| !ledger.sent.contains(*t))
            .collect();
        assert!(
            invented.is_empty(),
            "seed {}: tokens never sent: {invented:?}",
            args.seed
        );
        assert_eq!(
            present.len(),
            present_set.len(),
            "seed {}: duplicated tokens",
            args.seed
        );
        println!(
            "cycle {cycle}: ran {run_ms} ms, {} sent, {} acknowledged, {} present",
            ledger.sent.len(),
            ledger.acked.len(),
            present.len()
        );
    }
    let ledger = ledger.lock().expect("ledger");
    assert!(
        !ledger.acked.is_empty(),
        "no write was ever acknowledged: the test tested nothing"
    );
    println!(
        "1 passed, 0 failed: {} cycles ({startup_kills} kills during start-up), {} tokens acknowledged, none lost",
        args.cycles,
        ledger.acked.len()
    );
}
