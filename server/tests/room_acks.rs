//! Acknowledgements and stateless messages: what a room sends only to members that asked for
//! them (Hocuspocus members do; y-websocket members never do). Members are plain channels on the
//! memory store, as in `room.rs`; each test drives the room's command protocol and reads the
//! typed messages a connection would frame.

use std::sync::Arc;
use std::time::Duration;

use tandem::config::Config;
use tandem::room::{mailbox, Delivery, MailboxReader, Member, Outgoing, Receives, RoomCmd};
use tandem::rooms::RoomHandle;
use tandem::App;
use tandem_crdt_model::protocol::{self, Inbound};
use tandem_storage::memory::MemStore;
use tokio::sync::watch;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

const WAIT: Duration = Duration::from_secs(5);

struct Harness {
    app: Arc<App>,
    _shutdown: watch::Sender<bool>,
}

fn harness() -> Harness {
    let config = Config::new("127.0.0.1:0".parse().expect("addr"), "unused".into());
    let (tx, rx) = watch::channel(false);
    let store = Arc::new(MemStore::new(Default::default()));
    Harness {
        app: App::new(config, store, None, rx),
        _shutdown: tx,
    }
}

struct Peer {
    id: u64,
    mailbox: MailboxReader,
}

impl Peer {
    /// Everything the room sends this member until it has been quiet for 200 ms.
    async fn settle(&mut self) -> Vec<Outgoing> {
        let mut got = Vec::new();
        while let Ok(Delivery::Messages(messages)) =
            tokio::time::timeout(Duration::from_millis(200), self.mailbox.recv()).await
        {
            got.extend(messages.iter().map(|m| m.body().clone()));
        }
        got
    }

    /// The acks among what the room sent, in order.
    async fn acks(&mut self) -> Vec<bool> {
        self.settle()
            .await
            .into_iter()
            .filter_map(|m| match m {
                Outgoing::Ack { applied } => Some(applied),
                _ => None,
            })
            .collect()
    }
}

async fn join(
    room: &RoomHandle,
    id: u64,
    author: &str,
    can_write: bool,
    receives: Receives,
) -> Peer {
    let (mailbox, reader) = mailbox(256);
    let member = Member {
        id,
        author: Arc::from(author),
        can_write,
        mailbox,
        receives,
    };
    tokio::time::timeout(WAIT, room.join(member))
        .await
        .expect("joins in time")
        .expect("joins");
    Peer {
        id,
        mailbox: reader,
    }
}

const HOCUSPOCUS: Receives = Receives {
    acks: true,
    stateless: true,
};

async fn send(room: &RoomHandle, peer: &Peer, messages: Vec<Inbound>) {
    room.send(RoomCmd::Inbound {
        member: peer.id,
        messages,
    })
    .await
    .expect("room alive");
}

/// A reader's SyncStep2 that repeats all of `doc` (what a read-only client answers our
/// SyncStep1 with when it holds everything).
async fn send_whole_state(room: &RoomHandle, reader: &Peer, doc: &Doc) {
    let state = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    send(
        room,
        reader,
        decoded(&protocol::encode_sync_step2(&state), false),
    )
    .await;
}

/// The messages of a y-websocket frame, decoded for a writer or a reader.
fn decoded(frame: &[u8], may_write: bool) -> Vec<Inbound> {
    let decoding = protocol::Decoding {
        may_write,
        ..protocol::Decoding::writer(1 << 24)
    };
    protocol::decode_frame(frame, &decoding).expect("valid frame")
}

/// Client `client` types `text` after `base` (an update holding only the new text).
fn typed(client: u64, base: &Doc, text: &str) -> (Doc, Vec<u8>) {
    let doc = Doc::with_client_id(client);
    let state = base
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    doc.transact_mut()
        .apply_update(yrs::Update::decode_v1(&state).expect("decodes"))
        .expect("applies");
    let sv = doc.transact().state_vector();
    let t = doc.get_or_insert_text("t");
    let len = t.len(&doc.transact());
    t.insert(&mut doc.transact_mut(), len, text);
    let update = doc.transact().encode_state_as_update_v1(&sv);
    (doc, update)
}

use yrs::updates::decoder::Decode;

