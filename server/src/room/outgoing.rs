//! What a room sends its members, in no dialect: typed messages and reasons to detach. The
//! connection of each member turns them into its wire's frames and close codes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tandem_crdt_model::doc::merge_updates;
use yrs::StateVector;

use super::MemberId;

/// One message for a member.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// Our state vector: "send me what I lack" (on joining, and to ask for a resync).
    SyncStep1(StateVector),
    /// What the member lacks, answering its state vector (a Yjs v1 update).
    SyncStep2(Bytes),
    /// A durable update, to every member (its author included: the echo is the acknowledgement).
    Update(Bytes),
    /// Presence states (an encoded awareness update).
    Awareness(Bytes),
    /// "Announce your presence again", after the room told the member its own presence was
    /// removed (it reconnected with the clock its old socket left behind). y-websocket clients
    /// answer the removal by themselves; a Hocuspocus provider bumps its clock but only sends
    /// it when asked, so its dialect asks (QueryAwareness).
    Reannounce,
    /// An edit was refused, with why; nothing of it was applied.
    PermissionDenied(&'static str),
    /// The fate of one update or SyncStep2 of this member, to members that asked for acks
    /// ([`Receives::acks`](super::Receives)): `applied` once it is durable (or was already in
    /// the document), else refused. Sent after the batch is durable, like everything else.
    Ack { applied: bool },
    /// An application message from another member, to members that take them
    /// ([`Receives::stateless`](super::Receives)). Never stored.
    Stateless(Arc<str>),
}

/// How many dialects can cache a frame of a message.
pub const DIALECTS: usize = 2;

/// A message shared by every member it goes to, with each dialect's frame encoded at most once:
/// a broadcast to a thousand sockets costs one encoding per dialect, not one per socket.
#[derive(Debug, Clone)]
pub struct Message(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    body: Outgoing,
    frames: [OnceLock<Bytes>; DIALECTS],
}

impl Message {
    pub fn new(body: Outgoing) -> Self {
        Message(Arc::new(Shared {
            body,
            frames: Default::default(),
        }))
    }

    pub fn body(&self) -> &Outgoing {
        &self.0.body
    }

    /// The frame of dialect `slot` (below [`DIALECTS`]), made by `encode` the first time any
    /// member of that dialect asks.
    pub fn frame(&self, slot: usize, encode: impl FnOnce(&Outgoing) -> Bytes) -> Bytes {
        match self.0.frames.get(slot) {
            Some(cell) => cell.get_or_init(|| encode(&self.0.body)).clone(),
            None => encode(&self.0.body),
        }
    }
}

/// Why a room lets a member go. The member's connection says so in its dialect (a close code
/// for y-websocket, where a socket holds one document).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detach {
    /// Its queue filled: it reads slower than the room writes. It resyncs when it comes back.
    SlowConsumer,
    /// The document was deleted.
    Deleted,
    /// The server is shutting down.
    Restart,
    /// Storage failed; nothing unacknowledged was kept.
    StorageFailure,
    /// Its update would take the document past `doc_size_max_bytes`.
    DocumentTooLarge,
    /// Its update does not integrate into the document.
    InvalidUpdate,
}

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dest {
    One(MemberId),
    All,
    /// Every member that takes stateless messages, but the one it came from.
    StatelessPeers {
        from: MemberId,
    },
}

/// Updates above this size are broadcast alone: merging saves a frame's overhead, which is
/// nothing next to them, and costs a decode and an encode.
const MERGE_UPDATE_MAX_BYTES: usize = 16 * 1024;

/// A merged update is closed once its parts reach this size, so one broadcast frame stays small
/// next to a socket's send buffer.
const MERGED_MAX_BYTES: usize = 64 * 1024;

/// Messages produced while handling a batch, delivered only once the batch is durable.
///
/// Consecutive updates to every member (a burst of keystrokes that one group commit made
/// durable) go out as one merged update: one message, encoded once per dialect and shared by
/// every member, instead of one per keystroke. Only updates next to each other in the outbox
/// are merged, so every member still receives everything in the order the room produced it,
/// and each update exactly once; its author's copy is its acknowledgement.
#[derive(Default)]
pub(super) struct Outbox {
    messages: Vec<(Dest, Message)>,
    /// Updates for every member, not yet in `messages`, and their total size.
    run: Vec<Bytes>,
    run_bytes: usize,
    /// Acknowledgements (Hocuspocus' SyncStatus), delivered after everything else: one per
    /// update would otherwise cut every run, and a Hocuspocus writer's burst would not merge.
    /// Everything goes out after the batch is durable anyway, so an ack is never early.
    acks: Vec<(Dest, Message)>,
}

impl Outbox {
    pub(super) fn to(&mut self, member: MemberId, body: Outgoing) {
        if matches!(body, Outgoing::Ack { .. }) {
            self.acks.push((Dest::One(member), Message::new(body)));
            return;
        }
        self.close_run();
        self.messages.push((Dest::One(member), Message::new(body)));
    }

