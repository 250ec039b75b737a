//! What each fuzz target feeds and checks. Shared by the targets (`fuzz_targets/*.rs`) and by
//! `server/tests/fuzz_corpus.rs`, which replays every committed input of `fuzz/corpus/` (seeds
//! and past crashes) in the ordinary test run: a crash becomes a regression test by copying it
//! there.
//!
//! Every check runs code exactly as the server does: frames are bounded before decoding, every
//! `yrs` call is guarded, and a room never applies an update it cannot integrate completely.

// Each fuzz target uses one of these checks; the replay test uses them all.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use tandem::config::Config;
use tandem::room::{Peer, RoomCmd};
use tandem::App;
use tandem_crdt_model::protocol;
use tandem_storage::memory::MemStore;
use tokio::sync::{mpsc, oneshot, watch};
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact, Update};

/// The largest frame the checks accept, as a server configured with 1 MiB frames would.
const FRAME_SIZE_MAX_BYTES: usize = 1 << 20;

/// The allocator bound a server with default limits uses (16 MiB frames, 64 MiB documents).
/// Callers install `tandem::alloc::BoundedAlloc` as their global allocator.
pub fn bound_allocations() {
    tandem::alloc::set_single_allocation_max(16 << 20, 64 << 20);
}

/// The wire decoder on arbitrary bytes: it returns, never panics, never allocates what a length
/// prefix claims (the bounded allocator refuses it).
pub fn decode_frame(data: &[u8]) {
    let _ = protocol::decode_frame(data, FRAME_SIZE_MAX_BYTES);
}

/// Arbitrary bytes as an update to a document that already holds content, decided on as a room
/// decides; an update the room accepts must leave a document that encodes and decodes.
pub fn apply_update(data: &[u8]) {
    // As in a room: the content came from remote clients (client 1 here), the server's own
    // client ID never wrote anything.
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let author = Doc::with_client_id(1);
        author
            .get_or_insert_text("t")
            .insert(&mut author.transact_mut(), 0, "base content");
        let base = author
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        base
    });
    let doc = Doc::with_client_id(0x5e_77e2);
    tandem::room::apply_guarded(&doc, Update::decode_v1(base).expect("base decodes"))
        .expect("base applies");

    let Ok((update, requires)) = protocol::decode_update(data) else {
        return;
    };
    if tandem::room::has_gap(&doc, &requires) {
        return;
    }
    // A refused update is discarded by the room, which rebuilds the document from the store.
    if tandem::room::apply_guarded(&doc, update).is_ok() {
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(
            Update::decode_v1(&state).is_ok(),
            "accepted update left an undecodable state"
        );
    }
}

/// The whole server-side state machine of one connection: a real room with an in-memory store,
/// kept across inputs (as a long-lived room is), and two sockets, one with write access.
pub struct Connection {
    rt: tokio::runtime::Runtime,
    app: Arc<App>,
    _stop: watch::Sender<bool>,
}

impl Connection {
    pub fn new() -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (stop, rx) = watch::channel(false);
        let app = rt.block_on(async {
            let mut config =
                Config::new("127.0.0.1:0".parse().expect("addr"), std::env::temp_dir());
            config.limits.doc_size_max_bytes = 1 << 20;
            config.timing.room_idle_grace = std::time::Duration::ZERO;
            App::new(
                config,
                Arc::new(MemStore::new(Default::default())),
                None,
                rx,
            )
        });
        Connection {
            rt,
            app,
            _stop: stop,
        }
    }

    /// Arbitrary frames, split from `data` by a length byte, decoded as a socket would and sent
    /// to the room from either socket (the frame's first bit picks which). Afterwards the room
    /// must still answer, and its state must decode.
    pub fn run(&self, data: &[u8]) {
        self.rt.block_on(async {
            let room = self.app.rooms.open(&self.app, "fuzz").await.expect("opens");
            let mut peers = Vec::new();
            for id in [1u64, 2] {
                let (tx, rx) = mpsc::channel(1024);
                let (close, close_rx) = watch::channel(None);
                let peer = Peer {
                    id,
                    author: Arc::from("f"),
                    can_write: id == 1,
                    outbound: tx,
                    close,
                };
                room.join(peer).await.expect("joins");
                peers.push((rx, close_rx));
            }
            let mut rest = data;
            while let Some((&len, tail)) = rest.split_first() {
                let (frame, next) = tail.split_at(usize::from(len).min(tail.len()));
                rest = next;
                let conn = if frame.first().is_some_and(|b| b & 1 == 1) {
                    2
                } else {
                    1
                };
                if let Ok(messages) = protocol::decode_frame(frame, FRAME_SIZE_MAX_BYTES) {
                    if room
                        .send(RoomCmd::Inbound { conn, messages })
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            }
            let (tx, rx) = oneshot::channel();
            if room.send(RoomCmd::State(tx)).await.is_ok() {
                if let Ok(state) = rx.await {
                    assert!(
                        Update::decode_v1(&state).is_ok(),
                        "room state does not decode"
                    );
                }
            }
            for id in [1u64, 2] {
                let _ = room.send(RoomCmd::Leave { conn: id }).await;
            }
            drop(peers);
        });
    }
}
