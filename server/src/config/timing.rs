//! Timers: pings, grace periods, intervals.

// The flag parsers and the types every part of the configuration uses.
use super::*;

/// Timers.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Timers")]
pub struct Timing {
    /// Websocket ping period, in seconds; a peer that has not answered the previous ping by the
    /// next one is closed with 4002.
    ///
    /// 30 s matches what stock clients expect (they drop a socket silent for 30 s).
    #[arg(long = "ping-interval-s", value_name = "S", env = "TANDEM_PING_INTERVAL_S", value_parser = positive_seconds, default_value = seconds_text(Timing::default().ping_interval))]
    pub ping_interval: Duration,
    /// Seconds a document stays loaded after its last socket leaves.
    ///
    /// So a page reload does not reload the document.
    #[arg(long = "room-idle-grace-s", value_name = "S", env = "TANDEM_ROOM_IDLE_GRACE_S", value_parser = seconds, default_value = seconds_text(Timing::default().room_idle_grace))]
    pub room_idle_grace: Duration,
    /// Seconds a socket's close handshake (or a write before it) may take before the socket is
    /// dropped.
    ///
    /// A peer that stopped reading may never let our close frame out; 5 s is many round trips
    /// on the worst mobile link, and the socket holds nothing of the room meanwhile.
    #[arg(long = "close-timeout-s", value_name = "S", env = "TANDEM_CLOSE_TIMEOUT_S", value_parser = seconds, default_value = seconds_text(Timing::default().close_timeout))]
    pub close_timeout: Duration,
    /// Seconds one frame may take to reach the kernel before its socket is closed as too slow
    /// (4001).
    ///
    /// A peer whose receive window stays shut this long is not reading; without this bound its
    /// connection task would wait on the write (TCP keeps probing a zero window forever) and
    /// hold a connection slot.
    #[arg(long = "write-stall-max-s", value_name = "S", env = "TANDEM_WRITE_STALL_MAX_S", value_parser = positive_seconds, default_value = seconds_text(Timing::default().write_stall_max))]
    pub write_stall_max: Duration,
    /// Websocket ping period, in milliseconds, of a socket once it has published presence
    /// (awareness); one that has not answered the previous ping by the next is closed with 4002
    /// and its presence removed for the others. Never longer than `--ping-interval-s`.
    ///
    /// A network that vanishes without closing the socket (Wi-Fi off, a phone out of coverage,
    /// a browser gone offline) sends no close frame: only a missed pong tells. Someone still
    /// listed as viewing half a minute after they left is a visible lie, so sockets with
    /// presence (people's tabs) are checked every 2 s and leave the others' lists within 4 s; a
    /// ping is a few bytes a round trip, and idle or server-side sockets without presence keep
    /// the 30 s period. 2 s is also far above any round trip a working connection has.
    #[arg(long = "presence-ping-interval-ms", value_name = "MS", env = "TANDEM_PRESENCE_PING_INTERVAL_MS", value_parser = positive_millis, default_value = millis_text(Timing::default().presence_ping_interval))]
    pub presence_ping_interval: Duration,
    /// Shortest time between two presence broadcasts of a room, in milliseconds; changes in
    /// between are coalesced into one frame.
    ///
    /// Stock providers send back every presence frame they receive, so this rate (20 frames/s)
    /// bounds what any socket echoes, however fast others publish, and 50 ms is below what a
    /// person notices in a moving cursor.
    #[arg(long = "presence-broadcast-interval-ms", value_name = "MS", env = "TANDEM_PRESENCE_BROADCAST_INTERVAL_MS", value_parser = millis, default_value = millis_text(Timing::default().presence_broadcast_interval))]
    pub presence_broadcast_interval: Duration,
    /// Seconds the server waits for a complete request head, counted from when it starts
    /// waiting (so also how long an idle keep-alive connection stays open).
    ///
    /// A real client sends its head at once, within a round trip even on a poor mobile link; a
    /// client dripping a header a byte at a time, or a connection opened and never used, is
    /// closed after 10 s. Browsers reopen a closed keep-alive connection by themselves, and 10 s
    /// still lets a page's burst of requests share one.
    #[arg(long = "http-head-read-max-s", value_name = "S", env = "TANDEM_HTTP_HEAD_READ_MAX_S", value_parser = positive_seconds, default_value = seconds_text(Timing::default().http_head_read_max))]
    pub http_head_read_max: Duration,
    /// Seconds an HTTP connection may move no byte in either direction while a request is read
    /// or answered.
    ///
    /// A body that stops arriving, or an answer the client stops reading, is closed after 60 s.
    /// Long above the keep-alive comments of event streams (sent at least every half of this,
    /// and every 15 s at most) and any answer a healthy room takes to give; websockets leave
    /// this bound at the upgrade and have their own pings.
    #[arg(long = "http-idle-max-s", value_name = "S", env = "TANDEM_HTTP_IDLE_MAX_S", value_parser = positive_seconds, default_value = seconds_text(Timing::default().http_idle_max))]
    pub http_idle_max: Duration,
    /// Seconds shutdown waits for rooms, sockets and requests to finish before it flushes and
    /// exits anyway.
    ///
    /// Closing takes a round trip per socket and at most `close_timeout` for a peer that does
    /// not answer; 10 s is twice that, and short enough for a deploy's stop timeout.
    #[arg(long = "shutdown-drain-max-s", value_name = "S", env = "TANDEM_SHUTDOWN_DRAIN_MAX_S", value_parser = seconds, default_value = seconds_text(Timing::default().shutdown_drain_max))]
    pub shutdown_drain_max: Duration,
    /// Lifetime of a token from `POST /api/dev/token`, in seconds.
    ///
    /// A working day: a demo session never has to sign in again, and a token copied out of it
    /// stops working by the next morning.
    #[arg(long = "dev-token-ttl-s", value_name = "S", env = "TANDEM_DEV_TOKEN_TTL_S", value_parser = positive_seconds, default_value = seconds_text(Timing::default().dev_token_ttl))]
    pub dev_token_ttl: Duration,
    /// How often, after a storage failure, the store is asked whether it works again, in
    /// milliseconds; `/health` turns ok with the first answer that it does.
    ///
    /// A probe is one flush (sled) or one `PING` (Redis) and runs only while a failure is
    /// reported, so 1 s costs nothing and puts a recovered node back into a load balancer's
    /// rotation within a second. Each probe may take one interval before it counts as failed.
    #[arg(long = "store-probe-interval-ms", value_name = "MS", env = "TANDEM_STORE_PROBE_INTERVAL_MS", value_parser = positive_millis, default_value = millis_text(Timing::default().store_probe_interval))]
    pub store_probe_interval: Duration,
    /// Seconds a Hocuspocus document may wait for its token once its first frame arrived
    /// (PermissionDenied `token_missing` after it, its held frames dropped), and a Hocuspocus
    /// socket may stay open without authenticating any document (closed with 4408).
    ///
    /// The stock provider sends its token as the first frame of each document, so 10 s is only
    /// ever reached by a client that will not send one.
    #[arg(long = "preauth-wait-max-s", value_name = "S", env = "TANDEM_PREAUTH_WAIT_MAX_S", value_parser = positive_seconds, default_value = seconds_text(Timing::default().preauth_wait_max))]
    pub preauth_wait_max: Duration,
}

impl Timing {
    /// The ping period of a socket that has published presence.
    pub fn presence_ping(&self) -> Duration {
        self.presence_ping_interval.min(self.ping_interval)
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ping_interval: Duration::from_secs(30),
            room_idle_grace: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_stall_max: Duration::from_secs(10),
            presence_broadcast_interval: Duration::from_millis(50),
            presence_ping_interval: Duration::from_secs(2),
            http_head_read_max: Duration::from_secs(10),
            http_idle_max: Duration::from_secs(60),
            preauth_wait_max: Duration::from_secs(10),
            shutdown_drain_max: Duration::from_secs(10),
            dev_token_ttl: Duration::from_secs(12 * 3600),
            store_probe_interval: Duration::from_secs(1),
        }
    }
}
