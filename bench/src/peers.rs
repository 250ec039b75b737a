//! The servers under test, each started by the benchmark on a free loopback port and killed when
//! its measurement ends (also on panic: `Drop`), so it runs alone on the machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How a server frames the y-protocols messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// One message per frame, the document in the URL path (tandem, y-websocket server).
    YWebsocket,
    /// Every frame prefixed by the document name; an auth message first (Hocuspocus).
    Hocuspocus,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Tandem,
    /// tandem again, driven by the Hocuspocus client on its `/hocuspocus` endpoint: what a
    /// Tiptap app costs compared with a y-websocket one on the same server.
    TandemHocuspocus,
    YWebsocket,
    Hocuspocus,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tandem => "tandem",
            Kind::TandemHocuspocus => "tandem-hocuspocus",
            Kind::YWebsocket => "y-websocket",
            Kind::Hocuspocus => "hocuspocus",
        }
    }

    pub fn dialect(self) -> Dialect {
        match self {
            Kind::Hocuspocus | Kind::TandemHocuspocus => Dialect::Hocuspocus,
            Kind::Tandem | Kind::YWebsocket => Dialect::YWebsocket,
        }
    }
}

/// Where the peers and the tandem binary are.
#[derive(Debug, Clone)]
pub struct Paths {
    pub tandem_bin: PathBuf,
    pub peers_dir: PathBuf,
}

pub struct Running {
    pub kind: Kind,
    pub addr: String,
    pub pid: u32,
    child: Child,
    pub data_dir: Option<tempdir::Dir>,
}

/// What a client needs to reach a server.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: Kind,
    pub addr: String,
}

impl Target {
    /// The websocket URL of `doc`.
    pub fn url(&self, doc: &str) -> String {
        match self.kind {
            Kind::Tandem => format!("ws://{}/sync/{doc}", self.addr),
            Kind::TandemHocuspocus => format!("ws://{}/hocuspocus", self.addr),
            Kind::YWebsocket => format!("ws://{}/{doc}", self.addr),
            Kind::Hocuspocus => format!("ws://{}/", self.addr),
        }
    }
}

impl Running {
    pub fn url(&self, doc: &str) -> String {
        self.clone_target().url(doc)
    }

    pub fn clone_target(&self) -> Target {
        Target {
            kind: self.kind,
            addr: self.addr.clone(),
        }
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A temporary directory removed on drop (no extra crate for one directory).
pub mod tempdir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(prefix: &str) -> std::io::Result<Dir> {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let path =
                std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
            std::fs::create_dir_all(&path)?;
            Ok(Dir(path))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Limits raised so that the benchmark measures the server, not its abuse protection.
const TANDEM_ENV: [(&str, &str); 6] = [
    ("TANDEM_MESSAGES_PER_SEC_PER_CONN", "10000000"),
    ("TANDEM_MESSAGES_BURST_PER_CONN", "10000000"),
    ("TANDEM_CONNECTIONS_PER_IP_PER_MIN", "10000000"),
    ("TANDEM_CONNECTIONS_MAX", "100000"),
    ("TANDEM_OUTBOUND_QUEUE_LEN_MAX", "100000"),
    ("RUST_LOG", "warn"),
];

pub async fn start(
    kind: Kind,
    paths: &Paths,
    data_dir: Option<tempdir::Dir>,
    extra_env: &[(&str, String)],
) -> anyhow::Result<Running> {
    let mut cmd = match kind {
        Kind::Tandem | Kind::TandemHocuspocus => {
            let dir = data_dir
                .as_ref()
                .map(|d| d.path().to_path_buf())
                .context("tandem needs a data dir")?;
            let mut c = Command::new(&paths.tandem_bin);
            c.args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
                .arg(dir)
                .envs(TANDEM_ENV);
            c
        }
        Kind::YWebsocket => node(&paths.peers_dir, "y-websocket.mjs")?,
        Kind::Hocuspocus => node(&paths.peers_dir, "hocuspocus.mjs")?,
    };
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", kind.name()))?;
    let pid = child.id().context("server pid")?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .with_context(|| format!("{} did not start in 30 s", kind.name()))??;
        let Some(line) = line else {
            bail!("{} exited before it was ready", kind.name());
        };
        if let Some(rest) = line.split("listening on http://").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Running {
        kind,
        addr,
        pid,
        child,
        data_dir,
    })
}

fn node(peers_dir: &Path, script: &str) -> anyhow::Result<Command> {
    let path = peers_dir.join(script);
    if !peers_dir.join("node_modules").is_dir() {
        bail!(
            "the peers are not installed: run (cd {} && npm ci)",
            peers_dir.display()
        );
    }
    let mut c = Command::new("node");
    c.arg(path).env("PORT", "0");
    Ok(c)
}

/// Resident and peak memory of a process, in bytes.
pub fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// CPU time (user + system) of a process, in seconds.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    #[allow(clippy::cast_precision_loss)]
    let seconds = (ticks(11) + ticks(12)) as f64 / 100.0;
    seconds
}

/// Bytes under a directory.
pub fn disk_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => disk_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
