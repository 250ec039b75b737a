//! Cluster mode's timers and bounds.

// The flag parsers and the types every part of the configuration uses.
use super::*;

/// Cluster mode's timers and bounds (used only with `--redis` or `--redis-cluster`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Cluster mode")]
pub struct ClusterConfig {
    /// How long a node's liveness key lives without a refresh, in milliseconds; other nodes drop
    /// the presence of a node whose key expired.
    ///
    /// Five refreshes: a node survives four missed ones (a GC-like pause, a Redis failover),
    /// while the presence of a dead node goes within about 6 s.
    #[arg(long = "cluster-node-lease-ms", value_name = "MS", env = "TANDEM_CLUSTER_NODE_LEASE_MS", value_parser = positive_millis, default_value = millis_text(ClusterConfig::default().node_lease))]
    pub node_lease: Duration,
    /// How often a node refreshes its liveness key and checks other nodes' keys, in
    /// milliseconds; must be shorter than the lease. `/health` reports the last refresh.
    ///
    /// One Redis call a second per node costs nothing, and bounds how stale `/health` is about
    /// Redis.
    #[arg(long = "cluster-heartbeat-interval-ms", value_name = "MS", env = "TANDEM_CLUSTER_HEARTBEAT_INTERVAL_MS", value_parser = positive_millis, default_value = millis_text(ClusterConfig::default().heartbeat_interval))]
    pub heartbeat_interval: Duration,
    /// Longest wait of one blocking read of the document streams, in milliseconds (also how soon
    /// a newly opened document is tailed).
    ///
    /// New entries end the wait at once, so this only bounds how long a newly opened room waits
    /// to join the read; 250 ms is well inside the time a client takes to sync. Never 0, which
    /// Redis reads as "forever".
    #[arg(long = "cluster-read-block-ms", value_name = "MS", env = "TANDEM_CLUSTER_READ_BLOCK_MS", value_parser = positive_millis, default_value = millis_text(ClusterConfig::default().read_block))]
    pub read_block: Duration,
    /// Stream entries read per document per read.
    ///
    /// 512 keystroke-sized updates are a few tens of KB; a node that fell further behind catches
    /// up over several reads without one reply growing without bound.
    #[arg(long = "cluster-read-len-max", env = "TANDEM_CLUSTER_READ_LEN_MAX", default_value_t = ClusterConfig::default().read_len_max, value_parser = at_least_one::<usize>())]
    pub read_len_max: usize,
    /// Presence messages waiting to be published to other nodes; beyond it they are dropped. As
    /// many feed events may wait to go to the cluster's feed stream (also dropped beyond).
    ///
    /// Clients renew their presence every 15 s, so a dropped message only delays it; 4096 covers
    /// a burst of every socket of a busy node moving its cursor at once, and of feed events
    /// minutes of a busy node's typed changes while Redis is briefly away.
    #[arg(long = "cluster-publish-queue-len-max", env = "TANDEM_CLUSTER_PUBLISH_QUEUE_LEN_MAX", default_value_t = ClusterConfig::default().publish_queue_len_max, value_parser = at_least_one::<usize>())]
    pub publish_queue_len_max: usize,
    /// Events kept in the cluster's change feed in Redis (`tandem:{events}`); every node's
    /// `/api/events` reads it, and a node that starts takes the newest `--feed-events-kept` of
    /// it, so a stream resumes on any node.
    ///
    /// About 300 bytes each: 50,000 are ~15 MB, more than a node keeps in memory (10,000), so a
    /// resuming client finds its id on every node.
    #[arg(long = "cluster-events-len-max", env = "TANDEM_CLUSTER_EVENTS_LEN_MAX", default_value_t = ClusterConfig::default().events_len_max, value_parser = clap::value_parser!(u64).range(1..))]
    pub events_len_max: u64,
    /// Seconds a room keeps retrying a commit that Redis failed before it gives up and closes its
    /// sockets (1011); 0 gives up at once.
    ///
    /// Meanwhile nothing of the room's is acknowledged (no echo, no broadcast), its sockets stay
    /// open, `/health` says 503, and when Redis answers again the held edits are written and
    /// acknowledged. 20 s rides out a Redis restart or failover, and stays under the 30 s after
    /// which a stock y-websocket client closes a silent socket itself.
    #[arg(long = "cluster-outage-grace-s", value_name = "S", env = "TANDEM_CLUSTER_OUTAGE_GRACE_S", value_parser = seconds, default_value = seconds_text(ClusterConfig::default().outage_grace))]
    pub outage_grace: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            node_lease: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(1),
            read_block: Duration::from_millis(250),
            read_len_max: 512,
            publish_queue_len_max: 4096,
            events_len_max: 50_000,
            outage_grace: Duration::from_secs(20),
        }
    }
}
