//! The y-websocket protocol codec.
//!
//! A frame is `varUint(messageType)` followed by a payload encoded with lib0 varints:
//! `0` sync (`varUint(step)` + `varUint8Array(data)`: 0 = SyncStep1 with a state vector,
//! 1 = SyncStep2 answering a step 1, 2 = Update), `1` awareness (`varUint8Array(update)`),
//! `2` auth (`varUint(0)` + `varString(reason)` = permission denied), `3` query awareness.
//!
//! We wrap the codec types of `yrs::sync` rather than fork them; this module adds what a server
//! facing hostile clients needs on top: a size bound checked before any decoding, eager
//! validation of document updates (so a room never sees bytes that do not decode), and a typed
//! error instead of a panic for every malformed input.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{StateVector, Update};

use crate::shape::{self, UpdateShape};

pub use yrs::sync::AwarenessUpdate;

/// Message type tags of the y-websocket protocol.
pub const MSG_SYNC: u8 = 0;
pub const MSG_AWARENESS: u8 = 1;
pub const MSG_AUTH: u8 = 2;
pub const MSG_QUERY_AWARENESS: u8 = 3;

/// A document update received from a client: the bytes exactly as sent (what the store keeps),
/// the decoded form (what the room applies) and its [`UpdateShape`] (what it needs from a
/// document, how deep it nests). Decoding happens once, on the connection's task, so the room's
/// single thread never spends time on parsing or on rejecting garbage.
#[derive(Debug)]
pub struct ClientUpdate {
    pub bytes: Vec<u8>,
    pub decoded: Update,
    pub shape: UpdateShape,
}

impl ClientUpdate {
    /// Decodes untrusted bytes; see [`decode_update`].
    pub fn decode(bytes: Vec<u8>, nesting_max: u32) -> Result<Self, DecodeError> {
        let (decoded, shape) = decode_update(&bytes, nesting_max)?;
        Ok(ClientUpdate {
            bytes,
            decoded,
            shape,
        })
    }
}

/// How a connection decodes the frames of one peer.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    /// Larger frames are refused before any decoding.
    pub frame_size_max_bytes: usize,
    /// How deep values and shared types in an update may nest ([`shape::shape`]).
    pub nesting_max: u32,
    /// Whether the peer may edit. The updates of a peer that may not are only walked for their
    /// shape ([`Inbound::ReadOnlyUpdate`]), never decoded by `yrs`: a read-only peer's bytes never
    /// reach the code that builds a document.
    pub may_write: bool,
}

impl Decoding {
    /// A peer that may write, with the default nesting bound (tests and tools).
    pub fn writer(frame_size_max_bytes: usize) -> Self {
        Decoding {
            frame_size_max_bytes,
            nesting_max: shape::NESTING_MAX_DEFAULT,
            may_write: true,
        }
    }
}

/// One message received from a client, as a room takes it. The y-websocket codec here makes all
/// but [`Inbound::Stateless`]; the Hocuspocus codec ([`crate::hocuspocus`]) makes its sync and
/// awareness messages with the same decoders, and stateless messages.
#[derive(Debug)]
pub enum Inbound {
    /// The client's state vector: answer with a SyncStep2 holding what it lacks.
    SyncStep1(StateVector),
    /// What the client has that we lacked (its answer to our SyncStep1), or a live edit.
    /// The protocol treats both alike, so they share a variant.
    Update(ClientUpdate),
    /// An update from a peer that may not write, only walked for its shape: the room tells a
    /// no-op (a read-only client's SyncStep2 repeats what the document already holds) from an
    /// edit it must refuse.
    ReadOnlyUpdate(UpdateShape),
    Awareness(AwarenessUpdate),
    QueryAwareness,
    /// Clients never send auth messages in the y-websocket dialect; kept so a server can log it.
    Auth,
    /// A message type this protocol version does not define (ignored, for forward compatibility).
    Unknown(u64),
    /// An application message for the document's other peers that take them (Hocuspocus
    /// `sendStateless`); never stored, never part of the document.
    Stateless(String),
}

