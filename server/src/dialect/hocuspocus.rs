//! The Hocuspocus dialect: every frame starts with the address of one document
//! (`tandem_crdt_model::hocuspocus`), a socket holds many documents, each member is one of
//! them, and the room's reasons to let a member go end that document (a CLOSE message) or, when
//! only a reconnect repairs them, the socket.
//!
//! Sync and awareness frames are the y-websocket frame with the address in front, so they reuse
//! that dialect's cached encoding; a frame whose address is the plain document name is the same
//! for every member of the document and is cached in this dialect's slot. A session address
//! (`name + "\0" + session`) is one member's own, so its frame is made per member: one copy of
//! the shared y-protocols bytes behind the address.

use bytes::Bytes;
use tandem_crdt_model::hocuspocus::{self, Address};

use super::y_websocket;
use crate::close_code::CloseCode;
use crate::room::{Detach, Message, Outgoing};

/// This dialect's frame slot in a [`Message`].
const SLOT: usize = 1;

/// The frame of a room message for the member at `address`; `None` for what this dialect does
/// not carry: a refused edit's PermissionDenied (the refused ack says it, and an Auth
/// PermissionDenied would make the provider think the document lost its authentication).
pub fn frame(message: &Message, address: &Address) -> Option<Bytes> {
    if matches!(message.body(), Outgoing::PermissionDenied(_)) {
        return None;
    }
    Some(if address.is_plain() {
        message.frame(SLOT, |_| encode(message, address.as_str()))
    } else {
        encode(message, address.as_str())
    })
}

fn encode(message: &Message, address: &str) -> Bytes {
    Bytes::from(match message.body() {
        Outgoing::SyncStep1(_)
        | Outgoing::SyncStep2(_)
        | Outgoing::Update(_)
        | Outgoing::Awareness(_) => {
            hocuspocus::encode_addressed(address, &y_websocket::y_protocols_frame(message))
        }
        // Never framed: `frame` leaves it out.
        Outgoing::PermissionDenied(_) => Vec::new(),
        Outgoing::Ack { applied } => hocuspocus::encode_sync_status(address, *applied),
        Outgoing::Stateless(payload) => hocuspocus::encode_stateless(address, payload),
        Outgoing::Reannounce => hocuspocus::encode_query_awareness(address),
    })
}

/// What ends when the room lets a member go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// That document only: a CLOSE message to its address, the socket carries on. For what a
    /// reconnect would not repair (the document is gone or refuses this client's update).
    Document(CloseCode),
    /// The whole socket, with this code. For what a reconnect repairs: the stock provider
    /// reconnects a closed socket and syncs every document by state vector, while it never
    /// reopens a document the server CLOSEd on a live socket.
    Socket(CloseCode),
}

pub fn ending(why: Detach) -> Ending {
    match why {
        Detach::SlowConsumer => Ending::Socket(CloseCode::SlowConsumer),
        Detach::Restart => Ending::Socket(CloseCode::Restart),
        Detach::StorageFailure => Ending::Socket(CloseCode::InternalError),
        Detach::Deleted => Ending::Document(CloseCode::DocumentDeleted),
        Detach::DocumentTooLarge => Ending::Document(CloseCode::DocumentTooLarge),
        Detach::InvalidUpdate => Ending::Document(CloseCode::InvalidPayload),
    }
}

/// The reason a CLOSE message carries: the close code the y-websocket dialect would have closed
/// the socket with, then its meaning (`4401 token expired`). The provider reports it as the
/// `reason` of its `close` event (whose `code` it always sets to 1000).
pub fn close_reason(code: CloseCode) -> String {
    format!("{} {}", code.code(), code.reason())
}

/// A CLOSE message for `address` with `code`.
pub fn close_frame(address: &str, code: CloseCode) -> Bytes {
    Bytes::from(hocuspocus::encode_close(address, &close_reason(code)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_crdt_model::hocuspocus::{read_frame, Frame};
    use tandem_crdt_model::protocol;
    use yrs::StateVector;

    fn addressed(frame: &[u8]) -> (String, u64, Vec<u8>) {
        match read_frame(frame, 1 << 20).expect("readable") {
            Frame::Addressed {
                address,
                message_type,
                body,
            } => (address.as_str().to_string(), message_type, body.to_vec()),
            other => panic!("{other:?}"),
        }
    }

    // Each message is the y-protocols frame behind the member's exact address; acks and
    // stateless messages are Hocuspocus' own; a refused edit's PermissionDenied is not sent.
    #[test]
    fn frames_carry_the_address_and_the_shared_body() {
        let plain = Address::plain("notes/1");
        let session = Address::parse("notes/1\0abc").expect("address");
        let update = Message::new(Outgoing::Update(Bytes::from_static(&[0, 0])));
        for address in [&plain, &session] {
            let (got, kind, body) = addressed(&frame(&update, address).expect("carried"));
            assert_eq!(got, address.as_str());
            assert_eq!(kind, 0);
            assert_eq!(body, protocol::encode_update(&[0, 0])[1..]);
        }
        let step1 = Message::new(Outgoing::SyncStep1(StateVector::default()));
        let (_, kind, body) = addressed(&frame(&step1, &session).expect("carried"));
        assert_eq!((kind, body), (0, vec![0, 1, 0]));
        let ack = Message::new(Outgoing::Ack { applied: false });
        let (_, kind, body) = addressed(&frame(&ack, &plain).expect("carried"));
        assert_eq!((kind, body), (8, vec![0]));
        let stateless = Message::new(Outgoing::Stateless("hi".into()));
        let (_, kind, body) = addressed(&frame(&stateless, &plain).expect("carried"));
        assert_eq!((kind, body), (5, vec![2, b'h', b'i']));
        let reannounce = Message::new(Outgoing::Reannounce);
        let (_, kind, body) = addressed(&frame(&reannounce, &plain).expect("carried"));
        assert_eq!((kind, body), (3, vec![]));
        assert_eq!(
            frame(&Message::new(Outgoing::PermissionDenied("no")), &plain),
            None
        );
    }

    // The plain address's frame is made once for every member; a session's is its own.
    #[test]
    fn plain_frames_are_shared_session_frames_are_not() {
        let update = Message::new(Outgoing::Update(Bytes::from_static(&[0, 0])));
        let a = frame(&update, &Address::plain("d")).expect("carried");
        let b = frame(&update, &Address::plain("d")).expect("carried");
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "one encoding for every plain member"
        );
        let s = frame(&update, &Address::parse("d\0s").expect("address")).expect("carried");
        assert_ne!(s, a);
    }

    #[test]
    fn close_reasons_name_their_code() {
        assert_eq!(close_reason(CloseCode::TokenExpired), "4401 token expired");
        assert_eq!(
            ending(Detach::Deleted),
            Ending::Document(CloseCode::DocumentDeleted)
        );
        assert_eq!(ending(Detach::Restart), Ending::Socket(CloseCode::Restart));
    }
}
