//! The documents of one Hocuspocus socket, by address, and the bounds on what the socket may
//! hold before they are authenticated.
//!
//! A document is waiting for its token (frames came first), opening (its token was accepted
//! and its room is loading) or attached (a member of its room). Frames of a document that is
//! not attached are held, raw and undecoded (a peer's rights decide how its updates are
//! decoded), until it attaches; what all waiting documents of a socket hold is bounded in
//! documents, bytes and frames ([`Bounds`]). The frame that would pass a bound refuses its own
//! document, whose held frames go with it; the socket's other documents carry on.

use std::collections::HashMap;

use bytes::Bytes;
use tandem_crdt_model::hocuspocus::Address;
use tandem_crdt_model::protocol::Decoding;
use tokio::time::{Duration, Instant};

use crate::connection::Identity;
use crate::metrics::Attachment;
use crate::room::MemberId;
use crate::rooms::RoomHandle;

/// What one socket may hold (from [`crate::config::Limits`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Bounds {
    pub docs: usize,
    pub pending_docs: usize,
    pub held_bytes: usize,
    pub held_frames: usize,
}

/// Why a document was refused before it attached: the PermissionDenied reason it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    TooManyDocuments,
    PendingDocuments,
    HeldBytes,
    HeldFrames,
}

impl Refusal {
    pub(super) fn reason(self) -> &'static str {
        match self {
            Refusal::TooManyDocuments => "too_many_documents",
            Refusal::PendingDocuments => "preauth_documents_limit",
            Refusal::HeldBytes => "preauth_bytes_limit",
            Refusal::HeldFrames => "preauth_messages_limit",
        }
    }
}

/// A frame held for a document that is not attached yet.
pub(super) struct Held {
    pub message_type: u64,
    pub frame: Bytes,
    /// Where the body starts in `frame`.
    pub body_at: usize,
}

/// A document attached to its room.
pub(super) struct Attached {
    pub member: MemberId,
    pub room: RoomHandle,
    /// How its frames are decoded (a reader's updates are only measured).
    pub decoding: Decoding,
    /// When its token expires: the document is closed then.
    pub expires_at: Option<Instant>,
    /// Counted in the attachments metric while it lives.
    pub _attachment: Attachment,
    /// Its person on the document's "who is online" list.
    pub _online: crate::people::online::OnlineSlot,
}

pub(super) enum State {
    /// Frames came before its token.
    AwaitingToken {
        since: Instant,
    },
    /// Its token was accepted for `identity`; its room is loading.
    Opening {
        identity: Identity,
    },
    Attached(Attached),
}

pub(super) struct Entry {
    pub address: Address,
    pub state: State,
    held: Vec<Held>,
}

#[derive(Default)]
pub(super) struct Documents {
    by_address: HashMap<String, Entry>,
    by_member: HashMap<MemberId, String>,
    pending: usize,
    held_bytes: usize,
    held_frames: usize,
}

impl Documents {
    pub(super) fn get(&self, address: &str) -> Option<&Entry> {
        self.by_address.get(address)
    }

    /// The entry of an attached member.
    pub(super) fn of_member(&self, member: MemberId) -> Option<&Entry> {
        self.by_member
            .get(&member)
            .and_then(|address| self.by_address.get(address))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }

    /// Every attached member, with its room (to leave them all when the socket ends).
    pub(super) fn attached(&self) -> impl Iterator<Item = &Attached> {
        self.by_address.values().filter_map(|e| match &e.state {
            State::Attached(a) => Some(a),
            _ => None,
        })
    }

