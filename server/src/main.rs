//! The `tandem` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tandem::auth::{Claims, Role, Verifier};
use tandem::config::{Config, Limits};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "tandem", version, about = "A Yjs sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve documents over the y-websocket protocol.
    Serve(Box<ServeArgs>),
    /// Print a signed HS256 token for local use (from --jwt-secret / TANDEM_JWT_SECRET).
    Token(TokenArgs),
}

#[derive(Args)]
struct AuthArgs {
    /// HS256 shared secret; enables authentication.
    #[arg(long, env = "TANDEM_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// PEM public key (RSA for RS256, Ed25519 for EdDSA); enables authentication.
    #[arg(long, env = "TANDEM_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Required `iss` claim.
    #[arg(long, env = "TANDEM_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    /// Required `aud` claim.
    #[arg(long, env = "TANDEM_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
    /// Allowed clock skew for `exp` and `nbf`, in seconds.
    #[arg(long, env = "TANDEM_JWT_LEEWAY_S", default_value_t = 30)]
    jwt_leeway_s: u64,
    /// Accept tokens without `exp` (service tokens). They never expire and cannot be revoked
    /// short of changing the key; without this flag they get 401 `token_no_expiry`.
    #[arg(long, env = "TANDEM_JWT_ALLOW_NO_EXP")]
    jwt_allow_no_exp: bool,
    /// With --jwt-secret: `POST /api/dev/token` signs write tokens for any name (demos only).
    #[arg(long, env = "TANDEM_DEV_LOGIN")]
    dev_login: bool,
}

impl AuthArgs {
    fn verifier(&self) -> anyhow::Result<Option<Verifier>> {
        let verifier = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(_), Some(_)) => anyhow::bail!("give --jwt-secret or --jwt-public-key, not both"),
            (Some(secret), None) => Verifier::hs256(secret.as_bytes()),
            (None, Some(path)) => Verifier::public_key_pem(path)?,
            (None, None) => return Ok(None),
        };
        let verifier = verifier
            .with_leeway_s(self.jwt_leeway_s)
            .allowing_no_exp(self.jwt_allow_no_exp);
        let verifier = match &self.jwt_issuer {
            Some(iss) => verifier.with_issuer(iss),
            None => verifier,
        };
        Ok(Some(match &self.jwt_audience {
            Some(aud) => verifier.with_audience(aud),
            None => verifier,
        }))
    }
}

#[derive(Args)]
struct TokenArgs {
    /// The author id (`sub` claim).
    #[arg(long)]
    sub: String,
    /// Display name (`name` claim).
    #[arg(long)]
    name: Option<String>,
    /// A `pattern=role` grant, repeatable: `--doc 'notes/*=write' --doc '*=read'`.
    #[arg(long = "doc", value_parser = parse_grant)]
    docs: Vec<(String, Role)>,
    /// Lifetime: seconds, or with a unit (`90s`, `30m`, `1h`, `7d`).
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    #[arg(long, env = "TANDEM_JWT_SECRET", hide_env_values = true)]
    jwt_secret: String,
    #[arg(long, env = "TANDEM_JWT_ISSUER")]
    jwt_issuer: Option<String>,
    #[arg(long, env = "TANDEM_JWT_AUDIENCE")]
    jwt_audience: Option<String>,
}

fn parse_grant(s: &str) -> Result<(String, Role), String> {
    let (pattern, role) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("{s:?} is not pattern=role"))?;
    Ok((pattern.to_string(), role.parse()?))
}

