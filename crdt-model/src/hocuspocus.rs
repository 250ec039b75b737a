//! The Hocuspocus wire codec (`@hocuspocus/provider` 4.x), pure: untrusted frames in, typed
//! messages out, and the server's frames back.
//!
//! Every frame is `varString(address)` + `varUint(type)` + a body; the address is the document
//! name, or with the provider's `sessionAwareness` `name + "\0" + sessionId` (several providers
//! of one document on one socket). A reply goes to the exact address received. The one
//! exception is the v4 keep-alive: Ping (`[9]`) and Pong (`[10]`) are a bare byte with no
//! address, told apart from addressed frames by their length (an address of length 9 or 10
//! needs that many more bytes).
//!
//! | type | name               | body                                                      |
//! |------|--------------------|-----------------------------------------------------------|
//! | 0    | Sync               | a y-protocols sync message: step + `varUint8Array`         |
//! | 1    | Awareness          | `varUint8Array(awareness update)`                          |
//! | 2    | Auth               | sub-type, see below                                        |
//! | 3    | QueryAwareness     | nothing                                                    |
//! | 4    | SyncReply          | as Sync (the server's reply variant; read as Sync)         |
//! | 5    | Stateless          | `varString(payload)`                                       |
//! | 6    | BroadcastStateless | server-to-server only: refused from a client               |
//! | 7    | CLOSE              | client: nothing; server: `varString(reason)`               |
//! | 8    | SyncStatus         | server: `varUint(1 applied / 0 refused)`; refused from a client |
//! | 9/10 | Ping / Pong        | bare, no address                                           |
//!
//! Auth sub-messages: 0 Token (client: `varString(token)`, then in v4 `varString(provider
//! version)`; server, with no body: "send your token again"), 1 PermissionDenied
//! (`varString(reason)`), 2 Authenticated (`varString(scope)`: `read-write` or `readonly`).
//!
//! Decoding is in two steps, so a server can route and hold a frame before it may decode it:
//! [`read_frame`] reads only the address and the type (cheap, bounded, no allocation beyond the
//! address), and [`decode_message`] decodes the body once the peer's rights are known (a peer
//! that may not write has its updates only measured, as in [`crate::protocol`]). The sync and
//! awareness payloads are the y-protocols ones and go through the same decoders.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::write::Write;

use crate::protocol::{self, Decoding, Inbound};

pub use crate::protocol::AwarenessUpdate;

/// Message types.
pub const MSG_SYNC: u8 = 0;
pub const MSG_AWARENESS: u8 = 1;
pub const MSG_AUTH: u8 = 2;
pub const MSG_QUERY_AWARENESS: u8 = 3;
pub const MSG_SYNC_REPLY: u8 = 4;
pub const MSG_STATELESS: u8 = 5;
pub const MSG_BROADCAST_STATELESS: u8 = 6;
pub const MSG_CLOSE: u8 = 7;
pub const MSG_SYNC_STATUS: u8 = 8;
pub const MSG_PING: u8 = 9;
pub const MSG_PONG: u8 = 10;

/// Auth sub-message types.
pub const AUTH_TOKEN: u8 = 0;
pub const AUTH_PERMISSION_DENIED: u8 = 1;
pub const AUTH_AUTHENTICATED: u8 = 2;

/// What separates the document name from the session in a session address.
pub const SESSION_SEPARATOR: char = '\0';
/// Longest session part of an address. The stock provider uses 11 base-36 characters
/// (`Math.random().toString(36).slice(2)`); 64 leaves room for a UUID or two.
pub const SESSION_LEN_MAX_BYTES: usize = 64;
/// Longest token in a Token message. A JWT with a few document grants is well under 2 KiB;
/// 16 KiB takes RSA-signed tokens with long grant lists while bounding what an unauthenticated
/// frame can make a server hold and verify.
pub const TOKEN_LEN_MAX_BYTES: usize = 16 * 1024;
/// Longest provider version string (`4.8.0`).
pub const VERSION_LEN_MAX_BYTES: usize = 64;