    /// Holds a frame of a document that is not attached, starting its wait if it is new.
    /// On a refusal the document is forgotten, with what it held.
    pub(super) fn hold(
        &mut self,
        bounds: &Bounds,
        address: &Address,
        held: Held,
        now: Instant,
    ) -> Result<(), Refusal> {
        if !self.by_address.contains_key(address.as_str()) {
            self.admit(bounds, address, State::AwaitingToken { since: now })?;
        }
        let refusal = if self.held_bytes.saturating_add(held.frame.len()) > bounds.held_bytes {
            Some(Refusal::HeldBytes)
        } else if self.held_frames >= bounds.held_frames {
            Some(Refusal::HeldFrames)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            self.remove(address.as_str());
            return Err(refusal);
        }
        self.held_bytes += held.frame.len();
        self.held_frames += 1;
        if let Some(entry) = self.by_address.get_mut(address.as_str()) {
            entry.held.push(held);
        }
        Ok(())
    }

    /// A document whose token was accepted: it opens, keeping what it held. On a refusal the
    /// document is forgotten, with what it held.
    pub(super) fn opening(
        &mut self,
        bounds: &Bounds,
        address: &Address,
        identity: Identity,
    ) -> Result<(), Refusal> {
        match self.by_address.get_mut(address.as_str()) {
            Some(entry) => {
                entry.state = State::Opening { identity };
                Ok(())
            }
            None => self.admit(bounds, address, State::Opening { identity }),
        }
    }

    /// A new document, not attached, within the socket's bounds.
    fn admit(&mut self, bounds: &Bounds, address: &Address, state: State) -> Result<(), Refusal> {
        if self.by_address.len() >= bounds.docs {
            return Err(Refusal::TooManyDocuments);
        }
        if self.pending >= bounds.pending_docs {
            return Err(Refusal::PendingDocuments);
        }
        self.pending += 1;
        self.by_address.insert(
            address.as_str().to_string(),
            Entry {
                address: address.clone(),
                state,
                held: Vec::new(),
            },
        );
        Ok(())
    }

    /// An opening document joined its room: it is attached, and what it held is handed back,
    /// in the order it came, to go to the room.
    pub(super) fn attach(&mut self, address: &str, attached: Attached) -> Vec<Held> {
        let Some(entry) = self.by_address.get_mut(address) else {
            return Vec::new();
        };
        if matches!(entry.state, State::Attached(_)) {
            return Vec::new();
        }
        self.pending -= 1;
        self.by_member.insert(attached.member, address.to_string());
        entry.state = State::Attached(attached);
        let held = std::mem::take(&mut entry.held);
        self.release(&held);
        held
    }

    /// Forgets a document, with what it held.
    pub(super) fn remove(&mut self, address: &str) -> Option<Entry> {
        let entry = self.by_address.remove(address)?;
        match &entry.state {
            State::Attached(a) => {
                self.by_member.remove(&a.member);
            }
            _ => self.pending -= 1,
        }
        self.release(&entry.held);
        Some(entry)
    }

    fn release(&mut self, held: &[Held]) {
        self.held_frames -= held.len();
        self.held_bytes -= held.iter().map(|h| h.frame.len()).sum::<usize>();
    }

    /// The next moment a document's wait or token runs out.
    pub(super) fn next_deadline(&self, wait_max: Duration) -> Option<Instant> {
        self.by_address
            .values()
            .filter_map(|e| deadline(e, wait_max))
            .min()
    }

    /// The documents whose wait for a token (`true`: refuse them) or whose token (`false`:
    /// close them) ran out by `now`.
    pub(super) fn due(&self, now: Instant, wait_max: Duration) -> Vec<(String, bool)> {
        self.by_address
            .iter()
            .filter(|(_, e)| deadline(e, wait_max).is_some_and(|d| d <= now))
            .map(|(address, e)| {
                let waiting = matches!(e.state, State::AwaitingToken { .. });
                (address.clone(), waiting)
            })
            .collect()
    }
}

