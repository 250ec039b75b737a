//! The first five minutes with the real binary, as a person runs it: the demo comes with the
//! binary wherever it is, a second server on the same data directory says why it cannot start,
//! logs written to a file carry no colour codes, JSON logs parse, and a client leaving an event
//! stream is not logged as an error.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process, killed when dropped.
struct Tandem {
    child: Child,
    addr: String,
}

impl Drop for Tandem {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Tandem {
    /// Stops it with SIGTERM, as a person's Ctrl+C or a service manager would, and waits for it.
    fn stop(mut self) {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(stopped.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().expect("waits").is_none() {
            assert!(Instant::now() < deadline, "no exit 20 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `tandem serve` from `bin` on a free port, in `cwd`, logs to `log`, with `extra` flags and
/// nothing from the environment but `env`; waits for the listening line.
fn serve(
    bin: &Path,
    cwd: &Path,
    data_dir: &Path,
    log: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Tandem {
    let mut child = Command::new(bin)
        .current_dir(cwd)
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("RUST_LOG")
        .env_remove("TANDEM_LOG_FORMAT")
        .env_remove("TANDEM_STATIC_DIR")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(File::create(log).expect("log file"))
        .spawn()
        .expect("binary starts");
    let mut line = String::new();
    let stdout = child.stdout.take().expect("stdout");
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reads stdout");
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .trim()
        .to_string();
    Tandem { child, addr }
}

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tandem"))
}

/// A GET over a fresh connection: status, headers (lower-case names), body.
fn get(addr: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut tcp = TcpStream::connect(addr).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        tcp,
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).expect("reads");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, raw[split + 4..].to_vec())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
}

fn dist() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-demo/dist")
}

// The demo is in the binary: a copy of it in another directory, started from a third one (no
// web-demo/dist anywhere near), serves index.html and the hashed assets it names, byte for byte
// what was built, with their types and caching rules.
#[test]
fn a_copied_binary_serves_the_demo_from_anywhere() {
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let copy = elsewhere.path().join("tandem");
    std::fs::copy(bin(), &copy).expect("copies the binary");
    let cwd = tempfile::tempdir().expect("tempdir");
    let log = cwd.path().join("log");
    let server = serve(&copy, cwd.path(), &cwd.path().join("data"), &log, &[], &[]);

    let (status, headers, body) = get(&server.addr, "/");
    assert_eq!(status, 200);
    let index = std::fs::read(dist().join("index.html")).expect("built index");
    assert_eq!(body, index);
    assert_eq!(header(&headers, "content-type"), "text/html");
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    header(&headers, "etag");

    let html = String::from_utf8(index).expect("utf-8");
    let assets: Vec<&str> = html
        .split('"')
        .filter(|part| part.starts_with("./assets/"))
        .map(|part| part.trim_start_matches('.'))
        .collect();
    assert!(assets.len() >= 2, "index names its script and style");
    for asset in assets {
        let (status, headers, body) = get(&server.addr, asset);
        assert_eq!(status, 200, "{asset}");
        let built = std::fs::read(dist().join(asset.trim_start_matches('/'))).expect("built");
        assert_eq!(body, built, "{asset}");
        let expected = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert_eq!(header(&headers, "content-type"), expected, "{asset}");
        assert_eq!(
            header(&headers, "cache-control"),
            "public, max-age=31536000, immutable"
        );
    }
    let (status, _, _) = get(&server.addr, "/assets/not-built.js");
    assert_eq!(status, 404);
    server.stop();
}

// `--static-dir` still replaces the embedded demo, with the same caching rule.
#[test]
fn a_static_dir_overrides_the_embedded_demo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let site = dir.path().join("site");
    std::fs::create_dir_all(site.join("assets")).expect("mkdir");
    std::fs::write(site.join("index.html"), "<p>mine</p>").expect("write");
    std::fs::write(site.join("assets/app-1234abcd.js"), "1").expect("write");
    let site_arg = site.to_str().expect("utf-8 path");
    let log = dir.path().join("log");
    let args = ["--static-dir", site_arg];
    let server = serve(
        &bin(),
        dir.path(),
        &dir.path().join("data"),
        &log,
        &args,
        &[],
    );
    let (status, headers, body) = get(&server.addr, "/");
    assert_eq!((status, body.as_slice()), (200, &b"<p>mine</p>"[..]));
    assert_eq!(header(&headers, "cache-control"), "no-cache");
    let (status, headers, _) = get(&server.addr, "/assets/app-1234abcd.js");
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    server.stop();
}

// A second server on a data directory another one holds exits non-zero with one line naming
// the directory, no backtrace even with RUST_BACKTRACE set; the first one goes on serving.
#[test]
fn a_second_server_on_the_same_data_dir_says_so_in_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let first = serve(&bin(), dir.path(), &data, &dir.path().join("log"), &[], &[]);
    let second = Command::new(bin())
        .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("RUST_BACKTRACE", "1")
        .env_remove("TANDEM_LOG_FORMAT")
        .output()
        .expect("runs");
    assert_eq!(second.status.code(), Some(1));
    assert!(second.stdout.is_empty(), "it never listened");
    let stderr = String::from_utf8(second.stderr).expect("utf-8");
    assert_eq!(
        stderr.trim_end().lines().collect::<Vec<_>>(),
        [format!(
            "error: another tandem holds {} (its store is locked while it runs): stop it, or give this one another --data-dir",
            data.display()
        )],
    );
    assert_eq!(get(&first.addr, "/health").0, 200);
    first.stop();
}

/// Opens `/api/events`, waits for the stream's head and one event made by a REST write, and
/// drops the connection mid-stream.
fn leave_an_event_stream(addr: &str, n: usize) {
    let mut tcp = TcpStream::connect(addr).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(tcp, "GET /api/events HTTP/1.1\r\nhost: {addr}\r\n\r\n").expect("writes");
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let mut posted = false;
    while !String::from_utf8_lossy(&seen).contains("event:note.created") {
        let got = tcp.read(&mut buf).expect("reads the stream");
        assert!(got > 0, "the stream ended");
        seen.extend_from_slice(&buf[..got]);
        if !posted && String::from_utf8_lossy(&seen).contains("\r\n\r\n") {
            let body = format!("{{\"title\":\"leaving {n}\"}}");
            let mut post = TcpStream::connect(addr).expect("connects");
            write!(
                post,
                "POST /api/notes HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("posts");
            let mut answer = Vec::new();
            post.read_to_end(&mut answer).expect("answer");
            assert!(answer.starts_with(b"HTTP/1.1 201"), "{answer:?}");
            posted = true;
        }
    }
    // Dropped here with the response still streaming: the client leaves.
}

// Clients leaving event streams are not errors: with the default log level the log (written to
// a file) has no ERROR and no hyper IncompleteMessage; it has its start-up warning, with no
// colour codes since it is not a terminal.
#[test]
fn a_log_file_has_no_colour_and_a_client_leaving_is_no_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let server = serve(&bin(), dir.path(), &dir.path().join("data"), &log, &[], &[]);
    for n in 0..5 {
        leave_an_event_stream(&server.addr, n);
    }
    // The server notices a departure at its next write: the keep-alive comment at the latest.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(get(&server.addr, "/health").0, 200);
    server.stop();
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("NO AUTHENTICATION CONFIGURED"), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert!(!text.contains('\u{1b}'), "escape codes in a file: {text:?}");
    assert!(!text.contains("ERROR"), "{text}");
    assert!(!text.contains("IncompleteMessage"), "{text}");
}

// `--log-format json` (here through TANDEM_LOG_FORMAT): every line of the log is a JSON object
// with a level and a message, escape-free.
#[test]
fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let data = dir.path().join("data");
    let env = [("TANDEM_LOG_FORMAT", "json")];
    let server = serve(&bin(), dir.path(), &data, &log, &[], &env);
    leave_an_event_stream(&server.addr, 0);
    server.stop();
    let text = std::fs::read_to_string(&log).expect("log");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 2, "{text}");
    for line in lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["fields"]["message"].is_string(), "{line}");
    }
    assert!(text.contains("\"level\":\"WARN\""), "{text}");
    assert!(!text.contains('\u{1b}'), "{text:?}");
}

// A wrong --log-format is refused by name before anything starts.
#[test]
fn an_unknown_log_format_is_refused() {
    let out = Command::new(bin())
        .args(["serve", "--log-format", "xml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--log-format"), "{stderr}");
    assert!(
        stderr.contains("text") && stderr.contains("json"),
        "{stderr}"
    );
}