/// The keep-alive frames: a bare byte, no address.
pub const PING: [u8; 1] = [MSG_PING];
pub const PONG: [u8; 1] = [MSG_PONG];

/// Where a frame goes: a document name, and the session of one provider of it when the provider
/// multiplexes several of one document on a socket. The document part is not validated here (the
/// server's naming rules decide); the session part is: 1 to [`SESSION_LEN_MAX_BYTES`] visible
/// ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    raw: String,
    /// Where the document name ends in `raw` (the separator's position, or `raw.len()`).
    doc_len: usize,
}

impl Address {
    /// Reads an address as the provider writes it.
    pub fn parse(raw: &str) -> Result<Address, FrameError> {
        let doc_len = match raw.find(SESSION_SEPARATOR) {
            None => raw.len(),
            Some(at) => {
                let session = &raw[at + 1..];
                let visible = session.bytes().all(|b| b.is_ascii_graphic());
                if session.is_empty() || session.len() > SESSION_LEN_MAX_BYTES || !visible {
                    return Err(FrameError::Session(raw.to_string()));
                }
                at
            }
        };
        Ok(Address {
            raw: raw.to_string(),
            doc_len,
        })
    }

    /// The plain address of a document (no session).
    pub fn plain(doc: &str) -> Address {
        Address {
            raw: doc.to_string(),
            doc_len: doc.len(),
        }
    }

    /// The address exactly as received: what replies carry.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The document part: what frames are routed by.
    pub fn doc(&self) -> &str {
        &self.raw[..self.doc_len]
    }

    pub fn session(&self) -> Option<&str> {
        self.raw.get(self.doc_len + 1..)
    }

    /// True when the address is the document name alone, so every member of the document with
    /// such an address receives the same bytes.
    pub fn is_plain(&self) -> bool {
        self.doc_len == self.raw.len()
    }
}

/// One frame, its address read and its body not yet decoded.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Ping,
    Pong,
    Addressed {
        address: Address,
        /// The message type, possibly one this codec does not know ([`decode_message`] says).
        message_type: u64,
        /// Everything after the type.
        body: &'a [u8],
    },
}

/// Why a frame could not be routed at all: it names no document a server could answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("empty frame")]
    Empty,
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("the address is not a length-prefixed UTF-8 string")]
    Address,
    /// The address, as received, for a reply that refuses it.
    #[error("the session part of the address is empty, longer than 64 bytes or not visible ASCII")]
    Session(String),
    /// The address, as received, for a reply that refuses it.
    #[error("the message type is not a varint")]
    MessageType(String),
}

impl FrameError {
    /// The address a refusal can be sent to, when the frame had a readable one.
    pub fn address(&self) -> Option<&str> {
        match self {
            FrameError::Session(raw) | FrameError::MessageType(raw) => Some(raw),
            _ => None,
        }
    }
}

/// A message from a client, decoded.
#[derive(Debug)]
pub enum ClientMessage {
    /// A sync message (SyncStep1, SyncStep2 or Update) as the room takes it.
    Sync(Inbound),
    Awareness(AwarenessUpdate),
    QueryAwareness,
    /// The client's token for this document, and (provider 4.x) its version.
    Token {
        token: String,
        provider_version: Option<String>,
    },
    /// An application message to relay (`sendStateless`).
    Stateless(String),
    /// The client detaches this document; the socket stays.
    Close,
}

