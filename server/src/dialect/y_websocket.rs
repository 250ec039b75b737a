//! The y-websocket dialect: every frame is one y-protocols message (`varUint(type)` + payload),
//! a socket holds one document, and the room's reasons to let a member go become close codes.
//!
//! Stock `y-websocket` 3.x clients decode only the first message of a frame, so every message
//! is its own frame.

use bytes::Bytes;
use tandem_crdt_model::protocol;

use crate::close_code::CloseCode;
use crate::room::{Detach, Message, Outgoing};

/// This dialect's frame slot in a [`Message`].
const SLOT: usize = 0;

/// The frame of a room message, encoded once for every y-websocket member it goes to; `None`
/// for what this dialect does not carry (acks and stateless messages, which the room sends only
/// to members that asked for them, and y-websocket members never do; a request to reannounce
/// presence, which y-websocket clients do by themselves on seeing their removal).
pub fn frame(message: &Message) -> Option<Bytes> {
    carries(message.body()).then(|| message.frame(SLOT, encode))
}

fn carries(body: &Outgoing) -> bool {
    !matches!(
        body,
        Outgoing::Ack { .. } | Outgoing::Stateless(_) | Outgoing::Reannounce
    )
}

/// A y-protocols message, as this dialect frames it and as the Hocuspocus dialect wraps it in
/// an address; the empty frame for what y-websocket does not carry.
pub(crate) fn encode(body: &Outgoing) -> Bytes {
    Bytes::from(match body {
        Outgoing::SyncStep1(sv) => protocol::encode_sync_step1(sv),
        Outgoing::SyncStep2(update) => protocol::encode_sync_step2(update),
        Outgoing::Update(update) => protocol::encode_update(update),
        Outgoing::Awareness(update) => protocol::encode_awareness_bytes(update),
        Outgoing::PermissionDenied(reason) => protocol::encode_permission_denied(reason),
        Outgoing::Ack { .. } | Outgoing::Stateless(_) | Outgoing::Reannounce => Vec::new(),
    })
}

/// The y-protocols frame of a sync or awareness message, cached in this dialect's slot: the
/// Hocuspocus dialect prefixes it with an address, so members of both dialects (and every
/// session address) share one encoding.
pub(crate) fn y_protocols_frame(message: &Message) -> Bytes {
    message.frame(SLOT, encode)
}

/// How a socket is closed when the room lets its member go.
pub fn close_code(why: Detach) -> CloseCode {
    match why {
        Detach::SlowConsumer => CloseCode::SlowConsumer,
        Detach::Deleted => CloseCode::DocumentDeleted,
        Detach::Restart => CloseCode::Restart,
        Detach::StorageFailure => CloseCode::InternalError,
        Detach::DocumentTooLarge => CloseCode::DocumentTooLarge,
        Detach::InvalidUpdate => CloseCode::InvalidPayload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_crdt_model::protocol::{Decoding, Inbound};
    use yrs::StateVector;

    #[test]
    fn frames_decode_to_what_the_room_sent() {
        let update = Bytes::from_static(&[0, 0]);
        for body in [
            Outgoing::SyncStep1(StateVector::default()),
            Outgoing::SyncStep2(update.clone()),
            Outgoing::Update(update),
        ] {
            let frame = frame(&Message::new(body.clone())).expect("carried");
            let decoded = protocol::decode_frame(&frame, &Decoding::writer(1 << 20))
                .expect("decodes")
                .pop();
            match (body, decoded) {
                (Outgoing::SyncStep1(sv), Some(Inbound::SyncStep1(got))) => assert_eq!(sv, got),
                (Outgoing::SyncStep2(u) | Outgoing::Update(u), Some(Inbound::Update(got))) => {
                    assert_eq!(&u[..], &got.bytes[..]);
                }
                (body, got) => panic!("{body:?} came back as {got:?}"),
            }
        }
        let denied = frame(&Message::new(Outgoing::PermissionDenied("no"))).expect("carried");
        assert_eq!(&denied[..], &protocol::encode_permission_denied("no")[..]);
        for body in [
            Outgoing::Ack { applied: true },
            Outgoing::Stateless("s".into()),
        ] {
            assert_eq!(frame(&Message::new(body)), None);
        }
    }
}
