//! Hostile clients at the edge, each next to 50 well-behaved clients in the same room: after
//! every hostile act the hostile socket got its documented answer, and an edit from one
//! well-behaved client still reaches all the others within a bounded time.

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use tandem::auth::Role;
use tandem_crdt_model::protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

const WELL_BEHAVED: usize = 50;
/// Edit-to-everyone latency the room must keep while under attack (generous: a debug build on
/// two cores, fifty sockets).
const LATENCY_MAX: Duration = Duration::from_secs(3);
const ROOM: &str = "hostile/room";

struct Crowd {
    sockets: Vec<Ws>,
    round: u64,
}

impl Crowd {
    async fn join(addr: std::net::SocketAddr, path: &str) -> Crowd {
        let mut sockets = Vec::with_capacity(WELL_BEHAVED);
        for _ in 0..WELL_BEHAVED {
            sockets.push(connect_ok(addr, path).await);
        }
        Crowd { sockets, round: 0 }
    }

    /// One member edits; every member must receive that exact update within `LATENCY_MAX`.
    async fn still_syncs(&mut self, what: &str) {
        self.round += 1;
        let frame = edit(10_000 + self.round, &format!("round {}", self.round));
        let started = Instant::now();
        self.sockets[0]
            .send(Message::binary(frame.clone()))
            .await
            .expect("sends");
        for (i, ws) in self.sockets.iter_mut().enumerate() {
            let deadline = started + LATENCY_MAX;
            loop {
                let next = tokio::time::timeout_at(deadline.into(), ws.next())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("after {what}: member {i} waited over {LATENCY_MAX:?}")
                    });
                match next {
                    Some(Ok(Message::Binary(b))) if b[..] == frame[..] => break,
                    Some(Ok(_)) => {}
                    other => panic!("after {what}: member {i} lost its socket: {other:?}"),
                }
            }
        }
        eprintln!(
            "after {what}: all {WELL_BEHAVED} received in {:?}",
            started.elapsed()
        );
    }
}

fn big_edit(client: u64, bytes: usize) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, &"b".repeat(bytes));
    let u = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    protocol::encode_update(&u)
}

/// This process's resident memory (the server runs in it).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// A websocket spoken byte by byte, to send what no client library would: frame headers that
/// lie about their length, endless fragments. Client frames are masked with the zero key, which
/// RFC 6455 allows and which leaves the payload as it is.
struct RawWs {
    tcp: tokio::net::TcpStream,
}

impl RawWs {
    /// Connects and sends the upgrade request for `/sync/<path>`; the response is not read.
    async fn request(addr: std::net::SocketAddr, path: &str) -> RawWs {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connects");
        RawWs::request_on(tcp, path).await
    }

    /// An upgraded websocket on `/sync/<path>`.
    async fn open(addr: std::net::SocketAddr, path: &str) -> RawWs {
        RawWs::request(addr, path).await.read_upgrade().await
    }

    /// An upgraded websocket that will never read again, with a 4 KiB receive buffer (a phone
    /// on a bad network): what the server sends it soon fills the kernel's buffers.
    async fn stalled(addr: std::net::SocketAddr, path: &str) -> RawWs {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let tcp = socket.connect(addr).await.expect("connects");
        RawWs::request_on(tcp, path).await.read_upgrade().await
    }

