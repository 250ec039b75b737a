//! A Hocuspocus client speaking raw frames to the in-process server: what the stock provider
//! sends, built with the crate's codec, and what the server sends, read back by address.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem_crdt_model::hocuspocus::{self, Frame};
use tandem_crdt_model::protocol;
use tokio_tungstenite::tungstenite::Message;
use yrs::encoding::read::{Cursor, Read};
use yrs::StateVector;

use super::{Ws, WAIT};

/// One frame from the server: its address, type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct In {
    pub address: String,
    pub kind: u64,
    pub body: Vec<u8>,
}

impl In {
    /// The string after the sub-type of an Auth message (scope or reason), or of a CLOSE.
    pub fn text(&self) -> String {
        let mut cursor = Cursor::new(&self.body);
        if self.kind == u64::from(hocuspocus::MSG_AUTH) {
            let _: u64 = cursor.read_var().expect("sub-type");
        }
        cursor.read_string().expect("a string").to_string()
    }

    pub fn auth_kind(&self) -> Option<u8> {
        (self.kind == u64::from(hocuspocus::MSG_AUTH)).then(|| self.body[0])
    }

    pub fn is_authenticated(&self) -> bool {
        self.auth_kind() == Some(hocuspocus::AUTH_AUTHENTICATED)
    }

    pub fn is_denied(&self) -> bool {
        self.auth_kind() == Some(hocuspocus::AUTH_PERMISSION_DENIED)
    }

    /// A SyncStatus: `Some(applied)`.
    pub fn ack(&self) -> Option<bool> {
        (self.kind == u64::from(hocuspocus::MSG_SYNC_STATUS)).then(|| self.body == [1])
    }

    /// The sync step of a Sync message (0, 1 or 2).
    pub fn sync_step(&self) -> Option<u8> {
        (self.kind == u64::from(hocuspocus::MSG_SYNC)).then(|| self.body[0])
    }
}

/// A server frame, read leniently: the server answers a refused address exactly as it came,
/// even one the strict client-frame reader refuses (a bad session part). `None` for a bare
/// ping or pong.
fn parse(bytes: &[u8]) -> Option<In> {
    if matches!(
        hocuspocus::read_frame(bytes, usize::MAX),
        Ok(Frame::Ping | Frame::Pong)
    ) {
        return None;
    }
    let mut cursor = Cursor::new(bytes);
    let address = cursor.read_string().expect("an address").to_string();
    let kind: u64 = cursor.read_var().expect("a message type");
    let body = bytes[cursor.next..].to_vec();
    Some(In {
        address,
        kind,
        body,
    })
}

pub struct Client {
    pub ws: Ws,
    backlog: VecDeque<In>,
    /// Bare pings the server sent.
    pub pings: usize,
    pub closed: Option<u16>,
}

pub async fn connect(addr: std::net::SocketAddr) -> Client {
    let (ws, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::connect_async(format!("ws://{addr}/hocuspocus")),
    )
    .await
    .expect("connect in time")
    .expect("upgrade accepted");
    Client {
        ws,
        backlog: VecDeque::new(),
        pings: 0,
        closed: None,
    }
}

pub fn token(address: &str, token: &str) -> Vec<u8> {
    hocuspocus::encode_token(address, token, Some("4.8.0"))
}

pub fn step1(address: &str) -> Vec<u8> {
    hocuspocus::encode_addressed(
        address,
        &protocol::encode_sync_step1(&StateVector::default()),
    )
}

pub fn update(address: &str, update: &[u8]) -> Vec<u8> {
    hocuspocus::encode_addressed(address, &protocol::encode_update(update))
}

/// An update by `client` that types `text` into an empty text "t".
pub fn text(client: u64, text: &str) -> Vec<u8> {
    use yrs::{Doc, ReadTxn, Text, Transact};
    let doc = Doc::with_client_id(client);
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, text);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    update
}

impl Client {
    pub async fn send(&mut self, frame: Vec<u8>) {
        self.ws.send(Message::binary(frame)).await.expect("sent");
    }

    /// Opens `address` as the provider does: Token, SyncStep1.
    pub async fn open(&mut self, address: &str, tok: &str) {
        self.send(token(address, tok)).await;
        self.send(step1(address)).await;
    }

    /// The next frame, within `limit`; `None` when nothing came (or the socket closed).
    async fn read(&mut self, limit: Duration) -> Option<In> {
        // One deadline for the whole read: pings do not extend it.
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match next {
                Ok(Message::Binary(bytes)) => match parse(&bytes) {
                    None => self.pings += usize::from(bytes[..] == hocuspocus::PING),
                    Some(frame) => return Some(frame),
                },
                Ok(Message::Close(frame)) => {
                    self.closed = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    return None;
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// The next frame for `address` that `matches`, keeping the others for later.
    pub async fn take(&mut self, address: &str, matches: impl Fn(&In) -> bool) -> In {
        if let Some(at) = self
            .backlog
            .iter()
            .position(|f| f.address == address && matches(f))
        {
            return self.backlog.remove(at).expect("present");
        }
        loop {
            let frame = self
                .read(WAIT)
                .await
                .unwrap_or_else(|| panic!("no matching frame for {address:?}: {:?}", self.backlog));
            if frame.address == address && matches(&frame) {
                return frame;
            }
            self.backlog.push_back(frame);
        }
    }

    /// Everything that arrives within `limit`, with the backlog (for a server that is never
    /// quiet: one that pings).
    pub async fn drain_for(&mut self, limit: Duration) -> Vec<In> {
        let mut got: Vec<In> = self.backlog.drain(..).collect();
        let deadline = tokio::time::Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
            match self.read(left).await {
                Some(frame) => got.push(frame),
                None => break,
            }
        }
        got
    }

    /// Everything that arrives until the server has been quiet for `quiet`, with the backlog.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<In> {
        let mut got: Vec<In> = self.backlog.drain(..).collect();
        while let Some(frame) = self.read(quiet).await {
            got.push(frame);
        }
        got
    }

    /// The close code the server closed the socket with.
    pub async fn close_code(&mut self) -> u16 {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.closed.is_none() && tokio::time::Instant::now() < deadline {
            if let Some(frame) = self.read(WAIT).await {
                self.backlog.push_back(frame);
            } else if self.closed.is_none() {
                break;
            }
        }
        self.closed.expect("closed with a code")
    }
}
