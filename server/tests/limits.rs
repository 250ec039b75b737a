//! The room's queues and batches at their edges: the smallest inbox, the smallest group-commit
//! queue and the smallest batch still lose nothing, and the batch bound is what a commit holds;
//! opening a document retries exactly `room_open_attempts_max` times; a socket's sync requests
//! are answered up to their budget.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use tandem::config::Config;
use tandem::room::{RoomCmd, RoomError};
use tandem::App;
use tandem_crdt_model::protocol;
use tandem_storage::memory::MemStore;
use yrs::StateVector;

/// `count` edits from distinct client IDs (so none depends on another), as frames, and the
/// client IDs.
fn edits(first_client: u64, count: u64) -> (Vec<Vec<u8>>, Vec<u64>) {
    let clients: Vec<u64> = (first_client..first_client + count).collect();
    let frames = clients
        .iter()
        .map(|client| edit(*client, &format!("c{client}")))
        .collect();
    (frames, clients)
}

/// Sends every frame without waiting, then waits until the updates the room sent back (its
/// acknowledgement that they are durable; a burst made durable together comes back merged)
/// hold every one of them. Other frames (presence) are skipped.
async fn send_all_and_await_echoes(ws: &mut Ws, (frames, clients): &(Vec<Vec<u8>>, Vec<u64>)) {
    use yrs::updates::decoder::Decode;
    use yrs::{ReadTxn, Transact};
    for frame in frames {
        send(ws, frame.clone()).await;
    }
    let replica = yrs::Doc::new();
    let has_all = |doc: &yrs::Doc| {
        let sv = doc.transact().state_vector();
        clients.iter().all(|c| sv.get(&yrs::ClientID::new(*c)) > 0)
    };
    while !has_all(&replica) {
        let frame = recv_with(ws, &[0, 2]).await;
        let message = tandem_crdt_model::protocol::decode_frame(
            &frame,
            &tandem_crdt_model::protocol::Decoding::writer(1 << 24),
        )
        .expect("a frame the room made");
        for m in message {
            if let tandem_crdt_model::protocol::Inbound::Update(u) = m {
                let update = yrs::Update::decode_v1(&u.bytes).expect("decodes");
                replica
                    .transact_mut()
                    .apply_update(update)
                    .expect("applies");
            }
        }
    }
}

// With a room inbox of one command, three sockets writing at once to one document wait for each
// other instead of losing anything: every edit is acknowledged to its author.
#[tokio::test]
async fn an_inbox_of_one_loses_nothing() {
    let s = start(|c| c.limits.room_inbox_len_max = 1).await;
    let mut writers = Vec::new();
    for w in 0..3 {
        let ws = connect_ok(s.addr(), "inbox").await;
        writers.push((ws, edits(1000 * (w + 1), 30)));
    }
    let tasks: Vec<_> = writers
        .into_iter()
        .map(|(mut ws, frames)| {
            tokio::spawn(async move { send_all_and_await_echoes(&mut ws, &frames).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("every edit acknowledged");
    }
    assert!(metric(s.addr(), "tandem_updates_persisted_total").await >= 90);
}

// With room for one waiter in the group commit, eight rooms committing at once take turns, and
// every edit of every room is acknowledged.
#[tokio::test]
async fn a_commit_queue_of_one_acknowledges_every_room() {
    let s = start(|c| c.limits.commit_waiters_max = 1).await;
    let mut tasks = Vec::new();
    for d in 0..8 {
        let mut ws = connect_ok(s.addr(), &format!("waiters/{d}")).await;
        let frames = edits(100 * (d + 1), 20);
        tasks.push(tokio::spawn(async move {
            send_all_and_await_echoes(&mut ws, &frames).await;
        }));
    }
    for task in tasks {
        task.await.expect("every room acknowledged");
    }
    assert!(metric(s.addr(), "tandem_updates_persisted_total").await >= 160);
}

// A batch of one command is one commit: forty edits sent in a burst, each its own frame (one
// command), cost at least forty flushes, and every one is acknowledged. With the default batch
// the same burst is usually folded into a few commits.
#[tokio::test]
async fn a_batch_of_one_commits_every_command() {
    let s = start(|c| c.limits.room_batch_len_max = 1).await;
    let mut ws = connect_ok(s.addr(), "batch").await;
    let before = metric(s.addr(), "tandem_flushes_total").await;
    send_all_and_await_echoes(&mut ws, &edits(1, 40)).await;
    let flushes = metric(s.addr(), "tandem_flushes_total").await - before;
    assert!(
        flushes >= 40,
        "{flushes} flushes for 40 single-command batches"
    );
}

// A room deleted while an open waits on it drops the open's request; the open tries again with a
// fresh room, as often as `room_open_attempts_max` allows. Run on one thread, so the delete and
// the open's request land in the same batch every time.
#[tokio::test(flavor = "current_thread")]
async fn opening_retries_room_open_attempts_max_times() {
    for (attempts, expect_open) in [(1, false), (2, true)] {
        let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), "unused".into());
        config.limits.room_open_attempts_max = attempts;
        let (_stop, stopped) = tokio::sync::watch::channel(false);
        let store = Arc::new(MemStore::new(Default::default()));
        let app = App::new(config, store, None, stopped);
        let room = app.rooms.open(&app, "d").await.expect("opens");
        let (reply, deleted) = tokio::sync::oneshot::channel();
        let by: Arc<str> = Arc::from("admin");
        room.send(RoomCmd::Delete { by, reply })
            .await
            .expect("queued");
        let opened = app.rooms.open(&app, "d").await;
        assert_eq!(opened.is_ok(), expect_open, "attempts {attempts}");
        if !expect_open {
            assert!(matches!(opened, Err(RoomError::Gone)));
        }
        deleted.await.expect("answered").expect("deleted");
    }
}

// A socket that asks for the document over and over (SyncStep1) gets `sync_requests_burst`
// answers at once and then one per `60 / sync_requests_per_min` seconds; the rest are counted,
// not encoded, and the socket itself stays open and in sync.
#[tokio::test]
async fn sync_requests_past_the_burst_are_not_answered() {
    const BURST: u32 = 3;
    let s = start(|c| {
        c.limits.sync_requests_burst = BURST;
        c.limits.sync_requests_per_min = 60;
    })
    .await;
    let mut ws = connect_ok(s.addr(), "notes/asked-again").await;
    still_syncs(&mut ws, 1).await;
    let ask = protocol::encode_sync_step1(&StateVector::default());
    for _ in 0..BURST + 4 {
        send(&mut ws, ask.clone()).await;
    }
    let mut answers = 0;
    let quiet = Duration::from_millis(300);
    while let Ok(frame) = tokio::time::timeout(quiet, recv(&mut ws)).await {
        answers += u32::from(frame.starts_with(&[0, 1]));
    }
    assert!(
        (BURST..=BURST + 1).contains(&answers),
        "{answers} answers to {} requests (one may have refilled)",
        BURST + 4
    );
    assert!(metric(s.addr(), "tandem_sync_requests_dropped_total").await >= 3);
    still_syncs(&mut ws, 2).await;
    // A second later the budget has a request again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    send(&mut ws, ask).await;
    let step2 = recv_with(&mut ws, &[0, 1]).await;
    assert!(step2.windows(2).any(|w| w == b"ok"), "the whole document");
}