fn parse_ttl(s: &str) -> Result<u64, String> {
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in {s:?} (s, m, h, d)")),
    };
    Ok(n.saturating_mul(scale))
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port).
    #[arg(long, env = "TANDEM_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Where the document store lives.
    #[arg(long, env = "TANDEM_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Directory served at `/` (the built web demo). Defaults to `web-demo/dist` when present.
    #[arg(long, env = "TANDEM_STATIC_DIR")]
    static_dir: Option<PathBuf>,
    /// Cluster mode: keep documents in this Redis (`redis://127.0.0.1:6379`) and serve them
    /// together with every other node pointed at it. `--data-dir` is then unused.
    #[arg(long = "redis", env = "TANDEM_REDIS_URL")]
    redis_url: Option<String>,
    /// Largest websocket frame accepted, in bytes.
    #[arg(long, env = "TANDEM_FRAME_SIZE_MAX_BYTES")]
    frame_size_max_bytes: Option<usize>,
    /// How deep values and shared types may nest in a document (deeper updates are refused).
    #[arg(long, env = "TANDEM_NESTING_DEPTH_MAX")]
    nesting_depth_max: Option<u32>,
    /// Largest document, in bytes of stored updates.
    #[arg(long, env = "TANDEM_DOC_SIZE_MAX_BYTES")]
    doc_size_max_bytes: Option<u64>,
    /// Frames queued to one socket before it is closed as too slow.
    #[arg(long, env = "TANDEM_OUTBOUND_QUEUE_LEN_MAX")]
    outbound_queue_len_max: Option<usize>,
    /// Open websocket connections for the whole server.
    #[arg(long, env = "TANDEM_CONNECTIONS_MAX")]
    connections_max: Option<usize>,
    /// Largest presence state one socket may publish, in bytes of JSON (dropped beyond).
    #[arg(long, env = "TANDEM_AWARENESS_STATE_MAX_BYTES")]
    awareness_state_max_bytes: Option<usize>,
    /// Messages per second one socket may send on average (closed with 4429 beyond).
    #[arg(long, env = "TANDEM_MESSAGES_PER_SEC_PER_CONN")]
    messages_per_sec_per_conn: Option<u32>,
    /// Messages one socket may send in a burst.
    #[arg(long, env = "TANDEM_MESSAGES_BURST_PER_CONN")]
    messages_burst_per_conn: Option<u32>,
    /// New websocket connections per client IP per minute (HTTP 429 beyond).
    #[arg(long, env = "TANDEM_CONNECTIONS_PER_IP_PER_MIN")]
    connections_per_ip_per_min: Option<u32>,
    /// Failed authentications per client IP per minute answered 401; later failing attempts in
    /// that minute get 429. A valid token is never refused for them.
    #[arg(long, env = "TANDEM_AUTH_FAILURES_PER_IP_PER_MIN")]
    auth_failures_per_ip_per_min: Option<u32>,
    /// Open sockets per user when authentication is on (HTTP 429 beyond).
    #[arg(long, env = "TANDEM_SOCKETS_PER_USER_MAX")]
    sockets_per_user_max: Option<usize>,
    /// Open change-feed streams (`/api/events`) for the whole server (HTTP 503 beyond).
    #[arg(long, env = "TANDEM_FEED_STREAMS_MAX")]
    feed_streams_max: Option<usize>,
    /// Open change-feed streams per user when authentication is on (HTTP 429 beyond).
    #[arg(long, env = "TANDEM_FEED_STREAMS_PER_USER_MAX")]
    feed_streams_per_user_max: Option<usize>,
    /// Open change-feed streams per client IP (HTTP 429 beyond).
    #[arg(long, env = "TANDEM_FEED_STREAMS_PER_IP_MAX")]
    feed_streams_per_ip_max: Option<usize>,
    /// Websocket ping period, in seconds.
    #[arg(long, env = "TANDEM_PING_INTERVAL_S")]
    ping_interval_s: Option<u64>,
    /// Seconds a document stays loaded after its last socket leaves.
    #[arg(long, env = "TANDEM_ROOM_IDLE_GRACE_S")]
    room_idle_grace_s: Option<u64>,
    /// Shortest time between two presence broadcasts of a room, in milliseconds (changes in
    /// between are coalesced).
    #[arg(long, env = "TANDEM_PRESENCE_BROADCAST_INTERVAL_MS")]
    presence_broadcast_interval_ms: Option<u64>,
    /// Seconds the server waits for a complete request head (also the keep-alive idle time).
    #[arg(long, env = "TANDEM_HTTP_HEAD_READ_MAX_S")]
    http_head_read_max_s: Option<u64>,
    /// Seconds an HTTP connection may move no byte while a request is read or answered.
    #[arg(long, env = "TANDEM_HTTP_IDLE_MAX_S")]
    http_idle_max_s: Option<u64>,
    /// Compact a document's log once it holds this many updates.
    #[arg(long, env = "TANDEM_COMPACT_AFTER_UPDATES")]
    compact_after_updates: Option<u64>,
    #[command(flatten)]
    auth: AuthArgs,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = Config::new(self.addr, self.data_dir);
        let defaults = Limits::default();
        let limits = &mut config.limits;
        limits.frame_size_max_bytes = self
            .frame_size_max_bytes
            .unwrap_or(defaults.frame_size_max_bytes);
        limits.nesting_depth_max = self.nesting_depth_max.unwrap_or(defaults.nesting_depth_max);
        limits.doc_size_max_bytes = self
            .doc_size_max_bytes
            .unwrap_or(defaults.doc_size_max_bytes);
        limits.outbound_queue_len_max = self
            .outbound_queue_len_max
            .unwrap_or(defaults.outbound_queue_len_max)
            .max(1);
        limits.connections_max = self.connections_max.unwrap_or(defaults.connections_max);
        limits.awareness_state_max_bytes = self
            .awareness_state_max_bytes
            .unwrap_or(defaults.awareness_state_max_bytes);
        limits.messages_per_sec_per_conn = self
            .messages_per_sec_per_conn
            .unwrap_or(defaults.messages_per_sec_per_conn);
        limits.messages_burst_per_conn = self
            .messages_burst_per_conn
            .unwrap_or(defaults.messages_burst_per_conn);
        limits.connections_per_ip_per_min = self
            .connections_per_ip_per_min
            .unwrap_or(defaults.connections_per_ip_per_min);
        limits.auth_failures_per_ip_per_min = self
            .auth_failures_per_ip_per_min
            .unwrap_or(defaults.auth_failures_per_ip_per_min);
        limits.sockets_per_user_max = self
            .sockets_per_user_max
            .unwrap_or(defaults.sockets_per_user_max);
        limits.feed_streams_max = self.feed_streams_max.unwrap_or(defaults.feed_streams_max);
        limits.feed_streams_per_user_max = self
            .feed_streams_per_user_max
            .unwrap_or(defaults.feed_streams_per_user_max);
        limits.feed_streams_per_ip_max = self
            .feed_streams_per_ip_max
            .unwrap_or(defaults.feed_streams_per_ip_max);
        if let Some(s) = self.ping_interval_s {
            config.timing.ping_interval = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(s) = self.room_idle_grace_s {
            config.timing.room_idle_grace = std::time::Duration::from_secs(s);
        }
        if let Some(ms) = self.presence_broadcast_interval_ms {
            config.timing.presence_broadcast_interval = std::time::Duration::from_millis(ms);
        }
        if let Some(s) = self.http_head_read_max_s {
            config.timing.http_head_read_max = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(s) = self.http_idle_max_s {
            config.timing.http_idle_max = std::time::Duration::from_secs(s.max(1));
        }
        if let Some(n) = self.compact_after_updates {
            config.store.compact_after_updates = n.max(1);
        }
        config.auth = self.auth.verifier()?;
        if self.auth.jwt_allow_no_exp {
            tracing::warn!("--jwt-allow-no-exp is on: a token without exp is valid forever");
        }
        if self.auth.dev_login {
            let secret =
                self.auth.jwt_secret.clone().ok_or_else(|| {
                    anyhow::anyhow!("--dev-login needs --jwt-secret to sign tokens")
                })?;
            config.dev_login_secret = Some(secret.into_bytes());
        } else if config.auth.is_none() {
            // Open development mode lets everyone do everything, but the demo still tells people
            // apart with tokens from /api/dev/token, signed with a key that lives as long as
            // this process.
            config.dev_login_secret = Some(ephemeral_secret());
        }
        config.redis_url = self.redis_url;
        // The built demo: where the run command is usually started (the repo root), else next
        // to the sources this binary was built from.
        config.static_dir = self.static_dir.or_else(|| {
            [
                PathBuf::from("web-demo/dist"),
                PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../web-demo/dist")),
            ]
            .into_iter()
            .find(|dist| dist.join("index.html").is_file())
        });
        Ok(config)
    }
}

