//! Room tests without sockets, on the memory store: members are plain channels, so each test
//! drives the room's command protocol directly and reads the typed messages a connection would
//! have framed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use std::collections::VecDeque;
use tandem::config::{Config, Limits};
use tandem::room::{
    mailbox, Delivery, Detach, Edit, EditError, EditFn, MailboxReader, Member, Message, Outgoing,
    Receives, RoomCmd,
};
use tandem::rooms::RoomHandle;
use tandem::App;
use tandem_crdt_model::protocol::{self, Inbound};
use tandem_storage::fault::FaultyStore;
use tandem_storage::memory::MemStore;
use tandem_storage::DocStore;
use tokio::sync::watch;
use yrs::sync::awareness::AwarenessUpdate;
use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    app: Arc<App>,
    _shutdown: watch::Sender<bool>,
}

fn memory() -> Arc<dyn DocStore> {
    Arc::new(MemStore::new(Default::default()))
}

fn harness_with(limits: Limits, store: Arc<dyn DocStore>) -> Harness {
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), "unused".into());
    config.limits = limits;
    config.timing.room_idle_grace = Duration::from_millis(50);
    let (tx, rx) = watch::channel(false);
    Harness {
        app: App::new(config, store, None, rx),
        _shutdown: tx,
    }
}

fn harness() -> Harness {
    harness_with(Limits::default(), memory())
}

/// A member without a socket: it reads exactly what the room sends it, typed.
struct TestPeer {
    id: u64,
    mailbox: MailboxReader,
    /// Taken from the mailbox, not yet looked at.
    queued: VecDeque<Message>,
    /// Why the room let it go, once it said so.
    detached: Option<Detach>,
}

impl TestPeer {
    async fn next(&mut self) -> Outgoing {
        loop {
            if let Some(message) = self.queued.pop_front() {
                return message.body().clone();
            }
            assert!(
                self.detached.is_none(),
                "detached while waiting for a message"
            );
            let delivery = tokio::time::timeout(WAIT, self.mailbox.recv())
                .await
                .expect("a message within the timeout");
            self.take(delivery);
        }
    }

    fn take(&mut self, delivery: Delivery) {
        match delivery {
            Delivery::Messages(messages) => self.queued.extend(messages),
            Delivery::Detached(why) => self.detached = Some(why),
        }
    }

    /// The next durable update (skipping anything else).
    async fn next_update(&mut self) -> Bytes {
        loop {
            if let Outgoing::Update(u) = self.next().await {
                return u;
            }
        }
    }

    /// The next SyncStep2's update.
    async fn next_step2(&mut self) -> Bytes {
        loop {
            if let Outgoing::SyncStep2(u) = self.next().await {
                return u;
            }
        }
    }

    /// The next presence message.
    async fn next_awareness(&mut self) -> AwarenessUpdate {
        loop {
            if let Outgoing::Awareness(u) = self.next().await {
                return AwarenessUpdate::decode_v1(&u).expect("awareness decodes");
            }
        }
    }

    /// What is queued now, without waiting.
    fn drain(&mut self) -> Vec<Outgoing> {
        while let Some(delivery) = self.mailbox.try_recv() {
            self.take(delivery);
        }
        self.queued.drain(..).map(|m| m.body().clone()).collect()
    }

    /// Waits for the room to let this member go; returns why.
    async fn detached(&mut self) -> Detach {
        loop {
            if let Some(why) = self.detached {
                return why;
            }
            let delivery = tokio::time::timeout(WAIT, self.mailbox.recv())
                .await
                .expect("detached in time");
            self.take(delivery);
        }
    }

    fn no_message(&mut self) {
        assert_eq!(self.drain(), Vec::new(), "unexpected messages");
    }
}

async fn join(room: &RoomHandle, id: u64, queue: usize, can_write: bool) -> TestPeer {
    join_as(room, id, &format!("user{id}"), queue, can_write).await
}

