//! The `tandem` command line.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tandem::auth::{Claims, Role, Verifier};
use tandem::config::{ClusterConfig, Config, Limits, StoreFlags, Timing};
use tandem::logging::LogFormat;
use tandem_storage::redis_store::RedisTarget;

#[derive(Parser)]
#[command(name = "tandem", version, about = "A Yjs sync server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (coloured only on a terminal) or as JSON objects, one per line.
    #[arg(long, global = true, env = "TANDEM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Serve documents over the y-websocket protocol.
    Serve(Box<ServeArgs>),
    /// Print a signed HS256 token for local use (from --jwt-secret / TANDEM_JWT_SECRET).
    Token(TokenArgs),
}

#[derive(Args)]
#[command(next_help_heading = "Authentication")]
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
    #[arg(long, env = "TANDEM_JWT_LEEWAY_S", default_value_t = tandem::auth::CLOCK_SKEW_LEEWAY_S)]
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
    /// Directory served at `/` instead of the web demo embedded in the binary (a demo being
    /// worked on: `web-demo/dist`).
    #[arg(long, env = "TANDEM_STATIC_DIR")]
    static_dir: Option<PathBuf>,
    /// Cluster mode: keep documents in this Redis (`redis://127.0.0.1:6379`) and serve them
    /// together with every other node pointed at it. `--data-dir` is then unused.
    #[arg(
        long = "redis",
        env = "TANDEM_REDIS_URL",
        conflicts_with = "redis_cluster"
    )]
    redis_url: Option<String>,
    /// Cluster mode on a Redis Cluster: its seed nodes, comma-separated
    /// (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`); the other shards are discovered. Each
    /// document lives on the shard of its hash slot.
    #[arg(long = "redis-cluster", env = "TANDEM_REDIS_CLUSTER_URLS", value_name = "URL[,URL...]", value_delimiter = ',', num_args = 1..)]
    redis_cluster: Vec<String>,
    // Every limit and timer: their flags are declared with them, in `tandem::config`.
    #[command(flatten)]
    limits: Limits,
    #[command(flatten)]
    timing: Timing,
    #[command(flatten)]
    cluster: ClusterConfig,
    #[command(flatten)]
    store: StoreFlags,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    webhooks: tandem::webhooks::config::WebhookConfig,
}

impl ServeArgs {
    fn into_config(self) -> anyhow::Result<Config> {
        let mut config = Config::new(self.addr, self.data_dir);
        config.limits = self.limits;
        config.timing = self.timing;
        config.cluster = self.cluster;
        config.store = self.store.into();
        config.webhooks = self.webhooks;
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
        }
        config.redis = match (self.redis_url, self.redis_cluster) {
            (Some(url), _) => Some(RedisTarget::Single(url)),
            (None, seeds) if !seeds.is_empty() => Some(RedisTarget::Cluster(seeds)),
            (None, _) => None,
        };
        // Without it, the demo embedded in the binary (`tandem::site`).
        config.static_dir = self.static_dir;
        Ok(config)
    }
}

/// mimalloc, refusing single allocations above a bound set from the limits (see `tandem::alloc`).
#[global_allocator]
static ALLOCATOR: tandem::alloc::ServerAlloc = tandem::alloc::SERVER_ALLOC;