/// Why a message was refused. The frame's address is known, so a server answers that document
/// and no other.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("unknown message type {0}")]
    UnknownType(u64),
    /// A type only a server sends (BroadcastStateless, SyncStatus, and the server's auth
    /// sub-messages).
    #[error("message type {0} is sent by servers, never by clients")]
    ServerOnly(u64),
    #[error("{what} is longer than {limit} bytes")]
    TooLong { what: &'static str, limit: usize },
    #[error("{0} bytes after the message")]
    Trailing(usize),
    #[error(transparent)]
    Decode(#[from] protocol::DecodeError),
}

fn malformed(what: &'static str, err: impl std::fmt::Display) -> protocol::DecodeError {
    protocol::DecodeError::Malformed {
        what,
        detail: err.to_string(),
    }
}

/// Reads a frame's address and message type, after bounding its size. Nothing of the body is
/// read, so this is cheap enough for frames of peers that have not authenticated yet.
pub fn read_frame(frame: &[u8], frame_size_max_bytes: usize) -> Result<Frame<'_>, FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    if frame.len() > frame_size_max_bytes {
        return Err(FrameError::TooLarge {
            size: frame.len(),
            limit: frame_size_max_bytes,
        });
    }
    match frame {
        [MSG_PING] => return Ok(Frame::Ping),
        [MSG_PONG] => return Ok(Frame::Pong),
        _ => {}
    }
    let mut cursor = Cursor::new(frame);
    let raw = cursor.read_string().map_err(|_| FrameError::Address)?;
    let address = Address::parse(raw)?;
    let message_type: u64 = cursor
        .read_var()
        .map_err(|_| FrameError::MessageType(address.raw.clone()))?;
    Ok(Frame::Addressed {
        address,
        message_type,
        body: &frame[cursor.next..],
    })
}

/// Decodes the body of a client's message of `message_type`. Sync payloads are decoded and
/// validated as [`protocol::decode_frame`] does (a peer that may not write has its updates only
/// walked); a frame holds exactly one message, so bytes after it are refused.
pub fn decode_message(
    message_type: u64,
    body: &[u8],
    decoding: &Decoding,
) -> Result<ClientMessage, MessageError> {
    let mut cursor = Cursor::new(body);
    let message = match message_type {
        t if t == u64::from(MSG_SYNC) || t == u64::from(MSG_SYNC_REPLY) => {
            ClientMessage::Sync(protocol::decode_sync(&mut cursor, decoding)?)
        }
        t if t == u64::from(MSG_AWARENESS) => {
            let buf = cursor
                .read_buf()
                .map_err(|e| malformed("awareness message", e))?;
            ClientMessage::Awareness(protocol::decode_awareness(buf)?)
        }
        t if t == u64::from(MSG_AUTH) => decode_auth(&mut cursor)?,
        t if t == u64::from(MSG_QUERY_AWARENESS) => ClientMessage::QueryAwareness,
        t if t == u64::from(MSG_STATELESS) => {
            let payload = cursor
                .read_string()
                .map_err(|e| malformed("stateless payload", e))?;
            ClientMessage::Stateless(payload.to_string())
        }
        t if t == u64::from(MSG_CLOSE) => ClientMessage::Close,
        t if t == u64::from(MSG_BROADCAST_STATELESS) || t == u64::from(MSG_SYNC_STATUS) => {
            return Err(MessageError::ServerOnly(t))
        }
        other => return Err(MessageError::UnknownType(other)),
    };
    let trailing = body.len() - cursor.next;
    if trailing > 0 {
        return Err(MessageError::Trailing(trailing));
    }
    Ok(message)
}

fn decode_auth(cursor: &mut Cursor<'_>) -> Result<ClientMessage, MessageError> {
    let kind: u64 = cursor
        .read_var()
        .map_err(|e| malformed("auth message", e))?;
    if kind != u64::from(AUTH_TOKEN) {
        return Err(MessageError::ServerOnly(u64::from(MSG_AUTH)));
    }
    let token = read_bounded_string(cursor, "token", TOKEN_LEN_MAX_BYTES)?;
    // Providers before 4.0 send no version.
    let provider_version = if cursor.has_content() {
        Some(read_bounded_string(
            cursor,
            "provider version",
            VERSION_LEN_MAX_BYTES,
        )?)
    } else {
        None
    };
    Ok(ClientMessage::Token {
        token,
        provider_version,
    })
}