/// Like [`join`], for a member of a given author (a person's second socket).
async fn join_as(
    room: &RoomHandle,
    id: u64,
    author: &str,
    queue: usize,
    can_write: bool,
) -> TestPeer {
    let (mailbox, reader) = mailbox(queue);
    let member = Member {
        id,
        author: Arc::from(author),
        can_write,
        mailbox,
        receives: Receives::default(),
    };
    room.join(member).await.expect("joins");
    TestPeer {
        id,
        mailbox: reader,
        queued: VecDeque::new(),
        detached: None,
    }
}

fn text_update(client: u64, text: &str) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    let t = doc.get_or_insert_text("t");
    t.insert(&mut doc.transact_mut(), 0, text);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    update
}

/// One client typing `first` then `second` into text "t": its document, the first update, and
/// the second alone (which depends on the first).
fn two_edits(client: u64, first: &str, second: &str) -> (Doc, Vec<u8>, Vec<u8>) {
    let doc = Doc::with_client_id(client);
    let text = doc.get_or_insert_text("t");
    text.insert(&mut doc.transact_mut(), 0, first);
    let sv = doc.transact().state_vector();
    let first_update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    let len = text.len(&doc.transact());
    text.insert(&mut doc.transact_mut(), len, second);
    let second_update = doc.transact().encode_state_as_update_v1(&sv);
    (doc, first_update, second_update)
}

fn inbound(frame: &[u8]) -> Vec<Inbound> {
    protocol::decode_frame(frame, &protocol::Decoding::writer(1 << 24)).expect("valid frame")
}

async fn send(room: &RoomHandle, peer: &TestPeer, frame: Vec<u8>) {
    room.send(RoomCmd::Inbound {
        member: peer.id,
        messages: inbound(&frame),
    })
    .await
    .expect("room alive");
}

fn stored_text(store: &dyn DocStore, doc: &str) -> String {
    let stored = store.load(doc).expect("loads").unwrap_or_default();
    let d = Doc::new();
    for u in stored.updates() {
        d.transact_mut()
            .apply_update(Update::decode_v1(u).expect("decodes"))
            .expect("applies");
    }
    let t = d.get_or_insert_text("t");
    let s = t.get_string(&d.transact());
    s
}

fn awareness_frame(client: u64, clock: u32, json: &str) -> Vec<u8> {
    use yrs::encoding::write::Write;
    let mut payload = Vec::new();
    payload.write_var(1u32);
    payload.write_var(client);
    payload.write_var(clock);
    payload.write_string(json);
    let mut frame = vec![protocol::MSG_AWARENESS];
    frame.write_buf(&payload);
    frame
}

fn awareness_of(u: &AwarenessUpdate) -> Vec<(u64, String)> {
    let mut v: Vec<_> = u
        .clients
        .iter()
        .map(|(id, e)| (id.get(), e.json.to_string()))
        .collect();
    v.sort();
    v
}

fn awareness_clocks(u: &AwarenessUpdate) -> Vec<u32> {
    u.clients.values().map(|e| e.clock).collect()
}

/// The text "t" of a document made of `update`.
fn text_of(update: &[u8]) -> String {
    let d = Doc::new();
    d.transact_mut()
        .apply_update(Update::decode_v1(update).expect("decodes"))
        .expect("applies");
    let t = d.get_or_insert_text("t");
    let s = t.get_string(&d.transact());
    s
}

fn is_awareness(m: &Outgoing) -> bool {
    matches!(m, Outgoing::Awareness(_))
}

// A joining socket first hears the server's SyncStep1, and a SyncStep1 it sends is answered
// with a SyncStep2 carrying exactly the document's content.
#[tokio::test]
async fn handshake_and_sync_step2() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let first = a.next().await;
    assert!(matches!(first, Outgoing::SyncStep1(_)), "SyncStep1 first");
    send(&room, &a, protocol::encode_update(&text_update(10, "hi"))).await;
    a.next_update().await;
    send(
        &room,
        &a,
        protocol::encode_sync_step1(&StateVector::default()),
    )
    .await;
    let step2 = a.next_step2().await;
    assert_eq!(text_of(&step2), "hi");
}