fn deadline(entry: &Entry, wait_max: Duration) -> Option<Instant> {
    match &entry.state {
        State::AwaitingToken { since } => Some(*since + wait_max),
        State::Opening { .. } => None,
        State::Attached(a) => a.expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const BOUNDS: Bounds = Bounds {
        docs: 3,
        pending_docs: 2,
        held_bytes: 10,
        held_frames: 3,
    };

    fn held(len: usize) -> Held {
        Held {
            message_type: 0,
            frame: Bytes::from(vec![0; len]),
            body_at: 0,
        }
    }

    fn identity() -> Identity {
        Identity {
            author: Arc::from("ada"),
            name: None,
            can_write: true,
            expires_at: None,
        }
    }

    // Each bound refuses at its edge: the frame that fits is held, the next refuses its own
    // document (and frees what that document held), never another one.
    #[test]
    fn pre_auth_bounds_at_their_edges() {
        let now = Instant::now();
        let (a, b, c) = (
            Address::plain("a"),
            Address::plain("b"),
            Address::plain("c"),
        );
        let mut docs = Documents::default();
        assert_eq!(docs.hold(&BOUNDS, &a, held(4), now), Ok(()));
        assert_eq!(docs.hold(&BOUNDS, &b, held(6), now), Ok(()));
        // Two documents wait: a third may not start waiting.
        assert_eq!(
            docs.hold(&BOUNDS, &c, held(0), now),
            Err(Refusal::PendingDocuments)
        );
        // 10 bytes are held: one more byte refuses b, which frees its 6.
        assert_eq!(
            docs.hold(&BOUNDS, &b, held(1), now),
            Err(Refusal::HeldBytes)
        );
        assert!(docs.get("b").is_none());
        assert!(docs.get("a").is_some(), "a is untouched");
        assert_eq!(docs.hold(&BOUNDS, &c, held(6), now), Ok(()));
        // Three frames are held (a: 1, c: 1 ... and one more for a): the fourth refuses.
        assert_eq!(docs.hold(&BOUNDS, &a, held(0), now), Ok(()));
        assert_eq!(
            docs.hold(&BOUNDS, &c, held(0), now),
            Err(Refusal::HeldFrames)
        );
        assert_eq!((docs.held_frames, docs.held_bytes), (2, 4));
    }

    // A document whose token is accepted keeps what it held and has no deadline while its
    // room loads; at most `docs` documents are open, waiting or not, and forgetting one frees
    // its place and what it held.
    #[test]
    fn opening_keeps_what_was_held() {
        let bounds = Bounds {
            pending_docs: 3,
            ..BOUNDS
        };
        let now = Instant::now();
        let a = Address::plain("a");
        let mut docs = Documents::default();
        docs.hold(&bounds, &a, held(1), now).expect("held");
        docs.hold(&bounds, &a, held(2), now).expect("held");
        docs.opening(&bounds, &a, identity()).expect("opens");
        assert_eq!(docs.pending, 1);
        assert_eq!((docs.held_frames, docs.held_bytes), (2, 3));
        assert_eq!(docs.next_deadline(Duration::from_secs(1)), None);
        for name in ["b", "c"] {
            docs.opening(&bounds, &Address::plain(name), identity())
                .expect("opens");
        }
        assert_eq!(
            docs.hold(&bounds, &Address::plain("d"), held(0), now),
            Err(Refusal::TooManyDocuments)
        );
        assert_eq!(
            docs.remove("a").map(|e| e.address),
            Some(Address::plain("a"))
        );
        assert_eq!((docs.held_frames, docs.held_bytes, docs.pending), (0, 0, 2));
        docs.hold(&bounds, &Address::plain("d"), held(0), now)
            .expect("a place is free again");
    }

    // A document waiting for its token is due `wait_max` after its first frame.
    #[test]
    fn waiting_documents_fall_due() {
        let now = Instant::now();
        let wait = Duration::from_secs(10);
        let mut docs = Documents::default();
        docs.hold(&BOUNDS, &Address::plain("a"), held(1), now)
            .expect("held");
        assert_eq!(docs.next_deadline(wait), Some(now + wait));
        assert!(docs
            .due(now + wait - Duration::from_millis(1), wait)
            .is_empty());
        assert_eq!(docs.due(now + wait, wait), vec![("a".to_string(), true)]);
    }
}