/// A string of at most `limit` bytes, measured before it is copied.
fn read_bounded_string(
    cursor: &mut Cursor<'_>,
    what: &'static str,
    limit: usize,
) -> Result<String, MessageError> {
    let read = cursor.read_string().map_err(|e| malformed(what, e))?;
    if read.len() > limit {
        return Err(MessageError::TooLong { what, limit });
    }
    Ok(read.to_string())
}

/// What a document was opened for, as the provider's `authorizedScope` reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    ReadWrite,
    ReadOnly,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::ReadWrite => "read-write",
            Scope::ReadOnly => "readonly",
        }
    }
}

fn addressed(address: &str, capacity: usize, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut buf = Vec::with_capacity(address.len() + capacity + 8);
    buf.write_string(address);
    write(&mut buf);
    buf
}

/// `varString(address)` + a y-protocols message (`varUint(type)` + payload) as the y-websocket
/// codec frames it ([`protocol::encode_update`] and its siblings): for Sync and Awareness the
/// bodies of the two dialects are the same bytes.
pub fn encode_addressed(address: &str, y_protocols_message: &[u8]) -> Vec<u8> {
    addressed(address, y_protocols_message.len(), |b| {
        b.extend_from_slice(y_protocols_message);
    })
}

/// Auth/Authenticated with the scope the document was opened for.
pub fn encode_authenticated(address: &str, scope: Scope) -> Vec<u8> {
    addressed(address, 16, |b| {
        b.write_var(MSG_AUTH);
        b.write_var(AUTH_AUTHENTICATED);
        b.write_string(scope.as_str());
    })
}

/// Auth/PermissionDenied: the provider emits `authenticationFailed` with `reason`.
pub fn encode_permission_denied(address: &str, reason: &str) -> Vec<u8> {
    addressed(address, reason.len() + 8, |b| {
        b.write_var(MSG_AUTH);
        b.write_var(AUTH_PERMISSION_DENIED);
        b.write_string(reason);
    })
}

/// Auth/Token with no body, from the server: "send your token again".
pub fn encode_token_request(address: &str) -> Vec<u8> {
    addressed(address, 2, |b| {
        b.write_var(MSG_AUTH);
        b.write_var(AUTH_TOKEN);
    })
}

/// SyncStatus: `applied` acknowledges an update or SyncStep2 as saved; the provider's
/// `unsyncedChanges` counts down only on those.
pub fn encode_sync_status(address: &str, applied: bool) -> Vec<u8> {
    addressed(address, 2, |b| {
        b.write_var(MSG_SYNC_STATUS);
        b.write_var(u8::from(applied));
    })
}

/// Stateless: an application message.
pub fn encode_stateless(address: &str, payload: &str) -> Vec<u8> {
    addressed(address, payload.len() + 8, |b| {
        b.write_var(MSG_STATELESS);
        b.write_string(payload);
    })
}

/// CLOSE from the server: this document is detached (the provider reports `reason`).
pub fn encode_close(address: &str, reason: &str) -> Vec<u8> {
    addressed(address, reason.len() + 8, |b| {
        b.write_var(MSG_CLOSE);
        b.write_string(reason);
    })
}

/// QueryAwareness: ask the peer for every awareness state it knows.
pub fn encode_query_awareness(address: &str) -> Vec<u8> {
    addressed(address, 1, |b| b.write_var(MSG_QUERY_AWARENESS))
}

/// A client's Token message (tests, tools and the benchmark's client).
pub fn encode_token(address: &str, token: &str, provider_version: Option<&str>) -> Vec<u8> {
    addressed(address, token.len() + 16, |b| {
        b.write_var(MSG_AUTH);
        b.write_var(AUTH_TOKEN);
        b.write_string(token);
        if let Some(version) = provider_version {
            b.write_string(version);
        }
    })
}

/// A client's CLOSE message (no body).
pub fn encode_client_close(address: &str) -> Vec<u8> {
    addressed(address, 1, |b| b.write_var(MSG_CLOSE))
}

#[cfg(test)]
mod tests;