// Every update a member that asked for acks sends gets exactly one, after the update's echo
// (so after it is durable): applied for a new edit, for an empty update and for a resend of
// what the document holds; refused for an update that runs ahead of its dependencies (which
// is asked for again) and for one under another author's client ID.
#[tokio::test]
async fn every_update_of_a_member_that_asked_is_acked_once() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "acks").await.expect("opens");
    let mut ada = join(&room, 1, "ada", true, HOCUSPOCUS).await;
    ada.settle().await;

    let (doc1, first) = typed(10, &Doc::new(), "hello");
    send(&room, &ada, decoded(&protocol::encode_update(&first), true)).await;
    let got = ada.settle().await;
    let echo = got
        .iter()
        .position(|m| matches!(m, Outgoing::Update(_)))
        .expect("echo");
    let ack = got
        .iter()
        .position(|m| matches!(m, Outgoing::Ack { .. }))
        .expect("ack");
    assert!(echo < ack, "acked only once durable: {got:?}");
    assert_eq!(got[ack], Outgoing::Ack { applied: true });
    assert_eq!(got.len(), 2, "{got:?}");

    // Empty, and a resend: nothing to store, already saved.
    send(
        &room,
        &ada,
        decoded(&protocol::encode_sync_step2(&[0, 0]), true),
    )
    .await;
    send(&room, &ada, decoded(&protocol::encode_update(&first), true)).await;
    assert_eq!(ada.acks().await, vec![true, true]);

    // Ahead of its dependencies: not applied (refused), and the member is asked to resync.
    let (_, second) = typed(10, &doc1, " world");
    let (_, third) = typed(10, &typed(10, &doc1, " world").0, "!");
    send(&room, &ada, decoded(&protocol::encode_update(&third), true)).await;
    let got = ada.settle().await;
    assert!(got.contains(&Outgoing::Ack { applied: false }), "{got:?}");
    assert!(
        got.iter().any(|m| matches!(m, Outgoing::SyncStep1(_))),
        "{got:?}"
    );
    // The resync's SyncStep2 brings it, and is acknowledged as applied.
    let both = yrs::merge_updates_v1([second.as_slice(), third.as_slice()]).expect("merges");
    send(
        &room,
        &ada,
        decoded(&protocol::encode_sync_step2(&both), true),
    )
    .await;
    assert_eq!(ada.acks().await, vec![true]);

    // Another author writing under ada's client ID is refused.
    let mut bob = join(&room, 2, "bob", true, HOCUSPOCUS).await;
    bob.settle().await;
    let (_, forged) = typed(10, &doc1, "?");
    send(
        &room,
        &bob,
        decoded(&protocol::encode_update(&forged), true),
    )
    .await;
    assert_eq!(bob.acks().await, vec![false]);
}

// A reader's edit is refused with an ack of 0; its SyncStep2 that repeats the document
// changes nothing and is acknowledged as saved, as Hocuspocus does for read-only connections.
#[tokio::test]
async fn a_readers_edits_are_refused_and_its_repeats_acknowledged() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "readonly").await.expect("opens");
    let mut writer = join(&room, 1, "ada", true, HOCUSPOCUS).await;
    let mut reader = join(&room, 2, "bob", false, HOCUSPOCUS).await;
    writer.settle().await;
    reader.settle().await;
    let (doc, update) = typed(10, &Doc::new(), "hello");
    send(
        &room,
        &writer,
        decoded(&protocol::encode_update(&update), true),
    )
    .await;
    assert_eq!(writer.acks().await, vec![true]);
    reader.settle().await;

    let (_, edit) = typed(20, &doc, "!");
    send(
        &room,
        &reader,
        decoded(&protocol::encode_update(&edit), false),
    )
    .await;
    send_whole_state(&room, &reader, &doc).await;
    let got = reader.settle().await;
    let acks: Vec<_> = got
        .iter()
        .filter(|m| matches!(m, Outgoing::Ack { .. }))
        .collect();
    assert_eq!(
        acks,
        [
            &Outgoing::Ack { applied: false },
            &Outgoing::Ack { applied: true }
        ]
    );
    assert!(
        writer.settle().await.is_empty(),
        "nothing of the reader's edit went out"
    );
}