/// Why a frame was refused. Every variant ends only the connection that sent it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("empty frame")]
    Empty,
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("malformed {what}: {detail}")]
    Malformed { what: &'static str, detail: String },
}

impl DecodeError {
    fn malformed(what: &'static str, err: impl std::fmt::Display) -> Self {
        DecodeError::Malformed {
            what,
            detail: err.to_string(),
        }
    }
}

/// Sync sub-message steps.
pub const SYNC_STEP_1: u8 = 0;
pub const SYNC_STEP_2: u8 = 1;
pub const SYNC_UPDATE: u8 = 2;
/// The auth sub-message meaning "permission denied".
pub const AUTH_PERMISSION_DENIED: u8 = 0;

/// Decodes one websocket frame into the messages it carries.
///
/// Stock clients send one message per frame, but the protocol allows several back to back, so
/// all of them are read; a frame whose bytes do not all form messages is refused as a whole, so
/// nothing from a half-valid frame is ever applied.
pub fn decode_frame(frame: &[u8], decoding: &Decoding) -> Result<Vec<Inbound>, DecodeError> {
    if frame.is_empty() {
        return Err(DecodeError::Empty);
    }
    if frame.len() > decoding.frame_size_max_bytes {
        return Err(DecodeError::TooLarge {
            size: frame.len(),
            limit: decoding.frame_size_max_bytes,
        });
    }
    let mut cursor = Cursor::new(frame);
    let mut messages = Vec::with_capacity(1);
    while cursor.has_content() {
        messages.push(decode_one(&mut cursor, decoding)?);
    }
    Ok(messages)
}

fn decode_one(cursor: &mut Cursor<'_>, decoding: &Decoding) -> Result<Inbound, DecodeError> {
    let tag: u64 = cursor
        .read_var()
        .map_err(|e| DecodeError::malformed("message type", e))?;
    match tag {
        t if t == u64::from(MSG_SYNC) => decode_sync(cursor, decoding),
        t if t == u64::from(MSG_AWARENESS) => {
            let buf = cursor
                .read_buf()
                .map_err(|e| DecodeError::malformed("awareness message", e))?;
            Ok(Inbound::Awareness(decode_awareness(buf)?))
        }
        t if t == u64::from(MSG_AUTH) => {
            let kind: u64 = cursor
                .read_var()
                .map_err(|e| DecodeError::malformed("auth message", e))?;
            if kind == u64::from(AUTH_PERMISSION_DENIED) {
                cursor
                    .read_string()
                    .map_err(|e| DecodeError::malformed("auth message", e))?;
            }
            Ok(Inbound::Auth)
        }
        t if t == u64::from(MSG_QUERY_AWARENESS) => Ok(Inbound::QueryAwareness),
        other => {
            // Every extension of the protocol we know of (y-websocket custom messages) carries a
            // length-prefixed payload; skip it so the frame's other messages still count.
            cursor
                .read_buf()
                .map_err(|e| DecodeError::malformed("message of unknown type", e))?;
            Ok(Inbound::Unknown(other))
        }
    }
}

