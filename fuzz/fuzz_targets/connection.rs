//! The whole server-side state machine of one connection: arbitrary frames (split from the input
//! by a length byte) decoded as a socket would, fed to a real room with an in-memory store,
//! next to a well-behaved peer. Afterwards the room must still answer, and its state must
//! decode.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

// The server's allocator, so the fuzzer exercises what production runs: oversized reservations
// from decoders fail instead of succeeding virtually (see tandem::alloc).
#[global_allocator]
static ALLOCATOR: tandem::alloc::BoundedAlloc = tandem::alloc::BoundedAlloc;
use tandem::config::Config;
use tandem::room::{Peer, RoomCmd};
use tandem::App;
use tandem_crdt_model::protocol;
use tandem_storage::memory::MemStore;
use tokio::sync::{mpsc, oneshot, watch};
use yrs::updates::decoder::Decode;

struct World {
    rt: tokio::runtime::Runtime,
    app: Arc<App>,
    _stop: watch::Sender<bool>,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
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
            App::new(config, Arc::new(MemStore::new(Default::default())), None, rx)
        });
        World {
            rt,
            app,
            _stop: stop,
        }
    })
}

fuzz_target!(
    init: common::init(),
    |data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let room = w.app.rooms.open(&w.app, "fuzz").await.expect("opens");
        let mut peers = Vec::new();
        for id in [1u64, 2] {
            let (tx, rx) = mpsc::channel(1024);
            let (close, close_rx) = watch::channel(None);
            room.join(Peer { id, author: Arc::from("f"), can_write: id == 1, outbound: tx, close })
                .await
                .expect("joins");
            peers.push((rx, close_rx));
        }
        let mut rest = data;
        while let Some((&len, tail)) = rest.split_first() {
            let (frame, next) = tail.split_at(usize::from(len).min(tail.len()));
            rest = next;
            let conn = if frame.first().is_some_and(|b| b & 1 == 1) { 2 } else { 1 };
            if let Ok(messages) = protocol::decode_frame(frame, 1 << 20) {
                if room.send(RoomCmd::Inbound { conn, messages }).await.is_err() {
                    break;
                }
            }
        }
        let (tx, rx) = oneshot::channel();
        if room.send(RoomCmd::State(tx)).await.is_ok() {
            if let Ok(state) = rx.await {
                assert!(yrs::Update::decode_v1(&state).is_ok(), "room state does not decode");
            }
        }
        for id in [1u64, 2] {
            let _ = room.send(RoomCmd::Leave { conn: id }).await;
        }
        drop(peers);
    });
    }
);