// An update reaches every socket, its author included, and by the time any socket sees it the
// store already holds it (persist before broadcast).
#[tokio::test]
async fn update_is_durable_before_anyone_sees_it() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let mut b = join(&room, 2, 64, true).await;
    send(
        &room,
        &a,
        protocol::encode_update(&text_update(10, "hello")),
    )
    .await;
    b.next_update().await;
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "hello");
    a.next_update().await; // the author's echo, its acknowledgement
}

async fn edit(
    room: &RoomHandle,
    author: &str,
    apply: EditFn,
) -> Result<serde_json::Value, EditError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    room.send(RoomCmd::Edit(Edit {
        author: Arc::from(author),
        apply,
        reply,
    }))
    .await
    .expect("alive");
    answer.await.expect("answered")
}

// A REST edit runs on the room's document: what it changes is appended under its author and
// broadcast like a client's update; a refused edit changes nothing; a panicking one is answered
// with an error and the document is rebuilt from what is durable.
#[tokio::test]
async fn rest_edits_are_persisted_broadcast_and_contained() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut watcher = join(&room, 1, 64, true).await;
    watcher.next().await;
    let answer = edit(
        &room,
        "ada",
        Box::new(|d: &Doc, _: &_| {
            let t = d.get_or_insert_text("t");
            t.insert(&mut d.transact_mut(), 0, "hello");
            Ok(serde_json::json!("made"))
        }),
    )
    .await;
    assert_eq!(answer.expect("made"), serde_json::json!("made"));
    watcher.next_update().await;
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "hello");
    let history = h.app.store.history("d", 0, 10).expect("history");
    assert_eq!(history.last().map(|e| e.author.as_str()), Some("ada"));

    let refused = edit(
        &room,
        "ada",
        Box::new(|_: &Doc, _: &_| Err(EditError::NotFound("no such thing".into()))),
    )
    .await;
    assert!(matches!(refused, Err(EditError::NotFound(_))));

    let panicked = edit(
        &room,
        "mallory",
        Box::new(|d: &Doc, _: &_| {
            let t = d.get_or_insert_text("t");
            t.insert(&mut d.transact_mut(), 0, "half ");
            panic!("an edit that fails half-way");
        }),
    )
    .await;
    assert!(matches!(panicked, Err(EditError::Failed)));
    tokio::time::sleep(Duration::from_millis(50)).await;
    watcher.no_message();
    let (tx, rx) = tokio::sync::oneshot::channel();
    room.send(RoomCmd::State(tx)).await.expect("alive");
    let state = rx.await.expect("state");
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(Update::decode_v1(&state).expect("decodes"))
        .expect("applies");
    let t = doc.get_or_insert_text("t");
    assert_eq!(t.get_string(&doc.transact()), "hello");
}

// A read-only socket's update is answered with the protocol's permission-denied message and
// is neither applied, stored nor broadcast.
#[tokio::test]
async fn read_only_update_refused() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut reader = join(&room, 1, 64, false).await;
    let mut writer = join(&room, 2, 64, true).await;
    reader.next().await;
    writer.next().await;
    send(
        &room,
        &reader,
        protocol::encode_update(&text_update(10, "x")),
    )
    .await;
    let denied = reader.next().await;
    assert_eq!(denied, Outgoing::PermissionDenied(tandem::room::READ_ONLY));
    tokio::time::sleep(Duration::from_millis(50)).await;
    writer.no_message();
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "");
}