/// Decodes a y-protocols sync message (step + payload), shared with the Hocuspocus codec.
pub(crate) fn decode_sync(
    cursor: &mut Cursor<'_>,
    decoding: &Decoding,
) -> Result<Inbound, DecodeError> {
    let step: u64 = cursor
        .read_var()
        .map_err(|e| DecodeError::malformed("sync step", e))?;
    let buf = cursor
        .read_buf()
        .map_err(|e| DecodeError::malformed("sync payload", e))?;
    match step {
        s if s == u64::from(SYNC_STEP_1) => {
            let sv = StateVector::decode_v1(buf)
                .map_err(|e| DecodeError::malformed("state vector", e))?;
            Ok(Inbound::SyncStep1(sv))
        }
        s if s == u64::from(SYNC_STEP_2) || s == u64::from(SYNC_UPDATE) => {
            if decoding.may_write {
                let update = ClientUpdate::decode(buf.to_vec(), decoding.nesting_max)?;
                Ok(Inbound::Update(update))
            } else {
                let shape = shape::shape(buf, decoding.nesting_max)
                    .map_err(|e| DecodeError::malformed("update", e))?;
                Ok(Inbound::ReadOnlyUpdate(shape))
            }
        }
        other => Err(DecodeError::Malformed {
            what: "sync step",
            detail: format!("unknown step {other}"),
        }),
    }
}

/// Decodes a Yjs v1 update from untrusted bytes, with its shape. The shape is read first: its
/// walk never recurses and refuses values and types nested deeper than `nesting_max`, so `yrs`'
/// recursive decoder only ever sees bounded nesting. The allocator bounds what a length prefix
/// can reserve (see the server's `alloc`); the panic guard turns decoder bugs (for instance a
/// delete range whose end overflows) into an error. Whether the update may enter a document is
/// the room's decision (`has_gap`): decoding never integrates anything.
pub fn decode_update(bytes: &[u8], nesting_max: u32) -> Result<(Update, UpdateShape), DecodeError> {
    let decoded = std::panic::catch_unwind(|| {
        let shape =
            shape::shape(bytes, nesting_max).map_err(|e| DecodeError::malformed("update", e))?;
        let update = Update::decode_v1(bytes).map_err(|e| DecodeError::malformed("update", e))?;
        Ok((update, shape))
    });
    decoded.unwrap_or_else(|_| {
        Err(DecodeError::Malformed {
            what: "update",
            detail: "decoder panicked".into(),
        })
    })
}

/// Decodes an awareness update from untrusted bytes. Every state must be JSON: the room relays
/// states as they came, and a stock client that cannot parse one throws in its message handler
/// (in Node an uncaught exception, which ends the process) and loses the rest of that frame,
/// other users' states included. The panic guard turns yrs' debug assertion on client IDs past
/// 53 bits into an error (release builds keep the low 53 bits, which JavaScript can read).
pub fn decode_awareness(bytes: &[u8]) -> Result<AwarenessUpdate, DecodeError> {
    let update = match std::panic::catch_unwind(|| AwarenessUpdate::decode_v1(bytes)) {
        Ok(decoded) => decoded.map_err(|e| DecodeError::malformed("awareness update", e))?,
        Err(_) => {
            return Err(DecodeError::malformed(
                "awareness update",
                "decoder panicked",
            ))
        }
    };
    for entry in update.clients.values() {
        serde_json::from_str::<serde::de::IgnoredAny>(&entry.json)
            .map_err(|e| DecodeError::malformed("awareness state", e))?;
    }
    Ok(update)
}

fn frame(capacity: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::with_capacity(capacity);
    write(&mut buf);
    buf
}

/// `[0, 0, sv]`: our state vector, asking the peer for what we lack.
pub fn encode_sync_step1(sv: &StateVector) -> Vec<u8> {
    let sv = sv.encode_v1();
    frame(sv.len() + 8, |b| {
        b.write_var(MSG_SYNC);
        b.write_var(SYNC_STEP_1);
        b.write_buf(&sv);
    })
}

/// `[0, 1, update]`: what the peer lacks, answering its SyncStep1.
pub fn encode_sync_step2(update: &[u8]) -> Vec<u8> {
    frame(update.len() + 12, |b| {
        b.write_var(MSG_SYNC);
        b.write_var(SYNC_STEP_2);
        b.write_buf(update);
    })
}

/// `[0, 2, update]`: a live edit.
pub fn encode_update(update: &[u8]) -> Vec<u8> {
    frame(update.len() + 12, |b| {
        b.write_var(MSG_SYNC);
        b.write_var(SYNC_UPDATE);
        b.write_buf(update);
    })
}

