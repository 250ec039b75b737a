//! For the webhook tests: a real HTTP receiver on a loopback port (hyper, keep-alive, like any
//! receiver a user runs) that logs every request and answers it by a plan the test sets and
//! changes; and the real `tandem` binary started as a child process (so it can be killed -9).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::common::http;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

/// How the receiver answers a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Status(u16),
    /// Never answers (the connection stays open until the sender gives up).
    Hang,
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub answer: Answer,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn delivered(&self) -> bool {
        matches!(self.answer, Answer::Status(s) if (200..300).contains(&s))
    }
}

type Plan = Box<dyn FnMut(usize) -> Answer + Send>;

struct State {
    log: Vec<Received>,
    plan: Plan,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// Starts on a free loopback port; `plan(n)` answers the n-th request (from 0).
    pub async fn start(plan: impl FnMut(usize) -> Answer + Send + 'static) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binds");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            log: Vec::new(),
            plan: Box::new(plan),
        }));
        let shared = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let state = Arc::clone(&shared);
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<_>| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, hyper::Error>(answer(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Receiver { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn set_plan(&self, plan: impl FnMut(usize) -> Answer + Send + 'static) {
        self.lock().plan = Box::new(plan);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn log(&self) -> Vec<Received> {
        self.lock().log.clone()
    }

    /// The requests answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Received> {
        self.log().into_iter().filter(Received::delivered).collect()
    }

    /// The first delivery of each `X-Tandem-Delivery`, in arrival order (a receiver's dedupe).
    pub fn deduped(&self) -> Vec<Received> {
        let mut seen = std::collections::HashSet::new();
        self.delivered()
            .into_iter()
            .filter(|r| seen.insert(r.header("x-tandem-delivery").to_string()))
            .collect()
    }

    /// Waits until `n` distinct events were delivered; returns them (deduped).
    pub async fn wait_deduped(&self, n: usize, within: Duration) -> Vec<Received> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.deduped();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events delivered within {within:?}; log: {:?}",
                got.len(),
                self.log()
                    .iter()
                    .map(|r| (r.header("x-tandem-delivery").to_string(), r.answer))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn answer(
    state: &Mutex<State>,
    request: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Full<Bytes>> {
    let headers = request
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let decided = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        let n = state.log.len();
        let decided = (state.plan)(n);
        state.log.push(Received {
            headers,
            body,
            answer: decided,
            at: Instant::now(),
        });
        decided
    };
    match decided {
        Answer::Hang => std::future::pending().await,
        Answer::Status(status) => hyper::Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"ok")))
            .expect("a response"),
    }
}

/// The real binary, killed with SIGKILL when dropped.
pub struct Tandem {
    child: Child,
    pub addr: SocketAddr,
}

impl Tandem {
    /// Starts `tandem serve` on a free port with its store in `dir` and `args` added: this
    /// build's binary, or `$TANDEM_BIN` (a release build, for the measurement).
    pub fn start(dir: &Path, args: &[String]) -> Tandem {
        let bin = std::env::var("TANDEM_BIN").unwrap_or(env!("CARGO_BIN_EXE_tandem").into());
        let mut child = Command::new(bin)
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(args)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads the listening line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no listening line: {line:?}"));
        Tandem { child, addr }
    }

    /// SIGKILL: no shutdown, no final flush.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tandem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const HOOK_SECRET: &str = "whsec-test";
pub const WITHIN: Duration = Duration::from_secs(20);

/// Flags for a fast test: short backoff and polling, `extra` after them.
pub fn flags(hooks: &[String], extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    for h in hooks {
        args.extend(["--webhook".to_string(), h.clone()]);
    }
    for a in [
        "--webhook-secret",
        HOOK_SECRET,
        "--webhook-backoff-first-ms",
        "50",
        "--webhook-backoff-max-s",
        "1",
        "--webhook-poll-interval-ms",
        "100",
    ]
    .iter()
    .chain(extra)
    {
        args.push((*a).to_string());
    }
    args
}

/// Creates note `id` over REST (`bearer`: a token, or none in open mode); its `note.created`
/// is durable when this returns.
pub async fn create_note(addr: std::net::SocketAddr, id: &str, bearer: Option<&str>) {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    let body = format!(r#"{{"id":"{id}","title":"note {id}"}}"#);
    let (status, _, answer) = http(addr, "POST", "/api/notes", &headers, body.as_bytes()).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
}

/// The note ids of `note.created` events, in the order received.
pub fn created(events: &[Received]) -> Vec<String> {
    events
        .iter()
        .map(Received::json)
        .filter(|j| j["type"] == "note.created")
        .map(|j| j["item"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// A call of the webhook admin API with `bearer` (empty in open mode).
pub async fn admin(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    bearer: &str,
) -> (u16, serde_json::Value) {
    let auth = format!("Bearer {bearer}");
    let (status, _, body) = http(addr, method, path, &[("authorization", &auth)], b"").await;
    (status, serde_json::from_slice(&body).unwrap_or_default())
}
