//! The burst from one Yjs writer: one client types `edits` single characters as fast as its
//! socket takes them, one Yjs update message per keystroke (what a Yjs provider sends for one
//! transaction each), while `readers` readers count the characters that reach them.
//!
//! A server may merge a burst's updates before broadcasting them (Hocuspocus does, tandem merges
//! what one group commit made durable), so a reader cannot count frames: it counts the inserted
//! characters in every update it receives, scanning the Yjs v1 encoding without building a
//! document ([`inserted_chars`]). A delivery is one (edit, reader) pair a reader saw.

use std::time::Instant;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tandem_crdt_model::protocol;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use yrs::{Text, Transact};

use crate::client::{frame_for, skip_address, Client};
use crate::peers::{cpu_seconds, memory, Dialect, Running};
use crate::scenarios::{connect_many, mib, Figures, STEP_TIMEOUT};

pub async fn burst(server: &Running, readers: usize, edits: u32) -> anyhow::Result<Figures> {
    let doc = "bench/burst".to_string();
    let clients = connect_many(server, &vec![doc.clone(); readers]).await?;
    let writer = Client::connect(&server.clone_target(), &doc).await?;
    let dialect = server.kind.dialect();
    let mut set = JoinSet::new();
    for mut reader in clients {
        set.spawn(async move {
            let (mut seen, mut frames) = (0u64, 0u64);
            while seen < u64::from(edits) {
                let frame = reader.next_binary().await?;
                frames += 1;
                seen += update_of(&frame, dialect).map_or(0, inserted_chars);
            }
            anyhow::Ok(frames)
        });
    }
    let (mut sink, mut stream) = writer.socket.split();
    // The writer reads what it is sent, as a provider does (its echoes would otherwise fill the
    // server's queue for it), and its one document is a real Yjs document.
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let ydoc = yrs::Doc::new();
    let text = ydoc.get_or_insert_text("t");
    let cpu_before = cpu_seconds(server.pid);
    let start = Instant::now();
    for i in 0..edits {
        let update = keystroke(&ydoc, &text, i);
        sink.send(Message::binary(frame_for(
            dialect,
            &doc,
            protocol::encode_update(&update),
        )))
        .await?;
    }
    let mut frames = Vec::with_capacity(readers);
    let deadline = tokio::time::Instant::now() + STEP_TIMEOUT;
    while let Some(r) = tokio::time::timeout_at(deadline, set.join_next())
        .await
        .context("readers did not receive every edit in time")?
    {
        frames.push(r??);
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.pid) - cpu_before;
    drain.abort();
    let (_, peak) = memory(server.pid);
    #[allow(clippy::cast_precision_loss)]
    let (deliveries, frames_per_reader) = (
        f64::from(edits) * readers as f64,
        frames.iter().sum::<u64>() as f64 / readers.max(1) as f64,
    );
    Ok(Figures::from([
        ("deliveries_per_s".into(), deliveries / elapsed),
        ("frames_per_reader".into(), frames_per_reader),
        ("server_cpu_s".into(), cpu),
        ("peak_rss_mib".into(), mib(peak)),
    ]))
}

/// The `i`-th keystroke of the burst: one letter typed at the end of `text`, as its own
/// transaction; its Yjs update.
fn keystroke(doc: &yrs::Doc, text: &yrs::TextRef, i: u32) -> Vec<u8> {
    let mut txn = doc.transact_mut();
    let c = char::from(b'a' + u8::try_from(i % 26).unwrap_or(0));
    text.insert(&mut txn, i, c.encode_utf8(&mut [0; 4]));
    txn.encode_update_v1()
}

/// The Yjs update carried by a sync message (SyncStep2 or Update), if the frame holds one.
fn update_of(frame: &[u8], dialect: Dialect) -> Option<&[u8]> {
    let body = match dialect {
        Dialect::YWebsocket => frame,
        Dialect::Hocuspocus => skip_address(frame),
    };
    let mut r = Reader(body);
    if r.uint()? != 0 || !matches!(r.uint()?, 1 | 2) {
        return None;
    }
    r.bytes()
}

/// The characters an update inserts (UTF-8 bytes; the burst types ASCII only), read from its v1
/// encoding: struct headers and string contents, never a document. 0 when it holds content the
/// burst never makes.
pub fn inserted_chars(update: &[u8]) -> u64 {
    let mut r = Reader(update);
    count(&mut r).unwrap_or(0)
}

fn count(r: &mut Reader) -> Option<u64> {
    let mut chars = 0;
    for _ in 0..r.uint()? {
        let structs = r.uint()?;
        let (_client, _clock) = (r.uint()?, r.uint()?);
        for _ in 0..structs {
            let info = r.byte()?;
            match info & 0x1f {
                0 | 10 => {
                    r.uint()?; // GC or Skip: a length
                }
                kind => {
                    let (origin, right) = (info & 0x80 != 0, info & 0x40 != 0);
                    if origin {
                        r.uint()?;
                        r.uint()?;
                    }
                    if right {
                        r.uint()?;
                        r.uint()?;
                    }
                    if !origin && !right {
                        if r.uint()? == 1 {
                            r.bytes()?; // a root type's name
                        } else {
                            r.uint()?;
                            r.uint()?;
                        }
                        if info & 0x20 != 0 {
                            r.bytes()?; // parent sub (a map key)
                        }
                    }
                    match kind {
                        1 => {
                            r.uint()?; // deleted content: a length
                        }
                        4 => chars += u64::try_from(r.bytes()?.len()).ok()?,
                        _ => return None,
                    }
                }
            }
        }
    }
    Some(chars)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn uint(&mut self) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(n);
            }
        }
        None
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.uint()?).ok()?;
        let (head, rest) = (self.0.get(..len)?, self.0.get(len..)?);
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(n: u32) -> Vec<Vec<u8>> {
        let doc = yrs::Doc::new();
        let text = doc.get_or_insert_text("t");
        (0..n).map(|i| keystroke(&doc, &text, i)).collect()
    }

    #[test]
    fn one_keystroke_is_one_char() {
        for update in typed(30) {
            assert_eq!(inserted_chars(&update), 1);
        }
    }

    #[test]
    fn a_merged_burst_counts_every_keystroke() {
        let updates = typed(300);
        let merged = yrs::merge_updates_v1(&updates).expect("merges");
        assert_eq!(inserted_chars(&merged), 300);
        let frame = protocol::encode_update(&merged);
        assert_eq!(
            update_of(&frame, Dialect::YWebsocket).map(inserted_chars),
            Some(300)
        );
    }
}