    pub(super) fn all(&mut self, body: Outgoing) {
        self.close_run();
        self.messages.push((Dest::All, Message::new(body)));
    }

    /// A durable update for every member (merged with the updates next to it).
    pub(super) fn update(&mut self, update: Bytes) {
        if update.len() > MERGE_UPDATE_MAX_BYTES {
            self.all(Outgoing::Update(update));
            return;
        }
        if self.run_bytes + update.len() > MERGED_MAX_BYTES {
            self.close_run();
        }
        self.run_bytes += update.len();
        self.run.push(update);
    }

    /// The messages, in order, ready to deliver.
    pub(super) fn into_messages(mut self) -> Vec<(Dest, Message)> {
        self.close_run();
        self.messages.append(&mut self.acks);
        self.messages
    }

    fn close_run(&mut self) {
        self.run_bytes = 0;
        let merged = match self.run.len() {
            0 => return,
            1 => self.run.pop(),
            _ => merge_updates(&self.run).map(Bytes::from),
        };
        let updates = match merged {
            Some(one) => vec![one],
            // Every part applied to the document, so they merge; if yrs says otherwise, they go
            // out one by one, as before merging.
            None => std::mem::take(&mut self.run),
        };
        self.run.clear();
        for update in updates {
            self.messages
                .push((Dest::All, Message::new(Outgoing::Update(update))));
        }
    }

    pub(super) fn stateless_peers(&mut self, from: MemberId, payload: Arc<str>) {
        self.close_run();
        let body = Outgoing::Stateless(payload);
        self.messages
            .push((Dest::StatelessPeers { from }, Message::new(body)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, Text, Transact};

    fn keystrokes(n: u32) -> Vec<Bytes> {
        let doc = yrs::Doc::with_client_id(7);
        let text = doc.get_or_insert_text("t");
        (0..n)
            .map(|i| {
                let mut txn = doc.transact_mut();
                text.insert(&mut txn, i, "x");
                Bytes::from(txn.encode_update_v1())
            })
            .collect()
    }

    fn text_of(updates: &[&Bytes]) -> String {
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("t");
        let mut txn = doc.transact_mut();
        for u in updates {
            txn.apply_update(yrs::Update::decode_v1(u).expect("decodes"))
                .expect("applies");
        }
        text.get_string(&txn)
    }

    fn updates(messages: &[(Dest, Message)]) -> Vec<&Bytes> {
        messages
            .iter()
            .filter_map(|(_, m)| match m.body() {
                Outgoing::Update(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_burst_goes_out_as_one_update_with_every_keystroke() {
        let mut out = Outbox::default();
        for u in keystrokes(100) {
            out.update(u);
        }
        let messages = out.into_messages();
        assert_eq!(messages.len(), 1);
        assert_eq!(text_of(&updates(&messages)), "x".repeat(100));
    }

    #[test]
    fn only_neighbours_merge_so_the_order_is_kept() {
        let strokes = keystrokes(4);
        let mut out = Outbox::default();
        out.update(strokes[0].clone());
        out.update(strokes[1].clone());
        out.to(1, Outgoing::PermissionDenied("no"));
        out.update(strokes[2].clone());
        out.all(Outgoing::Awareness(Bytes::from_static(b"a")));
        out.update(strokes[3].clone());
        let messages = out.into_messages();
        let kinds: Vec<&str> = messages
            .iter()
            .map(|(_, m)| match m.body() {
                Outgoing::Update(_) => "update",
                Outgoing::PermissionDenied(_) => "denied",
                Outgoing::Awareness(_) => "awareness",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["update", "denied", "update", "awareness", "update"]);
        // The single updates go out untouched (an author recognises its own echo).
        assert_eq!(updates(&messages)[1], &strokes[2]);
        assert_eq!(text_of(&updates(&messages)), "xxxx");
    }

    #[test]
    fn large_updates_go_alone_and_merges_are_bounded() {
        let big = Bytes::from(vec![0u8; MERGE_UPDATE_MAX_BYTES + 1]);
        let mut out = Outbox::default();
        out.update(big.clone());
        assert_eq!(out.into_messages().len(), 1);
        let strokes = keystrokes(2);
        let per = strokes[1].len();
        let mut out = Outbox::default();
        let n = MERGED_MAX_BYTES / per + 1;
        for _ in 0..n {
            out.update(strokes[0].clone());
        }
        assert_eq!(out.into_messages().len(), 2);
    }

    #[test]
    fn a_frame_is_encoded_once_per_dialect() {
        let message = Message::new(Outgoing::Update(Bytes::from_static(b"u")));
        let copies: Vec<Message> = (0..100).map(|_| message.clone()).collect();
        let mut encodings = [0; DIALECTS];
        for copy in &copies {
            for (slot, count) in encodings.iter_mut().enumerate() {
                let frame = copy.frame(slot, |_| {
                    *count += 1;
                    Bytes::from(vec![u8::try_from(slot).unwrap_or(0)])
                });
                assert_eq!(frame[0], u8::try_from(slot).unwrap_or(0));
            }
        }
        assert_eq!(encodings, [1; DIALECTS]);
    }
}