/// `[1, awareness update]`.
pub fn encode_awareness(update: &AwarenessUpdate) -> Vec<u8> {
    encode_awareness_bytes(&update.encode_v1())
}

/// `[1, awareness update]` from an already encoded awareness update.
pub fn encode_awareness_bytes(update: &[u8]) -> Vec<u8> {
    frame(update.len() + 8, |b| {
        b.write_var(MSG_AWARENESS);
        b.write_buf(update);
    })
}

/// `[3]`: ask the peer for every awareness state it knows.
pub fn encode_query_awareness() -> Vec<u8> {
    vec![MSG_QUERY_AWARENESS]
}

/// `[2, 0, reason]`: the protocol's "permission denied".
pub fn encode_permission_denied(reason: &str) -> Vec<u8> {
    frame(reason.len() + 8, |b| {
        b.write_var(MSG_AUTH);
        b.write_var(AUTH_PERMISSION_DENIED);
        b.write_string(reason);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Doc, GetString, ReadTxn, Text, Transact};

    const LIMIT: Decoding = Decoding {
        frame_size_max_bytes: 1 << 20,
        nesting_max: shape::NESTING_MAX_DEFAULT,
        may_write: true,
    };

    fn sample_update() -> Vec<u8> {
        let doc = Doc::new();
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "hello");
        let update = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        update
    }

    // Each encoder's output decodes back to the same message: the codec is its own oracle.
    #[test]
    fn round_trips() {
        let update = sample_update();
        let mut sv = StateVector::default();
        sv.set_max(yrs::block::ClientID::new(7), 42);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (encode_sync_step1(&sv), "step1"),
            (encode_sync_step2(&update), "update"),
            (encode_update(&update), "update"),
            (encode_query_awareness(), "query"),
            (encode_permission_denied("nope"), "auth"),
        ];
        for (bytes, expected) in cases {
            let msgs = decode_frame(&bytes, &LIMIT).expect("decodes");
            assert_eq!(msgs.len(), 1);
            let got = match &msgs[0] {
                Inbound::SyncStep1(got) => {
                    assert_eq!(got, &sv);
                    "step1"
                }
                Inbound::Update(u) => {
                    assert_eq!(u.bytes, update);
                    "update"
                }
                Inbound::QueryAwareness => "query",
                Inbound::Auth => "auth",
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(got, expected);
        }
    }

    // Frames built by hand in the shape y-protocols' JS encoder produces decode to what the
    // JS side meant; this pins us to the wire format rather than to our own encoder.
    #[test]
    fn decodes_js_shaped_frames() {
        // An empty state vector: [sync, step1, len 1, varUint(0 clients)].
        let msgs = decode_frame(&[0, 0, 1, 0], &LIMIT).expect("step1");
        assert!(matches!(&msgs[0], Inbound::SyncStep1(sv) if sv.is_empty()));
        // The empty update y-websocket sends as SyncStep2 when it has nothing: [0, 0] payload.
        let msgs = decode_frame(&[0, 1, 2, 0, 0], &LIMIT).expect("empty step2");
        assert!(matches!(&msgs[0], Inbound::Update(u) if u.decoded.is_empty()));
        // Two messages in one frame.
        let msgs = decode_frame(&[3, 0, 0, 1, 0], &LIMIT).expect("two");
        assert_eq!(msgs.len(), 2);
        // An awareness update for client 5, clock 1, state {"a":1}.
        let mut b = vec![1u8];
        let mut payload = Vec::new();
        payload.write_var(1u32);
        payload.write_var(5u64);
        payload.write_var(1u32);
        payload.write_string("{\"a\":1}");
        b.write_buf(&payload);
        let msgs = decode_frame(&b, &LIMIT).expect("awareness");
        match &msgs[0] {
            Inbound::Awareness(a) => {
                let entry = &a.clients[&yrs::block::ClientID::new(5)];
                assert_eq!(entry.clock, 1);
                assert_eq!(&*entry.json, "{\"a\":1}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // An unknown message type with a payload is skipped, not fatal.
        let msgs = decode_frame(&[9, 2, 7, 7], &LIMIT).expect("unknown");
        assert!(matches!(msgs[0], Inbound::Unknown(9)));
    }

    // Hostile and broken frames are refused with an error, never a panic, and never allocate
    // what their length prefixes claim.
    #[test]
    fn refuses_garbage() {
        let update = sample_update();
        let mut truncated = encode_update(&update);
        truncated.truncate(truncated.len() - 3);
        let mut bad_len = encode_update(&update);
        bad_len[2] = 0x7f; // length prefix longer than the frame
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0, 9, 0],
            vec![0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f],
            vec![
                0, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            vec![0xff; 12],
            vec![1, 5, 0xff, 0xff, 0xff, 0xff, 0x0f],
            vec![0, 2, 3, 0xff, 0xff, 0x0f],
            vec![0, 0, 3, 0xff, 0xff, 0x7f],
            vec![2, 0, 0xff, 0xff, 0x0f],
            truncated,
            bad_len,
        ];
        for frame in cases {
            assert!(decode_frame(&frame, &LIMIT).is_err(), "accepted {frame:?}");
        }
    }

    fn awareness_frame(client: u64, json: &str) -> Vec<u8> {
        let mut payload = Vec::new();
        payload.write_var(1u32);
        payload.write_var(client);
        payload.write_var(1u32);
        payload.write_string(json);
        let mut frame = vec![MSG_AWARENESS];
        frame.write_buf(&payload);
        frame
    }

    // A presence state is relayed to stock clients as it came, so it must be JSON they can
    // parse: anything else is refused, while everything JSON.stringify writes (removals, lone
    // surrogates as escapes, any value at the top) passes. A client ID past 53 bits, which
    // JavaScript cannot read, trips a debug assertion in yrs: refused here in debug builds,
    // truncated to 53 bits by yrs in release builds.
    #[test]
    fn awareness_states_must_be_json() {
        let check = |client: u64, json: &str, ok: bool| {
            let decoded = decode_frame(&awareness_frame(client, json), &LIMIT);
            assert_eq!(decoded.is_ok(), ok, "{client} {json}: {decoded:?}");
        };
        for json in [
            "null",
            "{}",
            r#"{"user":{"name":"Ada"},"cursor":null}"#,
            r#""\ud800""#,
            "1e20",
            "[]",
        ] {
            check(7, json, true);
        }
        for json in [
            "",
            "{not json",
            "{\"a\":1",
            "undefined",
            "NaN",
            "{\"a\":1}x",
        ] {
            check(7, json, false);
        }
        check((1 << 53) - 1, "{}", true);
        check(1 << 60, "{}", !cfg!(debug_assertions));
    }

    #[test]
    fn refuses_oversized_frame_before_decoding() {
        let frame = vec![0u8; 101];
        assert_eq!(
            decode_frame(
                &frame,
                &Decoding {
                    frame_size_max_bytes: 100,
                    ..LIMIT
                }
            )
            .err(),
            Some(DecodeError::TooLarge {
                size: 101,
                limit: 100
            })
        );
    }

    // A decoded update applies to a document and carries the text it was made from.
    #[test]
    fn decoded_update_applies() {
        let update = sample_update();
        let msgs = decode_frame(&encode_update(&update), &LIMIT).expect("decodes");
        let Some(Inbound::Update(u)) = msgs.into_iter().next() else {
            panic!("not an update")
        };
        let doc = Doc::new();
        doc.transact_mut().apply_update(u.decoded).expect("applies");
        let text = doc.get_or_insert_text("t");
        assert_eq!(text.get_string(&doc.transact()), "hello");
    }
}