// Presence set by one socket reaches the others; when it leaves, its state is removed for
// everyone. Another socket cannot overwrite or remove it meanwhile.
#[tokio::test]
async fn awareness_lifecycle_and_spoofing() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let mut b = join(&room, 2, 64, true).await;
    send(&room, &a, awareness_frame(77, 1, r#"{"user":"ada"}"#)).await;
    let seen = b.next_awareness().await;
    assert_eq!(
        awareness_of(&seen),
        vec![(77, r#"{"user":"ada"}"#.to_string())]
    );
    // b claims a's client ID, then tries to remove it: both dropped.
    send(&room, &b, awareness_frame(77, 5, r#"{"user":"mallory"}"#)).await;
    send(&room, &b, awareness_frame(77, 6, "null")).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !b.drain().iter().any(is_awareness),
        "spoofed awareness was broadcast"
    );
    room.send(RoomCmd::Leave { member: a.id })
        .await
        .expect("alive");
    let removal = b.next_awareness().await;
    assert_eq!(awareness_of(&removal), vec![(77, "null".to_string())]);
    // Nor can b take the ID once its owner has left, even with a newer clock: only its author
    // may bring it back.
    send(&room, &b, awareness_frame(77, 50, r#"{"user":"mallory"}"#)).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !b.drain().iter().any(is_awareness),
        "a departed client's ID was taken over"
    );
    // A newcomer gets no stale presence.
    let mut c = join(&room, 3, 64, true).await;
    c.next().await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.no_message();
    let _ = &mut a;
}

// A client that reconnects before its old socket is noticed dead speaks for its client ID from
// the new socket; a newer state from the same author takes the ID over at once (an echo never
// carries a clock newer than the room's), so peers see the presence updated, never removed, and
// the old socket's late close removes nothing.
#[tokio::test]
async fn awareness_survives_a_late_close_of_the_old_socket() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let old = join(&room, 1, 64, true).await;
    let mut watcher = join(&room, 2, 64, true).await;
    send(&room, &old, awareness_frame(77, 1, r#"{"user":"ada"}"#)).await;
    watcher.next_awareness().await;
    let mut new = join_as(&room, 3, "user1", 64, true).await;
    new.next().await;
    send(
        &room,
        &new,
        awareness_frame(77, 2, r#"{"user":"ada","back":true}"#),
    )
    .await;
    room.send(RoomCmd::Leave { member: old.id })
        .await
        .expect("alive");
    let handover = watcher.next_awareness().await;
    assert_eq!(
        awareness_of(&handover),
        vec![(77, r#"{"user":"ada","back":true}"#.to_string())]
    );
    // The new socket now owns the ID: its leaving removes the presence.
    room.send(RoomCmd::Leave { member: new.id })
        .await
        .expect("alive");
    let removal = watcher.next_awareness().await;
    assert_eq!(awareness_of(&removal), vec![(77, "null".to_string())]);
}

// When the old socket's close is seen first, the room removes the presence (bumping its clock);
// the reconnected client then announces itself with its old clock, which peers would ignore as
// stale. The room tells that socket alone of the removal; a y-protocols client never accepts the
// removal of its own live state, so it announces itself past that clock, and peers see it back.
// Clocks are never rewritten, so nothing the owner receives makes it re-send (the loop that shut
// stock clients out with 4429).
#[tokio::test]
async fn awareness_reappears_after_reconnect_with_an_old_clock() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let old = join(&room, 1, 64, true).await;
    let mut watcher = join(&room, 2, 64, true).await;
    send(&room, &old, awareness_frame(77, 5, r#"{"user":"ada"}"#)).await;
    watcher.next_awareness().await;
    room.send(RoomCmd::Leave { member: old.id })
        .await
        .expect("alive");
    let removal = watcher.next_awareness().await;
    let removal_clock = awareness_clocks(&removal)[0];
    let mut new = join_as(&room, 3, "user1", 64, true).await;
    new.next().await;
    send(&room, &new, awareness_frame(77, 5, r#"{"user":"ada"}"#)).await;
    let told = new.next_awareness().await;
    assert_eq!(awareness_of(&told), vec![(77, "null".to_string())]);
    assert_eq!(awareness_clocks(&told)[0], removal_clock);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !watcher.drain().iter().any(is_awareness),
        "a stale announcement was broadcast"
    );
    // What y-protocols does on hearing its own removal: bump past it and announce again.
    send(
        &room,
        &new,
        awareness_frame(77, removal_clock + 1, r#"{"user":"ada"}"#),
    )
    .await;
    let back = watcher.next_awareness().await;
    assert_eq!(
        awareness_of(&back),
        vec![(77, r#"{"user":"ada"}"#.to_string())]
    );
    assert_eq!(awareness_clocks(&back)[0], removal_clock + 1);
    // The owner hears its own clock back, unchanged: nothing for it to adopt and re-send.
    let echo = new.next_awareness().await;
    assert_eq!(awareness_clocks(&echo)[0], removal_clock + 1);
}

// Presence is coalesced: a burst of announcements reaches the others as a few frames holding
// the latest state, so what stock clients echo back is bounded by the room's broadcast rate, not
// by how fast anyone publishes.
#[tokio::test]
async fn presence_bursts_are_coalesced() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let flooder = join(&room, 1, 1024, true).await;
    let mut watcher = join(&room, 2, 1024, true).await;
    watcher.next().await;
    for clock in 1..=200u32 {
        send(
            &room,
            &flooder,
            awareness_frame(77, clock, &format!(r#"{{"n":{clock}}}"#)),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frames: Vec<AwarenessUpdate> = watcher
        .drain()
        .into_iter()
        .filter_map(|m| match m {
            Outgoing::Awareness(u) => AwarenessUpdate::decode_v1(&u).ok(),
            _ => None,
        })
        .collect();
    assert!(
        !frames.is_empty() && frames.len() <= 20,
        "{} presence frames",
        frames.len()
    );
    let last = frames.last().expect("a frame");
    assert_eq!(awareness_of(last), vec![(77, r#"{"n":200}"#.to_string())]);
}

// A socket that stops reading is closed as a slow consumer once its queue is full; the others
// keep receiving.
#[tokio::test]
async fn slow_consumer_is_closed_others_unaffected() {
    let h = harness_with(
        Limits {
            outbound_queue_len_max: 4,
            ..Limits::default()
        },
        memory(),
    );
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut slow = join(&room, 1, 4, true).await;
    let mut fast = join(&room, 2, 64, true).await;
    for i in 0..10u64 {
        send(
            &room,
            &fast,
            protocol::encode_update(&text_update(100 + i, "x")),
        )
        .await;
        fast.next_update().await;
    }
    assert_eq!(slow.detached().await, Detach::SlowConsumer);
    send(
        &room,
        &fast,
        protocol::encode_update(&text_update(999, "y")),
    )
    .await;
    fast.next_update().await;
}

// An update that would take the document past its size limit is refused: the sender is closed
// with 4413 and nothing of it is stored.
#[tokio::test]
async fn document_size_limit() {
    let h = harness_with(
        Limits {
            doc_size_max_bytes: 200,
            ..Limits::default()
        },
        memory(),
    );
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    send(&room, &a, protocol::encode_update(&text_update(1, "small"))).await;
    a.next_update().await;
    send(
        &room,
        &a,
        protocol::encode_update(&text_update(2, &"z".repeat(400))),
    )
    .await;
    assert_eq!(a.detached().await, Detach::DocumentTooLarge);
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "small");
}

// When the flush fails, nobody hears of the update (no echo, no broadcast), every socket of the
// room is closed with 1011 and the server reports itself unhealthy; once the store works again
// (the next flush, here the prober's) it reports itself healthy by itself, and a reopened room
// serves what is durable and takes edits again.
#[tokio::test]
async fn failed_flush_sends_no_acknowledgement() {
    let faulty = FaultyStore::new(MemStore::new(Default::default()));
    faulty.fail_flush_at(1);
    let h = harness_with(Limits::default(), Arc::new(faulty));
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let mut b = join(&room, 2, 64, true).await;
    a.next().await;
    b.next().await;
    send(&room, &a, protocol::encode_update(&text_update(1, "lost"))).await;
    assert_eq!(a.detached().await, Detach::StorageFailure);
    assert_eq!(b.detached().await, Detach::StorageFailure);
    a.no_message();
    b.no_message();
    assert!(h.app.health_problem().is_some());

    let started = std::time::Instant::now();
    while h.app.health_problem().is_some() {
        assert!(
            started.elapsed() < h.app.config.timing.store_probe_interval * 3,
            "still unhealthy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let room = h.app.rooms.open(&h.app, "d").await.expect("reopens");
    let mut c = join(&room, 3, 64, true).await;
    send(&room, &c, protocol::encode_update(&text_update(3, "kept"))).await;
    c.next_update().await;
    // "lost" was appended before the flush failed: whether it survives is the store's matter,
    // it was acknowledged to nobody.
    assert!(stored_text(h.app.store.as_ref(), "d").ends_with("kept"));
}

// A room with no sockets unloads after its grace period, and reopening it loads the document
// back from the store.
#[tokio::test]
async fn idle_room_unloads_and_reloads() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    send(&room, &a, protocol::encode_update(&text_update(1, "kept"))).await;
    a.next_update().await;
    room.send(RoomCmd::Leave { member: a.id })
        .await
        .expect("alive");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !h.app.rooms.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "room never unloaded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let room = h.app.rooms.open(&h.app, "d").await.expect("reopens");
    let mut b = join(&room, 2, 64, true).await;
    b.next().await;
    send(
        &room,
        &b,
        protocol::encode_sync_step1(&StateVector::default()),
    )
    .await;
    let step2 = b.next_step2().await;
    assert_eq!(text_of(&step2), "kept");
}

// Regressions from fuzzing (fuzz/corpus/apply_update/regression-*): updates that run ahead of
// their dependencies and, once kept pending inside yrs, make the document panic when encoded,
// encode to bytes that no longer decode, or read freed memory. The room never lets them in: the
// sender is asked to resync (our SyncStep1), nothing is stored, and the room keeps serving.
#[tokio::test]
async fn updates_ahead_of_their_dependencies_are_not_applied() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/apply_update");
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let mut b = join(&room, 2, 64, true).await;
    a.next().await;
    b.next().await;
    send(&room, &a, protocol::encode_update(&text_update(1, "kept"))).await;
    b.next_update().await;
    a.next_update().await;
    for (i, name) in [
        "regression-pending-unencodable",
        "regression-undecodable-state",
        "regression-use-after-free-gap",
    ]
    .into_iter()
    .enumerate()
    {
        let crafted = std::fs::read(format!("{dir}/{name}")).expect("regression input");
        let frame = protocol::encode_update(&crafted);
        let Ok(messages) = protocol::decode_frame(&frame, &protocol::Decoding::writer(1 << 20))
        else {
            continue; // refused while decoding (see crdt-model::requires): just as good
        };
        // A socket of its own for each: one socket is asked to resync once per document state.
        let mut c = join(&room, 10 + i as u64, 64, true).await;
        c.next().await;
        room.send(RoomCmd::Inbound {
            member: c.id,
            messages,
        })
        .await
        .expect("room alive");
        let answer = c.next().await;
        assert!(
            matches!(answer, Outgoing::SyncStep1(_)),
            "{name}: the sender is asked to resync"
        );
        send(
            &room,
            &b,
            protocol::encode_sync_step1(&StateVector::default()),
        )
        .await;
        b.next_step2().await;
    }
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "kept");
    let stored = h.app.store.load("d").expect("loads").expect("exists");
    assert_eq!(stored.tail.len(), 1, "nothing crafted was stored");
}

// An update whose blocks name as parent or origin a later clock of their own client (a fuzzing
// find that left the document undecodable once kept pending) is refused at decoding, before any
// room sees it.
#[test]
fn updates_depending_on_their_own_future_are_refused() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/apply_update");
    let crafted = std::fs::read(format!("{dir}/regression-self-parent")).expect("regression input");
    let refused = protocol::decode_frame(
        &protocol::encode_update(&crafted),
        &protocol::Decoding::writer(1 << 20),
    );
    assert!(
        matches!(refused, Err(protocol::DecodeError::Malformed { .. })),
        "{refused:?}"
    );
}

// A client that saw a third client's edit before we did (through a second provider such as
// y-webrtc) sends an edit whose origin we lack. It is not applied (yrs would keep it pending);
// the sender is asked to resync, and its SyncStep2 brings the missing edit with it.
#[tokio::test]
async fn edit_on_content_we_lack_is_recovered_by_resync() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    a.next().await;
    let peer = Doc::with_client_id(7);
    peer.get_or_insert_text("t")
        .insert(&mut peer.transact_mut(), 0, "seen elsewhere ");
    let doc = Doc::with_client_id(5);
    let seen = peer
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    doc.transact_mut()
        .apply_update(Update::decode_v1(&seen).expect("decodes"))
        .expect("applies");
    let sv = doc.transact().state_vector();
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 15, "then typed");
    let edit = doc.transact().encode_state_as_update_v1(&sv);

    send(&room, &a, protocol::encode_update(&edit)).await;
    let Outgoing::SyncStep1(server_sv) = a.next().await else {
        panic!("expected a resync request");
    };
    assert!(
        h.app.store.load("d").expect("loads").is_none(),
        "nothing stored"
    );
    let step2 = doc.transact().encode_state_as_update_v1(&server_sv);
    send(&room, &a, protocol::encode_sync_step2(&step2)).await;
    a.next_update().await;
    assert_eq!(
        stored_text(h.app.store.as_ref(), "d"),
        "seen elsewhere then typed"
    );
}

// A client whose own document holds content it cannot complete (Yjs keeps it pending, say after
// a second provider delivered it out of order) sends it in every SyncStep2. It is asked to
// resync once; the same incomplete update again, at the same document state, gets no new request
// (which would loop at network speed); once the document changed, it is asked again.
#[tokio::test]
async fn an_update_that_stays_incomplete_is_not_asked_for_in_a_loop() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let mut b = join(&room, 2, 64, true).await;
    a.next().await;
    b.next().await;
    let (_, _, incomplete) = two_edits(9, "never sent ", "depends on it");

    send(&room, &a, protocol::encode_update(&incomplete)).await;
    assert!(matches!(a.next().await, Outgoing::SyncStep1(_)));
    send(&room, &a, protocol::encode_sync_step2(&incomplete)).await;
    send(&room, &b, protocol::encode_update(&text_update(2, "other"))).await;
    // b's edit is the next thing a hears: no second request came before it.
    let next = a.next().await;
    assert!(
        matches!(next, Outgoing::Update(_)),
        "expected b's edit, got {next:?}"
    );
    send(&room, &a, protocol::encode_sync_step2(&incomplete)).await;
    assert!(matches!(a.next().await, Outgoing::SyncStep1(_)));
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "other");
}

// The backstop behind `has_gap`: two clients' blocks in one update that are each other's origin
// bring everything they need, yet yrs can integrate neither and keeps both pending. The update is
// refused (1007), the document rebuilt from the store, nothing stored, and the room keeps serving.
#[tokio::test]
async fn an_update_that_leaves_content_pending_anyway_is_refused() {
    let cycle = [
        0x02, 0x01, 0x01, 0x00, 0x84, 0x02, 0x00, 0x01, b'a', 0x01, 0x02, 0x00, 0x84, 0x01, 0x00,
        0x01, b'b', 0x00,
    ];
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let mut b = join(&room, 2, 64, true).await;
    a.next().await;
    b.next().await;
    // Client 3: the cycle's clients (1 and 2) must be new to the document.
    send(&room, &b, protocol::encode_update(&text_update(3, "kept"))).await;
    b.next_update().await;
    a.next_update().await;
    send(&room, &a, protocol::encode_update(&cycle)).await;
    assert_eq!(a.detached().await, Detach::InvalidUpdate);
    send(
        &room,
        &b,
        protocol::encode_sync_step1(&StateVector::default()),
    )
    .await;
    let step2 = b.next_step2().await;
    assert_eq!(text_of(&step2), "kept", "cycle applied");
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "kept");
    let stored = h.app.store.load("d").expect("loads").expect("exists");
    assert_eq!(stored.tail.len(), 1, "nothing of the cycle was stored");
}

// A stock client's edit that overtakes the SyncStep2 carrying its predecessors is not lost: the
// server asks for a resync, and the SyncStep2 that answers brings both.
#[tokio::test]
async fn overtaking_edit_is_recovered_by_resync() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    a.next().await;
    let (doc, _, overtaking) = two_edits(5, "offline ", "typed");
    send(&room, &a, protocol::encode_update(&overtaking)).await;
    let Outgoing::SyncStep1(server_sv) = a.next().await else {
        panic!("expected a resync request");
    };
    let step2 = doc.transact().encode_state_as_update_v1(&server_sv);
    send(&room, &a, protocol::encode_sync_step2(&step2)).await;
    a.next_update().await;
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "offline typed");
}

// When appending to the store fails, the update is acknowledged to nobody, the room's sockets
// are closed with 1011, the server reports itself unhealthy, and what was stored before is intact.
#[tokio::test]
async fn failed_append_sends_no_acknowledgement() {
    let faulty = FaultyStore::new(MemStore::new(Default::default()));
    faulty.fail_append_at(2);
    let h = harness_with(Limits::default(), Arc::new(faulty));
    let room = h.app.rooms.open(&h.app, "d").await.expect("opens");
    let mut a = join(&room, 1, 64, true).await;
    let mut b = join(&room, 2, 64, true).await;
    send(&room, &a, protocol::encode_update(&text_update(1, "first"))).await;
    b.next_update().await;
    a.next_update().await;
    send(
        &room,
        &a,
        protocol::encode_update(&text_update(2, "second")),
    )
    .await;
    assert_eq!(a.detached().await, Detach::StorageFailure);
    assert_eq!(b.detached().await, Detach::StorageFailure);
    a.no_message();
    b.no_message();
    assert!(h.app.health_problem().is_some());
    assert_eq!(stored_text(h.app.store.as_ref(), "d"), "first");
}

// A stored log replays even when an entry comes before its dependency (older versions stored
// updates with missing origins), as long as nothing is pending once the whole log is in; a log
// whose dependency never comes fails the load, naming why, instead of serving a poisoned document.
#[test]
fn stored_logs_may_be_out_of_order_but_not_incomplete() {
    use tandem_storage::{StoredDoc, UpdateRecord};
    let (_, first, second) = two_edits(3, "first ", "second");
    let log = |updates: &[&Vec<u8>]| StoredDoc {
        snapshot: None,
        snapshot_seq: 0,
        tail: updates
            .iter()
            .enumerate()
            .map(|(i, u)| UpdateRecord {
                seq: i as u64 + 1,
                author: "a".into(),
                time_ms: 0,
                update: (*u).clone(),
            })
            .collect(),
    };
    let (rebuilt, _) =
        tandem_crdt_model::doc::build(log(&[&second, &first]).updates()).expect("loads");
    let t = rebuilt.get_or_insert_text("t");
    assert_eq!(t.get_string(&rebuilt.transact()), "first second");
    let refused = tandem_crdt_model::doc::build(log(&[&second]).updates()).map(|_| ());
    assert!(
        matches!(&refused, Err(e) if e.contains("pending")),
        "{refused:?}"
    );
}
