//! The room check of the `connection` target: the whole server-side state machine of one
//! connection, which needs the server itself (`--features room`); the other checks
//! (`checks.rs`) need only `tandem-crdt-model`. Shared with `server/tests/fuzz_corpus.rs`.

use std::sync::Arc;

use tandem::config::Config;
use tandem::room::{Member, Receives, RoomCmd};
use tandem::App;
use tandem_crdt_model::protocol;
use tandem_storage::memory::MemStore;
use tokio::sync::{oneshot, watch};
use yrs::updates::decoder::Decode;
use yrs::Update;

use super::checks::decoding;

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
                let (mailbox, reader) = tandem::room::mailbox(1024);
                let member = Member {
                    id,
                    author: Arc::from("f"),
                    can_write: id == 1,
                    mailbox,
                    // The writer asks for acks and stateless messages, as a Hocuspocus member
                    // does; the reader does not, as a y-websocket member.
                    receives: Receives {
                        acks: id == 1,
                        stateless: id == 1,
                    },
                };
                room.join(member).await.expect("joins");
                peers.push(reader);
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
                if let Ok(messages) = protocol::decode_frame(frame, &decoding(conn == 1)) {
                    if room
                        .send(RoomCmd::Inbound {
                            member: conn,
                            messages,
                        })
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
                let _ = room.send(RoomCmd::Leave { member: id }).await;
            }
            drop(peers);
        });
    }
}
