//! Every tunable of a running server, in one place: the CLI and the tests fill a [`Config`].
//!
//! Each limit and timer is a field below, with the reason for its default. clap derives the
//! `tandem serve` flags from these structs: a field's first doc paragraph is its `-h` line, the
//! rest is added by `--help`, and the default `--help` shows is read from `Default`, so every
//! number is written once. Durations are given in the unit their flag ends with (`_s`, `_ms`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::RangedU64ValueParser;
use clap::Args;
use tandem_storage::StoreConfig;

mod cluster;
mod limits;
mod timing;

pub use cluster::ClusterConfig;
pub use limits::Limits;
pub use timing::Timing;

/// The store's thresholds as flags. They live in `tandem-storage` ([`StoreConfig`], where their
/// reasons are written), which knows nothing of command lines.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Storage")]
pub struct StoreFlags {
    /// Compact a document's log once it holds this many updates.
    #[arg(long, env = "TANDEM_COMPACT_AFTER_UPDATES", default_value_t = StoreConfig::default().compact_after_updates, value_parser = clap::value_parser!(u64).range(1..))]
    pub compact_after_updates: u64,
    /// ... or once its updates take this many bytes.
    #[arg(long, env = "TANDEM_COMPACT_AFTER_BYTES", default_value_t = StoreConfig::default().compact_after_bytes, value_parser = clap::value_parser!(u64).range(1..))]
    pub compact_after_bytes: u64,
    /// Merged updates kept per document as history (older versions can no longer be shown).
    #[arg(long, env = "TANDEM_HISTORY_KEEP_UPDATES", default_value_t = StoreConfig::default().history_keep_updates)]
    pub history_keep_updates: u64,
    /// Notifications kept per person; the oldest are dropped as new ones arrive.
    ///
    /// About 150 bytes each, so 1,000 are ~150 KB per person: a week away from a busy workspace.
    #[arg(long, env = "TANDEM_INBOX_LEN_MAX", default_value_t = StoreConfig::default().inbox_len_max, value_parser = clap::value_parser!(u64).range(1..))]
    pub inbox_len_max: u64,
    /// Webhook events waiting per endpoint (and as many dead ones); past it the oldest waiting
    /// event is parked as dead and `tandem_webhook_parked_total` counts it.
    ///
    /// About 400 bytes each: 10,000 are ~4 MB per endpoint, a busy workspace's hour of events.
    #[arg(long, env = "TANDEM_WEBHOOK_OUTBOX_LEN_MAX", default_value_t = StoreConfig::default().outbox_len_max, value_parser = clap::value_parser!(u64).range(1..))]
    pub webhook_outbox_len_max: u64,
    /// Cluster mode: entries kept in Redis' cluster-wide change stream (`tandem:{changes}`);
    /// how far a node may fall behind before it catches a document up only at the document's
    /// next change.
    ///
    /// About 100 bytes each: 100,000 are ~10 MB, 100 s of a cluster taking 1,000 updates a second.
    #[arg(long, env = "TANDEM_CLUSTER_CHANGES_LEN_MAX", default_value_t = StoreConfig::default().changes_len_max, value_parser = clap::value_parser!(u64).range(1..))]
    pub cluster_changes_len_max: u64,
}

impl From<StoreFlags> for StoreConfig {
    fn from(flags: StoreFlags) -> Self {
        StoreConfig {
            compact_after_updates: flags.compact_after_updates,
            compact_after_bytes: flags.compact_after_bytes,
            history_keep_updates: flags.history_keep_updates,
            inbox_len_max: flags.inbox_len_max,
            outbox_len_max: flags.webhook_outbox_len_max,
            changes_len_max: flags.cluster_changes_len_max,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub timing: Timing,
    pub cluster: ClusterConfig,
    pub store: StoreConfig,
    /// Webhook endpoints, secret and delivery limits (`crate::webhooks::config`).
    pub webhooks: crate::webhooks::config::WebhookConfig,
    /// How tokens are verified; `None` is open development mode (everyone may write everything).
    pub auth: Option<crate::auth::Verifier>,
    /// With an HS256 secret: lets `POST /api/dev/token` mint write tokens for any name (a
    /// sign-in for demos and local development; never enable it in production).
    pub dev_login_secret: Option<Vec<u8>>,
    /// A directory served at `/` instead of the web demo embedded in the binary (`None`).
    pub static_dir: Option<PathBuf>,
    /// Cluster mode: documents live in this Redis or Redis Cluster and nodes share them
    /// (`None`: sled, one node).
    pub redis: Option<tandem_storage::redis_store::RedisTarget>,
}

impl Config {
    /// The embedded defaults: loopback, `./data`, no auth.
    pub fn new(addr: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            addr,
            data_dir,
            limits: Limits::default(),
            timing: Timing::default(),
            cluster: ClusterConfig::default(),
            store: StoreConfig::default(),
            webhooks: Default::default(),
            auth: None,
            dev_login_secret: None,
            redis: None,
            static_dir: None,
        }
    }

    /// Refuses settings that contradict each other (each flag alone is checked by its parser).
    pub fn check(&self) -> Result<(), String> {
        self.webhooks.check()?;
        let limits = &self.limits;
        if limits.rest_page_len_default > limits.rest_page_len_max {
            return Err(format!(
                "--rest-page-len-default ({}) must not exceed --rest-page-len-max ({})",
                limits.rest_page_len_default, limits.rest_page_len_max
            ));
        }
        let cluster = &self.cluster;
        if cluster.heartbeat_interval >= cluster.node_lease {
            return Err(format!(
                "--cluster-heartbeat-interval-ms ({} ms) must be shorter than --cluster-node-lease-ms ({} ms), or live nodes expire between refreshes",
                cluster.heartbeat_interval.as_millis(),
                cluster.node_lease.as_millis()
            ));
        }
        Ok(())
    }
}

/// A count of at least 1: a zero would make a channel panic, a loop never run, or a page empty.
fn at_least_one<T>() -> RangedU64ValueParser<T>
where
    T: TryFrom<u64> + Clone + Send + Sync + 'static,
    <T as TryFrom<u64>>::Error: std::error::Error + Send + Sync + 'static,
{
    RangedU64ValueParser::new().range(1..)
}

fn whole(text: &str) -> Result<u64, String> {
    text.parse()
        .map_err(|_| format!("{text:?} is not a whole number"))
}

/// The longest time a seconds flag takes: a century. No timer needs more, and a clock reading
/// plus it (or twice it) cannot overflow, which would panic the task doing the sum (a room
/// computing its idle deadline, for one) instead of refusing the flag.
pub const SECONDS_MAX: u64 = 100 * 365 * 24 * 3600;

fn seconds(text: &str) -> Result<Duration, String> {
    let s = whole(text)?;
    if s > SECONDS_MAX {
        return Err(format!(
            "{s} s is more than a century ({SECONDS_MAX} s), longer than any timer needs"
        ));
    }
    Ok(Duration::from_secs(s))
}

fn millis(text: &str) -> Result<Duration, String> {
    whole(text).map(Duration::from_millis)
}

/// For timers that would spin, or fire at once, at zero.
pub(crate) fn positive_seconds(text: &str) -> Result<Duration, String> {
    seconds(text).and_then(positive)
}

pub(crate) fn positive_millis(text: &str) -> Result<Duration, String> {
    millis(text).and_then(positive)
}

fn positive(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        return Err("must be at least 1".into());
    }
    Ok(d)
}

pub(crate) fn seconds_text(d: Duration) -> String {
    d.as_secs().to_string()
}

pub(crate) fn millis_text(d: Duration) -> String {
    d.as_millis().to_string()
}