    async fn request_on(mut tcp: tokio::net::TcpStream, path: &str) -> RawWs {
        let request = format!(
            "GET /sync/{path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.expect("writes");
        RawWs { tcp }
    }

    /// Reads the upgrade response (byte by byte, so no websocket frame is read with it).
    async fn read_upgrade(mut self) -> RawWs {
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            self.tcp
                .read_exact(&mut byte)
                .await
                .expect("upgrade response");
            head.push(byte[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        self
    }

    /// Writes a masked frame header declaring `len` payload bytes (in the shortest length
    /// encoding, as RFC 6455 asks); false once the peer is gone.
    async fn header(&mut self, first_byte: u8, len: u64) -> bool {
        let mut header = vec![first_byte];
        match (u8::try_from(len), u16::try_from(len)) {
            (Ok(short), _) if short < 126 => header.push(0x80 | short),
            (_, Ok(medium)) => {
                header.push(0x80 | 126);
                header.extend_from_slice(&medium.to_be_bytes());
            }
            _ => {
                header.push(0x80 | 127);
                header.extend_from_slice(&len.to_be_bytes());
            }
        }
        header.extend_from_slice(&[0, 0, 0, 0]);
        self.write(&header).await
    }

    async fn write(&mut self, bytes: &[u8]) -> bool {
        self.tcp.write_all(bytes).await.is_ok()
    }

    /// Reads the server's frames until its close frame; returns the close code (`None` if the
    /// connection ended without one).
    async fn close_code(&mut self) -> Option<u16> {
        let read = async {
            loop {
                let mut head = [0u8; 2];
                self.tcp.read_exact(&mut head).await.ok()?;
                let len = match head[1] & 0x7f {
                    126 => u64::from(self.tcp.read_u16().await.ok()?),
                    127 => self.tcp.read_u64().await.ok()?,
                    n => u64::from(n),
                };
                let mut payload = vec![0u8; usize::try_from(len).ok()?];
                self.tcp.read_exact(&mut payload).await.ok()?;
                if head[0] & 0x0f == 0x8 {
                    return Some(u16::from_be_bytes([*payload.first()?, *payload.get(1)?]));
                }
            }
        };
        tokio::time::timeout(WAIT, read).await.ok().flatten()
    }
}

#[tokio::test]
async fn hostile_clients_do_not_disturb_fifty_neighbours() {
    let s = start(|c| {
        c.limits.frame_size_max_bytes = 256 * 1024;
        c.limits.doc_size_max_bytes = 4 * 1024 * 1024;
        c.limits.outbound_queue_len_max = 16;
        c.limits.messages_per_sec_per_conn = 200;
        c.limits.messages_burst_per_conn = 400;
        c.timing.write_stall_max = Duration::from_secs(2);
        c.timing.close_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = s.addr();
    let awareness = |client: u64, clock: u32, json: &str| {
        use yrs::encoding::write::Write;
        let mut payload = Vec::new();
        payload.write_var(1u32);
        payload.write_var(client);
        payload.write_var(clock);
        payload.write_string(json);
        let mut frame = vec![protocol::MSG_AWARENESS];
        Write::write_buf(&mut frame, &payload);
        frame
    };
    let mut crowd = Crowd::join(addr, ROOM).await;
    crowd.still_syncs("joining").await;

    // Oversized frame: 1009.
    let mut h = connect_ok(addr, ROOM).await;
    h.send(Message::binary(vec![0u8; 256 * 1024 + 1]))
        .await
        .expect("sends");
    assert_eq!(close_code(&mut h).await, 1009);
    crowd.still_syncs("an oversized frame").await;

    // Frames that claim a gigabyte, and messages fragmented far past the limit (each fragment
    // under it): 1009 as soon as the header or the fragment crossing the limit arrives, before
    // the rest is buffered, so twenty such sockets sending 8 MiB each leave memory where it was.
    let rss_before = rss_bytes();
    for i in 0..20 {
        let mut raw = RawWs::open(addr, ROOM).await;
        if i % 2 == 0 {
            raw.header(0x82, 1 << 30).await;
        } else {
            raw.header(0x02, 128 * 1024).await;
        }
        let chunk = vec![0u8; 128 * 1024];
        for _ in 0..64 {
            if !raw.write(&chunk).await || (i % 2 == 1 && !raw.header(0x00, 128 * 1024).await) {
                break; // the server has closed the connection
            }
        }
        assert_eq!(raw.close_code().await, Some(1009), "socket {i}");
    }
    let growth = rss_bytes().saturating_sub(rss_before);
    eprintln!("20 sockets sending 8 MiB past the limit: RSS grew by {growth} bytes");
    assert!(growth < 32 << 20, "RSS grew by {growth} bytes");
    crowd
        .still_syncs("frames and messages past the limit")
        .await;

    // Text frame: 1003. Undecodable binary: 1007.
    for (frame, code) in [
        (Message::text("hi"), 1003),
        (Message::binary(vec![0, 2, 9, 9]), 1007),
    ] {
        let mut h = connect_ok(addr, ROOM).await;
        h.send(frame).await.expect("sends");
        assert_eq!(close_code(&mut h).await, code);
    }
    crowd.still_syncs("text and undecodable frames").await;

    // Unknown message type: ignored, the socket stays usable.
    let mut h = connect_ok(addr, ROOM).await;
    h.send(Message::binary(vec![42, 1, 0]))
        .await
        .expect("sends");
    still_syncs(&mut h, 500).await;
    crowd.still_syncs("an unknown message type").await;

    // An update that would push the document over its size limit: 4413, nothing stored.
    let mut h = connect_ok(addr, ROOM).await;
    let mut closed = None;
    for i in 0..40u64 {
        if h.send(Message::binary(big_edit(600 + i, 200 * 1024)))
            .await
            .is_err()
        {
            break;
        }
        if let Ok(Some(Ok(Message::Close(Some(f))))) =
            tokio::time::timeout(Duration::from_millis(50), async {
                loop {
                    match h.next().await {
                        Some(Ok(Message::Binary(_))) => continue,
                        other => return other,
                    }
                }
            })
            .await
        {
            closed = Some(u16::from(f.code));
            break;
        }
    }
    assert_eq!(closed, Some(4413), "document size limit");
    crowd
        .still_syncs("an update past the document size limit")
        .await;

    // A slow reader: never reads while the room sends it large frames; it is closed (4001)
    // within seconds of overflowing its queue, and nobody else waits for it.
    // A small receive buffer, as a phone on a bad network has: the kernel cannot hide the
    // backlog, so it builds up in the server's queue for this socket.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let stream = socket.connect(addr).await.expect("connects");
    let (slow, _) =
        tokio_tungstenite::client_async(format!("ws://{addr}/sync/hostile/slow"), stream)
            .await
            .expect("upgrade");
    let mut writer = connect_ok(addr, "hostile/slow").await;
    // 3 MB of updates in 30 frames, to a document of its own (under its size limit): more
    // frames than the slow socket's queue holds.
    let started = Instant::now();
    for i in 0..30u64 {
        writer
            .send(Message::binary(big_edit(800 + i, 100 * 1024)))
            .await
            .expect("sends");
        // Drain the writer's own echoes so that only `slow` falls behind.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(5), writer.next()).await
        {
        }
    }
    let stats_say_closed = async {
        loop {
            let (_, _, body) = http(addr, "GET", "/api/stats", &[], b"").await;
            let stats: serde_json::Value = serde_json::from_slice(&body).expect("json");
            if stats["per_room"]["hostile/slow"] == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), stats_say_closed)
        .await
        .expect("slow reader closed within seconds");
    eprintln!("slow reader closed after {:?}", started.elapsed());
    crowd.still_syncs("a slow reader").await;
    // The server also let go of the socket itself: reading now drains what the kernel held and
    // then meets the end of the connection (a close frame, or the TCP stream ending).
    let mut slow = slow;
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the slow reader's connection was never ended"
    );

    // A flood: closed by the rate limit (4429).
    let mut h = connect_ok(addr, ROOM).await;
    for _ in 0..1000 {
        if h.send(Message::binary(vec![3])).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut h).await, 4429);
    crowd.still_syncs("a flood").await;

    // Awareness spoofing: a member's presence cannot be overwritten by another socket.
    crowd.sockets[1]
        .send(Message::binary(awareness(4242, 1, r#"{"name":"real"}"#)))
        .await
        .expect("sends");
    let mut h = connect_ok(addr, ROOM).await;
    h.send(Message::binary(awareness(4242, 99, r#"{"name":"spoof"}"#)))
        .await
        .expect("sends");
    h.send(Message::binary(vec![protocol::MSG_QUERY_AWARENESS]))
        .await
        .expect("sends");
    let states = recv_with(&mut h, &[protocol::MSG_AWARENESS]).await;
    let text = String::from_utf8_lossy(&states).to_string();
    assert!(text.contains("real") && !text.contains("spoof"), "{text}");
    crowd.still_syncs("awareness spoofing").await;
}

// With authentication on, bytes sent before the upgrade completes (a websocket frame pipelined
// behind an unauthenticated upgrade request) are never applied: the request gets 401 and the
// connection ends, while 50 authenticated clients of the same document keep syncing.
#[tokio::test]
async fn frames_before_authentication_are_not_applied() {
    let s = start(with_auth).await;
    let addr = s.addr();
    let crowd_token = token("crowd", &[("auth/**", Role::Write)], 60);
    let mut crowd = Crowd::join(addr, &format!("auth/doc?token={crowd_token}")).await;
    crowd.still_syncs("joining").await;
    // A binary frame carrying an update, written right behind the upgrade request.
    let payload = edit(1, "smuggled");
    let mut raw = RawWs::request(addr, "auth/doc").await;
    let len = u64::try_from(payload.len()).expect("fits");
    assert!(raw.header(0x82, len).await && raw.write(&payload).await);
    let mut response = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.tcp.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response).to_string();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    crowd
        .still_syncs("a frame pipelined behind an unauthenticated upgrade")
        .await;
    let token = token("w", &[("auth/**", Role::Write)], 60);
    let mut ws = connect_ok(addr, &format!("auth/doc?token={token}")).await;
    send(
        &mut ws,
        protocol::encode_sync_step1(&StateVector::default()),
    )
    .await;
    let step2 = recv_with(&mut ws, &[0, 1]).await;
    assert!(
        !step2.windows(8).any(|w| w == b"smuggled"),
        "a pre-auth frame was applied"
    );
}

/// `/api/stats` as an admin sees it (with auth on, only admins see document names).
async fn stats(addr: std::net::SocketAddr) -> serde_json::Value {
    let admin = format!("Bearer {}", token("ops", &[("**", Role::Admin)], 60));
    let (_, _, body) = http(addr, "GET", "/api/stats", &[("authorization", &admin)], b"").await;
    serde_json::from_slice(&body).expect("json")
}

/// Polls `/api/stats` every 20 ms until `done` holds for it; when it did, or `None` by `deadline`.
async fn stats_until(
    addr: std::net::SocketAddr,
    deadline: Instant,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Option<Instant> {
    while Instant::now() < deadline {
        if done(&stats(addr).await) {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

// Twenty sockets join a document and never read again, while a writer pushes 6.4 MB of updates:
// more than the kernel buffers of each stalled socket hold (4 KiB receive buffer, at most 4 MiB
// of send buffer), in fewer frames than the outbound queue holds, so only the write-stall timer
// can notice them. Each must be detached from the room within `write_stall_max` (plus a margin
// for a debug build on a busy machine) of the last update, its connection and user slots given
// back, while two readers of the same document receive every update.
#[tokio::test]
async fn stalled_readers_are_detached_after_write_stall_max() {
    const STALLED: usize = 20;
    const UPDATES: u64 = 100;
    const STALL: Duration = Duration::from_secs(2);
    const MARGIN: Duration = Duration::from_secs(3);
    let s = start(|c| {
        with_auth(c);
        c.timing.write_stall_max = STALL;
        c.timing.close_timeout = Duration::from_secs(1);
        // Every socket of the test and no more: a slot kept by a stalled socket refuses the next.
        c.limits.connections_max = STALLED + 3;
        c.limits.sockets_per_user_max = STALLED;
    })
    .await;
    let addr = s.addr();
    let doc = "stall/doc";
    let stalled_path = format!(
        "{doc}?token={}",
        token("idle", &[("stall/**", Role::Read)], 60)
    );
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        stalled.push(RawWs::stalled(addr, &stalled_path).await);
    }
    let writer = connect_ok(
        addr,
        &format!("{doc}?token={}", token("w", &[(doc, Role::Write)], 60)),
    )
    .await;
    let reader_token = token("r", &[(doc, Role::Read)], 60);
    let mut readers = Vec::new();
    for _ in 0..2 {
        let mut ws = connect_ok(addr, &format!("{doc}?token={reader_token}")).await;
        // Each reader counts the updates it receives, reading all the while, and stays.
        readers.push(tokio::spawn(async move {
            let mut received = 0;
            while received < UPDATES {
                if recv_with(&mut ws, &[0, 2]).await.len() > 64 * 1024 {
                    received += 1;
                }
            }
            (received, ws)
        }));
    }
    let everyone = STALLED + 3;
    stats_until(addr, Instant::now() + WAIT, |s| {
        s["per_room"][doc] == everyone
    })
    .await
    .expect("everyone joined");

    // The writer reads its own echoes (acknowledgements) so that only the idle sockets stall.
    let (mut sink, mut echoes) = writer.split();
    let drain = tokio::spawn(async move { while let Some(Ok(_)) = echoes.next().await {} });
    let started = Instant::now();
    for i in 0..UPDATES {
        let frame = big_edit(1_000 + i, 64 * 1024);
        sink.send(Message::binary(frame)).await.expect("sends");
    }
    let pushed = Instant::now();
    eprintln!("{UPDATES} updates pushed in {:?}", pushed - started);
    let detached = stats_until(addr, pushed + STALL + MARGIN, |s| s["per_room"][doc] == 3).await;
    let left = stats(addr).await["per_room"][doc].clone();
    let detached = detached.unwrap_or_else(|| {
        panic!(
            "{left} sockets attached {:?} after the last update",
            STALL + MARGIN
        )
    });
    eprintln!(
        "{STALLED} stalled sockets detached {:?} after the last update (write_stall_max {STALL:?})",
        detached - pushed
    );
    let mut kept = Vec::new();
    for reader in readers {
        let (received, ws) = tokio::time::timeout(WAIT, reader)
            .await
            .expect("in time")
            .expect("reader");
        assert_eq!(received, UPDATES);
        kept.push(ws);
    }

    // The readers still receive what is written after the detachment.
    let last = edit(2_000, "after");
    sink.send(Message::binary(last.clone()))
        .await
        .expect("sends");
    for ws in &mut kept {
        while recv_with(ws, &[0, 2]).await != last {}
    }

    // The slots are back: the close handshakes end within close_timeout, and then as many new
    // sockets of the same user as before are accepted at once, up to connections_max, while the
    // stalled sockets are still open on our side.
    stats_until(addr, Instant::now() + WAIT, |s| s["connections"] == 3)
        .await
        .expect("the stalled connections are gone");
    let mut again = Vec::new();
    for i in 0..STALLED {
        let ws = connect(addr, &stalled_path)
            .await
            .unwrap_or_else(|e| panic!("socket {i} after the release: {e}"));
        again.push(ws);
    }
    assert_eq!(stalled.len(), STALLED);
    drain.abort();
}
