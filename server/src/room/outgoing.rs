//! What a room sends its members, in no dialect: typed messages and reasons to detach. The
//! connection of each member turns them into its wire's frames and close codes.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
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

/// Messages produced while handling a batch, delivered only once the batch is durable.
#[derive(Default)]
pub(super) struct Outbox(pub(super) Vec<(Dest, Message)>);

impl Outbox {
    pub(super) fn to(&mut self, member: MemberId, body: Outgoing) {
        self.0.push((Dest::One(member), Message::new(body)));
    }

    pub(super) fn all(&mut self, body: Outgoing) {
        self.0.push((Dest::All, Message::new(body)));
    }

    pub(super) fn stateless_peers(&mut self, from: MemberId, payload: Arc<str>) {
        let body = Outgoing::Stateless(payload);
        self.0
            .push((Dest::StatelessPeers { from }, Message::new(body)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