/// mimalloc, refusing single allocations above a bound set from the limits (see `tandem::alloc`).
#[global_allocator]
static ALLOCATOR: tandem::alloc::ServerAlloc = tandem::alloc::SERVER_ALLOC;

fn main() -> anyhow::Result<()> {
    // Done already before `main` on Linux (see `alloc::configure`); here for other systems,
    // before the runtime's threads allocate.
    tandem::alloc::configure();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args.into_config()?).await,
        Command::Token(args) => {
            println!("{}", mint(args)?);
            Ok(())
        }
    }
}

fn mint(args: TokenArgs) -> anyhow::Result<String> {
    let claims = Claims {
        sub: args.sub,
        name: args.name,
        docs: args.docs.into_iter().collect(),
        exp: Some(tandem::auth::now_s().saturating_add(args.ttl)),
        nbf: None,
        iss: args.jwt_issuer,
        aud: args.jwt_audience.map(serde_json::Value::String),
    };
    tandem::auth::mint_hs256(args.jwt_secret.as_bytes(), &claims)
}

/// 32 bytes from the kernel's random source (the time and process id where there is none).
fn ephemeral_secret() -> Vec<u8> {
    use std::io::Read;
    let mut secret = vec![0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut secret));
    if read.is_err() {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        secret = seed.into_bytes();
    }
    secret
}

async fn serve(config: Config) -> anyhow::Result<()> {
    tandem::alloc::set_single_allocation_max(
        config.limits.frame_size_max_bytes,
        config.limits.doc_size_max_bytes,
    );
    if config.dev_login_secret.is_some() && config.auth.is_some() {
        tracing::warn!("--dev-login is on: anyone can obtain a write token from /api/dev/token");
    }
    if config.auth.is_none() {
        tracing::warn!(
            "NO AUTHENTICATION CONFIGURED: open development mode, every client can read and write every document; set --jwt-secret or --jwt-public-key for production"
        );
    }
    let server = tandem::Server::start(config).await?;
    // The one line scripts and tests wait for; logs go to stderr.
    println!("tandem listening on http://{}", server.addr);
    wait_for_signal().await;
    tracing::info!("shutting down: closing sockets with 1012 and flushing");
    server.shutdown().await
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
