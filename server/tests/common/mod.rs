//! Shared by the integration tests: the real server started in-process on 127.0.0.1:0 with a
//! temporary data directory, a real websocket client, a minimal HTTP client, and tokens.
#![allow(dead_code)] // each test file uses its own subset

pub mod hocuspocus;

use std::process::Child;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tandem::auth::{mint_hs256, Claims, Role, Verifier};
use tandem::config::Config;
use tandem::Server;
use tandem_crdt_model::protocol;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yrs::{Doc, ReadTxn, StateVector, Text, Transact};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(10);
pub const SECRET: &[u8] = b"socket-test-secret";

pub struct Running {
    pub server: Option<Server>,
    pub dir: tempfile::TempDir,
}

impl Running {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.as_ref().expect("running").addr
    }
}

pub async fn start(configure: impl FnOnce(&mut Config)) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    start_in(dir, configure).await
}

pub async fn start_in(dir: tempfile::TempDir, configure: impl FnOnce(&mut Config)) -> Running {
    let mut config = Config::new(
        "127.0.0.1:0".parse().expect("addr"),
        dir.path().to_path_buf(),
    );
    configure(&mut config);
    let server = Server::start(config).await.expect("server starts");
    Running {
        server: Some(server),
        dir,
    }
}

pub fn with_auth(config: &mut Config) {
    config.auth = Some(Verifier::hs256(SECRET).with_leeway_s(0));
}

pub fn token(sub: &str, docs: &[(&str, Role)], ttl_s: i64) -> String {
    let now = i64::try_from(tandem::auth::now_s()).expect("time");
    let exp = u64::try_from(now + ttl_s).expect("positive");
    token_with_exp(sub, docs, Some(exp))
}

/// A token with any `exp`, or none.
pub fn token_with_exp(sub: &str, docs: &[(&str, Role)], exp: Option<u64>) -> String {
    let claims = Claims {
        sub: sub.into(),
        name: None,
        docs: docs.iter().map(|(p, r)| (p.to_string(), *r)).collect(),
        exp,
        nbf: None,
        iss: None,
        aud: None,
    };
    mint_hs256(SECRET, &claims).expect("mints")
}

pub async fn connect(addr: std::net::SocketAddr, path: &str) -> Result<Ws, tungstenite::Error> {
    connect_with(addr, path, &[]).await
}

/// A websocket upgrade with extra request headers.
pub async fn connect_with(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Ws, tungstenite::Error> {
    use tungstenite::client::IntoClientRequest;
    use tungstenite::http::{HeaderName, HeaderValue};
    let mut request = format!("ws://{addr}/sync/{path}")
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v).expect("header value"),
        );
    }
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .expect("connect in time")
        .map(|(ws, _)| ws)
}

pub async fn connect_ok(addr: std::net::SocketAddr, path: &str) -> Ws {
    connect(addr, path).await.expect("upgrade accepted")
}

/// The HTTP status of a refused upgrade.
pub async fn refused_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    match connect(addr, path).await {
        Err(tungstenite::Error::Http(resp)) => {
            let body = resp.body().as_deref().unwrap_or_default();
            let json: serde_json::Value = serde_json::from_slice(body).expect("JSON error body");
            assert!(json["error"]["code"].is_string(), "stable code in {json}");
            resp.status().as_u16()
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("upgrade of {path} was accepted"),
    }
}

/// Next binary frame, skipping pings.
pub async fn recv(ws: &mut Ws) -> Vec<u8> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("no error");
        match msg {
            Message::Binary(b) => return b.to_vec(),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => {}
        }
    }
}

pub async fn recv_with(ws: &mut Ws, prefix: &[u8]) -> Vec<u8> {
    loop {
        let f = recv(ws).await;
        if f.starts_with(prefix) {
            return f;
        }
    }
}

/// Reads until the server's close frame; returns its code.
pub async fn close_code(ws: &mut Ws) -> u16 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("closed in time");
        match next {
            Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
            Some(Ok(Message::Close(None))) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
            Some(Err(e)) => panic!("error before close frame: {e}"),
        }
    }
}

pub fn edit(client: u64, text: &str) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, text);
    let update = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    protocol::encode_update(&update)
}

pub async fn send(ws: &mut Ws, frame: Vec<u8>) {
    ws.send(Message::binary(frame)).await.expect("sent");
}

/// A well-behaved client sends an edit and sees its echo: the room still works.
pub async fn still_syncs(ws: &mut Ws, client: u64) {
    let frame = edit(client, "ok");
    send(ws, frame.clone()).await;
    loop {
        if recv_with(ws, &[0, 2]).await == frame {
            return;
        }
    }
}

/// A minimal HTTP/1.1 request; returns (status, headers lowercased, body).
pub async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(addr).await.expect("connects");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    tcp.write_all(req.as_bytes()).await.expect("writes");
    tcp.write_all(body).await.expect("writes body");
    let mut resp = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut resp))
        .await
        .expect("answer in time")
        .expect("reads");
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&resp[..split]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = resp[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

/// The `code` of a JSON error body.
pub fn error_code(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body).expect("JSON error body");
    json["error"]["code"].as_str().expect("a code").to_string()
}

/// The value of a Prometheus gauge or counter from `GET /metrics`.
pub async fn metric(addr: std::net::SocketAddr, name: &str) -> u64 {
    let (_, _, text) = http(addr, "GET", "/metrics", &[], b"").await;
    let text = String::from_utf8_lossy(&text).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} in {text}"))
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A presence frame of one client ID with `json` as its state.
pub fn presence(client: u64, clock: u32, json: &str) -> Vec<u8> {
    let entry = yrs::sync::awareness::AwarenessUpdateEntry {
        clock,
        json: json.into(),
    };
    let update = yrs::sync::awareness::AwarenessUpdate {
        clients: [(yrs::block::ClientID::new(client), entry)]
            .into_iter()
            .collect(),
    };
    protocol::encode_awareness(&update)
}

/// Reads `ws` until a presence frame says `pred` of client `client`'s state; returns when.
pub async fn presence_of(
    ws: &mut Ws,
    client: u64,
    pred: impl Fn(&str) -> bool,
) -> tokio::time::Instant {
    loop {
        let frame = recv_with(ws, &[protocol::MSG_AWARENESS]).await;
        use yrs::encoding::read::Read;
        use yrs::updates::decoder::Decode;
        let mut cursor = yrs::encoding::read::Cursor::new(&frame[1..]);
        let body = cursor.read_buf().expect("framed");
        let update =
            yrs::sync::awareness::AwarenessUpdate::decode_v1(body).expect("presence decodes");
        if update
            .clients
            .get(&yrs::block::ClientID::new(client))
            .is_some_and(|e| pred(&e.json))
        {
            return tokio::time::Instant::now();
        }
    }
}

/// A `redis-server` with its AOF in `dir`, on `port`, ready to answer.
pub fn redis_server(port: u16, dir: &std::path::Path) -> Child {
    let child = tandem_storage::redis_testing::spawn_redis(port, dir, &[]);
    tandem_storage::redis_testing::wait_ready(port);
    child
}

/// A `redis-server` child, killed when dropped.
pub struct Redis(pub Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