// The room keeps its delete set current rather than walking the document for each reader's
// frame: a reader's deletion is an edit (refused) until a writer makes the same deletion, and
// known (acknowledged, nothing sent) after it.
#[tokio::test]
async fn a_readers_deletion_is_known_once_a_writer_made_it() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "deletions").await.expect("opens");
    let mut writer = join(&room, 1, "ada", true, HOCUSPOCUS).await;
    let mut reader = join(&room, 2, "bob", false, HOCUSPOCUS).await;
    let (doc, update) = typed(10, &Doc::new(), "hello");
    let as_update = |u: &[u8], may_write| decoded(&protocol::encode_update(u), may_write);
    send(&room, &writer, as_update(&update, true)).await;
    assert_eq!(writer.acks().await, vec![true]);
    reader.settle().await;
    // "he" deleted, as an update from a copy of the document.
    let deletion = {
        let before = doc.transact().state_vector();
        doc.get_or_insert_text("t")
            .remove_range(&mut doc.transact_mut(), 0, 2);
        doc.transact().encode_state_as_update_v1(&before)
    };
    send(&room, &reader, as_update(&deletion, false)).await;
    assert_eq!(
        reader.acks().await,
        vec![false],
        "a new deletion is an edit"
    );
    send(&room, &writer, as_update(&deletion, true)).await;
    assert_eq!(writer.acks().await, vec![true]);
    reader.settle().await;
    send(&room, &reader, as_update(&deletion, false)).await;
    let got = reader.settle().await;
    assert_eq!(
        got,
        vec![Outgoing::Ack { applied: true }],
        "known now: {got:?}"
    );
    // A writer's later deletion of the rest is tracked too.
    let rest = {
        let before = doc.transact().state_vector();
        doc.get_or_insert_text("t")
            .remove_range(&mut doc.transact_mut(), 0, 3);
        doc.transact().encode_state_as_update_v1(&before)
    };
    send(&room, &writer, as_update(&rest, true)).await;
    assert_eq!(writer.acks().await, vec![true]);
    reader.settle().await;
    send_whole_state(&room, &reader, &doc).await;
    assert_eq!(reader.acks().await, vec![true], "the whole state is known");
}

// A member that did not ask (a y-websocket member) never gets acks or stateless messages;
// stateless messages go to every other member that takes them, never back to their sender.
#[tokio::test]
async fn acks_and_stateless_only_to_members_that_asked() {
    let h = harness();
    let room = h.app.rooms.open(&h.app, "stateless").await.expect("opens");
    let mut plain = join(&room, 1, "ada", true, Receives::default()).await;
    let mut hp1 = join(&room, 2, "bob", true, HOCUSPOCUS).await;
    let mut hp2 = join(&room, 3, "cy", false, HOCUSPOCUS).await;
    for peer in [&mut plain, &mut hp1, &mut hp2] {
        peer.settle().await;
    }
    let (_, update) = typed(10, &Doc::new(), "x");
    send(
        &room,
        &plain,
        decoded(&protocol::encode_update(&update), true),
    )
    .await;
    send(
        &room,
        &hp2,
        vec![Inbound::Stateless("comments changed".into())],
    )
    .await;

    let got = plain.settle().await;
    assert!(
        got.iter()
            .all(|m| !matches!(m, Outgoing::Ack { .. } | Outgoing::Stateless(_))),
        "{got:?}"
    );
    assert!(
        got.iter().any(|m| matches!(m, Outgoing::Update(_))),
        "{got:?}"
    );
    let got = hp1.settle().await;
    assert!(
        got.contains(&Outgoing::Stateless("comments changed".into())),
        "{got:?}"
    );
    assert!(
        !got.iter().any(|m| matches!(m, Outgoing::Ack { .. })),
        "{got:?}"
    );
    let got = hp2.settle().await;
    assert!(
        !got.iter().any(|m| matches!(m, Outgoing::Stateless(_))),
        "{got:?}"
    );
}

// A stateless message of `stateless_max_bytes` is relayed; one byte more is dropped (and
// counted), and the sender's later messages still go through.
#[tokio::test]
async fn stateless_messages_past_their_bound_are_not_relayed() {
    const MAX: usize = 32;
    let mut config = Config::new("127.0.0.1:0".parse().expect("addr"), "unused".into());
    config.limits.stateless_max_bytes = MAX;
    let (_shutdown, rx) = watch::channel(false);
    let app = App::new(
        config,
        Arc::new(MemStore::new(Default::default())),
        None,
        rx,
    );
    let room = app
        .rooms
        .open(&app, "stateless-bound")
        .await
        .expect("opens");
    let sender = join(&room, 1, "ada", true, HOCUSPOCUS).await;
    let mut other = join(&room, 2, "bob", true, HOCUSPOCUS).await;
    other.settle().await;
    let (fits, over) = ("a".repeat(MAX), "b".repeat(MAX + 1));
    for payload in [&fits, &over, &fits] {
        send(&room, &sender, vec![Inbound::Stateless(payload.clone())]).await;
    }
    let relayed: Vec<_> = other
        .settle()
        .await
        .into_iter()
        .filter(|m| matches!(m, Outgoing::Stateless(_)))
        .collect();
    let expected = Outgoing::Stateless(fits.as_str().into());
    assert_eq!(relayed, vec![expected.clone(), expected]);
    assert_eq!(
        app.metrics
            .stateless_dropped
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}