fn main() -> std::process::ExitCode {
    // Done already before `main` on Linux (see `alloc::configure`); here for other systems,
    // before the runtime's threads allocate.
    tandem::alloc::configure();
    let cli = Cli::parse();
    let json_logs = cli.log_format == LogFormat::Json;
    tandem::logging::init(cli.log_format);
    let ran = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(run(cli)));
    match ran {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line with the causes, never a backtrace (returning the error from `main`
            // prints one whenever RUST_BACKTRACE is set): why the server could not start is
            // the person's to read, not a crash.
            if json_logs {
                tracing::error!("{e:#}");
            } else {
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
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

async fn serve(config: Config) -> anyhow::Result<()> {
    tandem::alloc::set_single_allocation_max(
        config.limits.frame_size_max_bytes,
        config.limits.doc_size_max_bytes,
    );
    let (dev_login, open_mode) = (
        config.dev_login_secret.is_some() && config.auth.is_some(),
        config.auth.is_none(),
    );
    let server = tandem::Server::start(config).await?;
    // Once it runs: a server that could not start has only its reason to say.
    if dev_login {
        tracing::warn!("--dev-login is on: anyone can obtain a write token from /api/dev/token");
    }
    if open_mode {
        tracing::warn!(
            "NO AUTHENTICATION CONFIGURED: open development mode, every client can read and write every document; set --jwt-secret or --jwt-public-key for production"
        );
    }
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

#[cfg(test)]
mod tests {
    //! The command line against the config types: every tunable flag reaches its field, says its
    //! default and its `TANDEM_*` variable, refuses values that would break the server, and has a
    //! row in the README.

    use clap::{CommandFactory, Parser};

    use super::{Cli, Command, Config};

    /// The headings `tandem::config` gives its flags: every limit and timer is under one.
    const TUNABLES: [&str; 5] = [
        "Limits",
        "Timers",
        "Cluster mode",
        "Storage",
        "Webhook limits",
    ];

    fn config(args: &[&str]) -> Result<Config, String> {
        let argv = ["tandem", "serve"].iter().chain(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        let Command::Serve(serve) = cli.command else {
            panic!("parsed as serve");
        };
        serve.into_config().map_err(|e| e.to_string())
    }

    /// `(long name, env var, default)` of every tunable flag of `tandem serve`.
    fn tunables() -> Vec<(String, String, String)> {
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("serve").clone();
        serve
            .get_arguments()
            .filter(|a| a.get_help_heading().is_some_and(|h| TUNABLES.contains(&h)))
            .map(|a| {
                let long = a.get_long().expect("a long flag").to_string();
                let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
                let default = a
                    .get_default_values()
                    .first()
                    .map(|d| d.to_string_lossy().into_owned());
                (
                    long.clone(),
                    env.unwrap_or_else(|| panic!("--{long} has no env var")),
                    default.unwrap_or_else(|| panic!("--{long} shows no default")),
                )
            })
            .collect()
    }

    // Each tunable has the env var its name says and a numeric default; set to one more than
    // that default, exactly one line of the config changes. Without any, the config is the
    // types' own defaults.
    #[test]
    fn every_tunable_flag_reaches_one_field() {
        let defaults = format!("{:#?}", config(&[]).expect("defaults parse"));
        let fresh = Config::new("127.0.0.1:8080".parse().expect("addr"), "./data".into());
        let fresh = format!("{fresh:#?}");
        let config_part = |text: &str| {
            text[text.find("limits").expect("limits")..text.find("auth").expect("auth")].to_string()
        };
        assert_eq!(config_part(&defaults), config_part(&fresh));
        let tunables = tunables();
        assert!(
            tunables.len() >= 40,
            "only {} tunable flags",
            tunables.len()
        );
        for (long, env, default) in tunables {
            assert_eq!(
                env,
                format!("TANDEM_{}", long.to_uppercase().replace('-', "_"))
            );
            let value: u64 = default
                .parse()
                .unwrap_or_else(|_| panic!("--{long} default {default:?}"));
            let flag = format!("--{long}");
            let changed = (value + 1).to_string();
            let changed = format!("{:#?}", config(&[&flag, &changed]).expect("parses"));
            let differing = defaults
                .lines()
                .zip(changed.lines())
                .filter(|(a, b)| a != b)
                .count();
            assert_eq!(
                differing, 1,
                "--{long} changed {differing} lines of the config"
            );
        }
    }

    // A zero that would make a channel panic, a loop spin or never run, a page empty, or a
    // blocking Redis read wait forever is refused with the flag's name.
    #[test]
    fn zero_is_refused_where_it_would_break() {
        for flag in [
            "outbound-queue-len-max",
            "room-inbox-len-max",
            "room-batch-len-max",
            "room-open-attempts-max",
            "commit-waiters-max",
            "feed-events-kept",
            "rest-page-len-max",
            "rest-page-len-default",
            "history-page-len-max",
            "ping-interval-s",
            "write-stall-max-s",
            "http-head-read-max-s",
            "http-idle-max-s",
            "dev-token-ttl-s",
            "store-probe-interval-ms",
            "cluster-node-lease-ms",
            "cluster-heartbeat-interval-ms",
            "cluster-read-block-ms",
            "cluster-read-len-max",
            "cluster-publish-queue-len-max",
            "cluster-events-len-max",
            "compact-after-updates",
            "compact-after-bytes",
            "webhook-outbox-len-max",
            "cluster-changes-len-max",
            "webhook-timeout-s",
            "webhook-age-max-s",
            "webhook-backoff-first-ms",
            "webhook-backoff-max-s",
            "webhook-poll-interval-ms",
        ] {
            let refused = config(&[&format!("--{flag}"), "0"]).expect_err(flag);
            assert!(refused.contains(flag), "{flag}: {refused}");
            config(&[&format!("--{flag}"), "1"]).expect(flag);
        }
        config(&["--room-idle-grace-s", "0", "--shutdown-drain-max-s", "0"]).expect("zero is fine");
    }

    // A seconds flag takes up to a century; more is refused at start, where it used to be
    // accepted and then panic a task adding it to a clock reading (every room, for
    // `--room-idle-grace-s`).
    #[test]
    fn seconds_flags_take_at_most_a_century() {
        let century = tandem::config::SECONDS_MAX.to_string();
        let flags: Vec<String> = tunables()
            .into_iter()
            .map(|(flag, _, _)| flag)
            .filter(|flag| flag.ends_with("-s"))
            .collect();
        assert!(flags.len() >= 10, "{flags:?}");
        for flag in &flags {
            let refused = config(&[&format!("--{flag}"), &u64::MAX.to_string()]).expect_err(flag);
            assert!(refused.contains(flag.as_str()), "{flag}: {refused}");
            config(&[&format!("--{flag}"), &century]).expect(flag);
        }
    }

    // `--redis-cluster` takes comma-separated seed nodes; with `--redis` it is refused, since
    // the two name different stores.
    #[test]
    fn redis_and_redis_cluster_exclude_each_other() {
        let seeds = "redis://127.0.0.1:7000,redis://127.0.0.1:7001";
        let parsed = config(&["--redis-cluster", seeds]).expect("seeds");
        assert_eq!(
            parsed.redis,
            Some(super::RedisTarget::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ]))
        );
        let single = config(&["--redis", "redis://127.0.0.1:6379"]).expect("one");
        assert_eq!(
            single.redis,
            Some(super::RedisTarget::Single("redis://127.0.0.1:6379".into()))
        );
        let refused = config(&[
            "--redis",
            "redis://127.0.0.1:6379",
            "--redis-cluster",
            seeds,
        ])
        .expect_err("both");
        assert!(refused.contains("--redis-cluster"), "{refused}");
    }

    // A heartbeat as long as the lease would let a live node's key expire between refreshes.
    #[test]
    fn the_heartbeat_must_be_shorter_than_the_lease() {
        let lease = [
            "--cluster-node-lease-ms",
            "2000",
            "--cluster-heartbeat-interval-ms",
        ];
        let checked = |heartbeat: &str| config(&[lease[0], lease[1], lease[2], heartbeat])?.check();
        checked("1999").expect("shorter is fine");
        let refused = checked("2000").expect_err("equal");
        assert!(
            refused.contains("shorter than --cluster-node-lease-ms"),
            "{refused}"
        );
    }

    // A default REST page longer than the longest one allowed would answer 400 to a plain list.
    #[test]
    fn the_default_page_fits_the_largest() {
        let checked = |default: &str| {
            config(&[
                "--rest-page-len-max",
                "10",
                "--rest-page-len-default",
                default,
            ])?
            .check()
        };
        checked("10").expect("equal is fine");
        let refused = checked("11").expect_err("longer");
        assert!(refused.contains("--rest-page-len-default"), "{refused}");
    }

    // The README's shell examples paste as they are: no `<placeholder>` in a command (ids a
    // command needs come from an earlier answer, through a shell variable).
    #[test]
    fn the_readme_commands_have_no_placeholders() {
        let readme = include_str!("../../README.md");
        let commands: Vec<&str> = readme
            .lines()
            .filter_map(|l| l.strip_prefix("    "))
            .filter(|l| {
                ["curl ", "cargo ", "tandem ", "REPLY="]
                    .iter()
                    .any(|c| l.starts_with(c))
            })
            .map(|l| l.split(" #").next().unwrap_or(l))
            .collect();
        assert!(
            commands.len() >= 30,
            "only {} commands found",
            commands.len()
        );
        for command in commands {
            assert!(!command.contains('<'), "a placeholder in {command:?}");
        }
    }

    // The README's command-line table has a row for every tunable flag, with its env var.
    #[test]
    fn the_readme_lists_every_tunable_flag() {
        let readme = include_str!("../../README.md");
        let table = &readme[readme.find("## Command line").expect("section")..];
        for (long, env, _) in tunables() {
            let row = table
                .lines()
                .find(|l| l.starts_with(&format!("| `--{long}`")))
                .unwrap_or_else(|| panic!("no README row for --{long}"));
            assert!(
                row.contains(&format!("`{env}`")),
                "README row of --{long} lacks {env}"
            );
        }
    }
}
