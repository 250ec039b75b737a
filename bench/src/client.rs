//! Cheap protocol clients. Readers never decode updates: the writer tags each edit with a marker
//! (`@@<seq>|` in the inserted text, which Yjs encodes verbatim) and readers scan frames for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::{SinkExt, StreamExt};
use tandem_crdt_model::protocol;
use tokio_tungstenite::tungstenite::Message;
use yrs::{Doc, StateVector, Text, Transact};

use crate::peers::{Dialect, Running, Target};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A connected client of one document.
pub struct Client {
    pub socket: Socket,
    dialect: Dialect,
    doc: String,
}

fn var_uint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let byte = u8::try_from(n & 0x7f).unwrap_or(0);
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn var_string(out: &mut Vec<u8>, s: &str) {
    var_uint(out, u64::try_from(s.len()).unwrap_or(0));
    out.extend_from_slice(s.as_bytes());
}

/// One y-protocols message as a frame of `dialect` for `doc`.
pub fn frame_for(dialect: Dialect, doc: &str, message: Vec<u8>) -> Vec<u8> {
    match dialect {
        Dialect::YWebsocket => message,
        Dialect::Hocuspocus => {
            let mut f = Vec::with_capacity(message.len() + doc.len() + 2);
            var_string(&mut f, doc);
            f.extend_from_slice(&message);
            f
        }
    }
}

impl Client {
    /// Connects and completes what the dialect needs before updates flow: the first frame from
    /// the server (its SyncStep1, or Hocuspocus' "authenticated").
    pub async fn connect(server: &Target, doc: &str) -> anyhow::Result<Client> {
        let (socket, _) = tokio_tungstenite::connect_async(server.url(doc))
            .await
            .with_context(|| format!("connecting to {}", server.kind.name()))?;
        let mut client = Client {
            socket,
            dialect: server.kind.dialect(),
            doc: doc.to_string(),
        };
        if client.dialect == Dialect::Hocuspocus {
            let mut auth = Vec::new();
            var_string(&mut auth, doc);
            auth.extend_from_slice(&[2, 0]); // Auth, token
            var_string(&mut auth, "bench");
            client.socket.send(Message::binary(auth)).await?;
        }
        client
            .send(protocol::encode_sync_step1(&StateVector::default()))
            .await?;
        tokio::time::timeout(Duration::from_secs(30), client.next_binary())
            .await
            .context("no first frame from the server in 30 s")??;
        Ok(client)
    }

    /// A client on an open socket, with no handshake sent yet.
    pub fn from_socket(socket: Socket, server: &Running, doc: &str) -> Client {
        Client {
            socket,
            dialect: server.kind.dialect(),
            doc: doc.to_string(),
        }
    }

    /// Sends one y-protocols message (framed for the dialect).
    pub async fn send(&mut self, message: Vec<u8>) -> anyhow::Result<()> {
        let frame = self.frame(message);
        self.socket.send(Message::binary(frame)).await?;
        Ok(())
    }

    fn frame(&self, message: Vec<u8>) -> Vec<u8> {
        frame_for(self.dialect, &self.doc, message)
    }

    pub async fn next_binary(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            match self.socket.next().await {
                Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
                Some(Ok(Message::Close(_))) | None => bail!("the server closed the socket"),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// Waits for a frame that is the payload of a sync step 2 (tag `[0, 1]` after any address).
    pub async fn until_sync_step2(&mut self) -> anyhow::Result<usize> {
        loop {
            let frame = self.next_binary().await?;
            let body = match self.dialect {
                Dialect::YWebsocket => &frame[..],
                Dialect::Hocuspocus => skip_address(&frame),
            };
            if body.starts_with(&[0, 1]) {
                return Ok(frame.len());
            }
        }
    }
}

/// The y-protocols message of a Hocuspocus frame (after its document name).
pub fn skip_address(frame: &[u8]) -> &[u8] {
    let mut len = 0usize;
    let mut shift = 0;
    let mut i = 0;
    while let Some(b) = frame.get(i) {
        len |= usize::from(b & 0x7f) << shift;
        shift += 7;
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    frame.get(i + len..).unwrap_or_default()
}

/// Seqs of every `@@<seq>|` marker in a frame.
pub fn markers(frame: &[u8], out: &mut Vec<u32>) {
    let mut i = 0;
    while i + 2 < frame.len() {
        if frame[i] == b'@' && frame[i + 1] == b'@' {
            let mut j = i + 2;
            let mut n: u32 = 0;
            let mut digits = 0;
            while let Some(d) = frame.get(j).filter(|d| d.is_ascii_digit()) {
                n = n.wrapping_mul(10).wrapping_add(u32::from(d - b'0'));
                j += 1;
                digits += 1;
            }
            if digits > 0 && frame.get(j) == Some(&b'|') {
                out.push(n);
                i = j + 1;
                continue;
            }
        }
        i += 1;
    }
}

/// Makes tagged edits: each `edit(seq)` is one small Yjs update appending `@@<seq>|`.
pub struct Writer {
    doc: Doc,
    len: u32,
}

impl Writer {
    pub fn new() -> Writer {
        Writer {
            doc: Doc::new(),
            len: 0,
        }
    }

    pub fn edit(&mut self, seq: u32) -> Vec<u8> {
        let text = self.doc.get_or_insert_text("t");
        let mut txn = self.doc.transact_mut();
        let tag = format!("@@{seq}|");
        text.insert(&mut txn, self.len, &tag);
        self.len += u32::try_from(tag.len()).unwrap_or(0);
        protocol::encode_update(&txn.encode_update_v1())
    }

    /// Everything written so far as one update: what a reconnecting client sends so the server
    /// has whatever the old one never acknowledged.
    pub fn state(&self) -> Vec<u8> {
        use yrs::ReadTxn;
        let update = self
            .doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        protocol::encode_update(&update)
    }
}

/// Send times of edits, shared between a writer and its readers.
pub struct Clock {
    start: Instant,
    sent_ns: Vec<std::sync::atomic::AtomicU64>,
}

impl Clock {
    pub fn new(n: usize) -> Arc<Clock> {
        Arc::new(Clock {
            start: Instant::now(),
            sent_ns: (0..n)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        })
    }

    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub fn sent(&self, seq: u32) {
        if let Some(slot) = self.sent_ns.get(seq as usize) {
            slot.store(self.now_ns(), std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Microseconds from the send of `seq` to now.
    pub fn latency_us(&self, seq: u32) -> Option<u64> {
        let sent = self
            .sent_ns
            .get(seq as usize)?
            .load(std::sync::atomic::Ordering::Relaxed);
        (sent > 0).then(|| self.now_ns().saturating_sub(sent) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_an_encoded_update() {
        let mut w = Writer::new();
        let frame = w.edit(42);
        let mut found = Vec::new();
        markers(&frame, &mut found);
        assert_eq!(found, [42]);
        let mut found = Vec::new();
        markers(b"xx@@7|@@12|@@3x@@|", &mut found);
        assert_eq!(found, [7, 12]);
    }

    #[test]
    fn hocuspocus_address_is_skipped() {
        let mut f = Vec::new();
        var_string(&mut f, "doc/a");
        f.extend_from_slice(&[0, 1, 9]);
        assert_eq!(skip_address(&f), &[0, 1, 9]);
    }
}
