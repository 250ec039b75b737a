//! How long an HTTP connection may take, against the in-process server over raw TCP: a request
//! head dripped a byte at a time, a kept-alive connection left idle, a request body that stops
//! arriving. Each is closed at its bound (`http_head_read_max`, `http_idle_max`) and not before,
//! while what makes progress (event streams, websockets, a neighbour's requests) is untouched.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

const BOUND: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded machine; a close later than the bound plus this is a failure.
const SLACK: Duration = Duration::from_secs(3);

/// Reads until the server closes the connection; returns what it sent and when it closed.
async fn read_until_closed(mut reader: tokio::net::tcp::OwnedReadHalf) -> (Vec<u8>, Instant) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(BOUND + SLACK + WAIT, reader.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return (got, Instant::now()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!("still open long after every bound"),
        }
    }
}

fn assert_closed_at_bound(opened: Instant, closed: Instant, what: &str) {
    let after = closed - opened;
    assert!(
        after >= BOUND,
        "{what}: closed after {after:?}, before the bound"
    );
    assert!(
        after < BOUND + SLACK,
        "{what}: closed after {after:?}, long past the bound"
    );
    eprintln!("{what}: closed after {after:?} (bound {BOUND:?})");
}

// A client sending its request head one byte every 100 ms is closed once `http_head_read_max`
// has passed since the server began waiting for it, without an answer; meanwhile a neighbour's
// requests are served.
#[tokio::test]
async fn a_dripping_head_is_closed_at_its_bound() {
    let s = start(|c| c.timing.http_head_read_max = BOUND).await;
    let opened = Instant::now();
    let (reader, mut writer) = TcpStream::connect(s.addr())
        .await
        .expect("connects")
        .into_split();
    let closed = tokio::spawn(read_until_closed(reader));
    let head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for byte in head {
        if closed.is_finished() || writer.write_all(&[*byte]).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if opened.elapsed() > BOUND / 2 {
            let (status, _, _) = http(s.addr(), "GET", "/health", &[], b"").await;
            assert_eq!(status, 200, "a neighbour is served meanwhile");
        }
    }
    let (answer, closed) = closed.await.expect("reader");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_closed_at_bound(opened, closed, "dripping head");
}

// A kept-alive connection may carry a second request while it is younger than the bound, and
// is closed once it has waited `http_head_read_max` for the next one.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_head_bound() {
    let s = start(|c| c.timing.http_head_read_max = BOUND).await;
    let (reader, mut writer) = TcpStream::connect(s.addr())
        .await
        .expect("connects")
        .into_split();
    let closed = tokio::spawn(read_until_closed(reader));
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    writer.write_all(request).await.expect("first request");
    tokio::time::sleep(BOUND / 2).await;
    writer.write_all(request).await.expect("second request");
    // The second answer is out once the server waits for a third head: the clock starts then.
    let last_answer = Instant::now();
    let (answers, closed) = closed.await.expect("reader");
    let answers = String::from_utf8_lossy(&answers);
    assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "{answers}");
    assert_closed_at_bound(last_answer, closed, "idle keep-alive");
}

// A request whose body stops arriving is closed after `http_idle_max` without a byte; one whose
// body keeps trickling in is not idle and keeps its connection.
#[tokio::test]
async fn a_stalled_body_is_closed_at_the_idle_bound() {
    let s = start(|c| {
        c.timing.http_idle_max = BOUND;
        c.timing.http_head_read_max = Duration::from_secs(30);
    })
    .await;
    let head = b"POST /api/notes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\":";

    let (reader, mut writer) = TcpStream::connect(s.addr())
        .await
        .expect("connects")
        .into_split();
    let closed = tokio::spawn(read_until_closed(reader));
    writer.write_all(head).await.expect("head");
    let stalled = Instant::now();
    let (answer, closed) = closed.await.expect("reader");
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    assert_closed_at_bound(stalled, closed, "stalled body");

    let mut trickle = TcpStream::connect(s.addr()).await.expect("connects");
    trickle.write_all(head).await.expect("head");
    let started = Instant::now();
    while started.elapsed() < BOUND * 3 {
        tokio::time::sleep(BOUND / 4).await;
        trickle
            .write_all(b" ")
            .await
            .expect("a trickling body is not idle");
    }
}

// Event streams and websockets outlive both bounds: the stream's keep-alive comments are
// progress, and a websocket leaves the HTTP bounds at its upgrade.
#[tokio::test]
async fn streams_and_websockets_outlive_the_bounds() {
    let s = start(|c| {
        c.timing.http_idle_max = BOUND;
        c.timing.http_head_read_max = BOUND;
    })
    .await;
    let mut ws = connect_ok(s.addr(), "d").await;
    let mut sse = TcpStream::connect(s.addr()).await.expect("connects");
    sse.write_all(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("writes");
    tokio::time::sleep(BOUND * 3).await;
    still_syncs(&mut ws, 1).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(2).any(|w| w == b":\n") {
        let n = tokio::time::timeout(WAIT, sse.read(&mut buf))
            .await
            .expect("keep-alive in time")
            .expect("reads");
        assert!(n > 0, "the event stream was closed");
        got.extend_from_slice(&buf[..n]);
    }
    let started = Instant::now();
    while started.elapsed() < BOUND * 2 {
        let n = tokio::time::timeout(WAIT, sse.read(&mut buf))
            .await
            .expect("keep-alive in time")
            .expect("reads");
        assert!(n > 0, "the event stream was closed");
    }
}
