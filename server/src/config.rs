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

/// The bounds that keep one client, document or burst from exhausting the server.
/// Each has a test at its edge (see the README's "Guarantees").
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Limits")]
pub struct Limits {
    /// Largest websocket message accepted, in bytes; larger frames close the socket with 1009.
    ///
    /// 16 MiB carries a large paste or the first sync of a big document, while bounding what one
    /// frame can make the server buffer.
    #[arg(long, env = "TANDEM_FRAME_SIZE_MAX_BYTES", default_value_t = Limits::default().frame_size_max_bytes)]
    pub frame_size_max_bytes: usize,
    /// How deep values and shared types may nest in a document; deeper updates are refused.
    ///
    /// `yrs` decodes values and deletes nested types recursively, so depth is stack: an array
    /// nested 10,000 deep (a 20 KB frame) aborted the server. 128 is far beyond real documents (a
    /// ProseMirror outline ten lists deep nests 30 types) and what the JSON of a REST body may
    /// nest (`serde_json` stops at 128 too), while the recursion it allows fits a worker thread's
    /// stack many times over.
    #[arg(long, env = "TANDEM_NESTING_DEPTH_MAX", default_value_t = Limits::default().nesting_depth_max)]
    pub nesting_depth_max: u32,
    /// Largest document, in bytes of stored updates (snapshot plus log, an upper bound of its
    /// encoded size).
    ///
    /// 64 MiB is far beyond any note or issue, yet keeps one room's memory in the hundreds of MiB.
    #[arg(long, env = "TANDEM_DOC_SIZE_MAX_BYTES", default_value_t = Limits::default().doc_size_max_bytes)]
    pub doc_size_max_bytes: u64,
    /// Frames waiting to be written to one socket before it is closed as too slow (4001).
    ///
    /// A reader this far behind resyncs on reconnect instead of making the room buffer without
    /// bound.
    #[arg(long, env = "TANDEM_OUTBOUND_QUEUE_LEN_MAX", default_value_t = Limits::default().outbound_queue_len_max, value_parser = at_least_one::<usize>())]
    pub outbound_queue_len_max: usize,
    /// Commands waiting in one room's inbox; when it is full, senders wait.
    ///
    /// Waiting pushes back on the clients that flood the room rather than on memory. 1024 is
    /// several batches (`--room-batch-len-max`), so a busy room always has its next batch ready.
    #[arg(long, env = "TANDEM_ROOM_INBOX_LEN_MAX", default_value_t = Limits::default().room_inbox_len_max, value_parser = at_least_one::<usize>())]
    pub room_inbox_len_max: usize,
    /// Most commands a room handles in one batch, which it persists with one commit.
    ///
    /// A larger batch means fewer commits under load, but the commands queued behind it wait for
    /// all of it; 256 keystroke-sized updates apply in about a millisecond.
    #[arg(long, env = "TANDEM_ROOM_BATCH_LEN_MAX", default_value_t = Limits::default().room_batch_len_max, value_parser = at_least_one::<usize>())]
    pub room_batch_len_max: usize,
    /// How often opening a document retries when it meets its room unloading (or deleted) at that
    /// very moment; past it the caller gets 503 `room_busy`.
    ///
    /// One retry starts a fresh room, so a second attempt almost always succeeds; 8 covers a
    /// document deleted and reopened in a burst, and stops a pathological case from spinning.
    #[arg(long, env = "TANDEM_ROOM_OPEN_ATTEMPTS_MAX", default_value_t = Limits::default().room_open_attempts_max, value_parser = at_least_one::<usize>())]
    pub room_open_attempts_max: usize,
    /// Rooms waiting for the group commit at once; a full queue makes rooms wait.
    ///
    /// Waiting is the back-pressure we want when the disk is the bottleneck; 4096 is far more
    /// rooms than ever write within one flush.
    #[arg(long, env = "TANDEM_COMMIT_WAITERS_MAX", default_value_t = Limits::default().commit_waiters_max, value_parser = at_least_one::<usize>())]
    pub commit_waiters_max: usize,
    /// Open websocket connections for the whole server; the next upgrade gets HTTP 503.
    #[arg(long, env = "TANDEM_CONNECTIONS_MAX", default_value_t = Limits::default().connections_max)]
    pub connections_max: usize,
    /// Presence (awareness) client IDs one socket may introduce; further IDs are ignored.
    ///
    /// A browser tab uses one; a few more cover client-ID changes during a session, and the
    /// bound stops a socket from filling the room's presence table.
    #[arg(long, env = "TANDEM_AWARENESS_CLIENTS_PER_CONN_MAX", default_value_t = Limits::default().awareness_clients_per_conn_max)]
    pub awareness_clients_per_conn_max: usize,
    /// Largest presence state one socket may publish, in bytes of JSON; larger ones are dropped.
    ///
    /// A name, a colour and a cursor take a few hundred bytes; 64 KiB leaves room for richer
    /// states while bounding what one socket parks in a room's presence table (16 IDs of 64 KiB)
    /// and what every stock client echoes back. Never more than a sixth of
    /// `frame_size_max_bytes`, so that an echo, grown by JavaScript's number formatting, fits in
    /// a frame (see `presence.rs`).
    #[arg(long, env = "TANDEM_AWARENESS_STATE_MAX_BYTES", default_value_t = Limits::default().awareness_state_max_bytes)]
    pub awareness_state_max_bytes: usize,
    /// Messages per second one socket may send on average; the socket is closed with 4429 beyond.
    ///
    /// Fast typing with cursor presence is under 50; 500 leaves room for scripted clients while
    /// stopping a flood.
    #[arg(long, env = "TANDEM_MESSAGES_PER_SEC_PER_CONN", default_value_t = Limits::default().messages_per_sec_per_conn)]
    pub messages_per_sec_per_conn: u32,
    /// Messages one socket may send in a burst (a reconnect, a paste split in many updates).
    #[arg(long, env = "TANDEM_MESSAGES_BURST_PER_CONN", default_value_t = Limits::default().messages_burst_per_conn)]
    pub messages_burst_per_conn: u32,
    /// New websocket connections per client IP per minute (HTTP 429 beyond).
    ///
    /// Generous because offices share one address; it stops reconnect storms, not users.
    #[arg(long, env = "TANDEM_CONNECTIONS_PER_IP_PER_MIN", default_value_t = Limits::default().connections_per_ip_per_min)]
    pub connections_per_ip_per_min: u32,
    /// Failed authentications per client IP per minute answered with 401; later failures in that
    /// minute get 429. A valid token is never refused for them.
    ///
    /// 429 tells a guessing or misconfigured client to back off. Behind a NAT or a load balancer
    /// many users share one address, and one of them must not lock out the rest.
    #[arg(long, env = "TANDEM_AUTH_FAILURES_PER_IP_PER_MIN", default_value_t = Limits::default().auth_failures_per_ip_per_min)]
    pub auth_failures_per_ip_per_min: u32,
    /// Open sockets per user (`sub`) when authentication is on (HTTP 429 beyond).
    #[arg(long, env = "TANDEM_SOCKETS_PER_USER_MAX", default_value_t = Limits::default().sockets_per_user_max)]
    pub sockets_per_user_max: usize,
    /// Change-feed events kept in memory for `Last-Event-ID` resumption.
    ///
    /// 10,000 covers minutes of a busy team; a client further behind is told to `reset` (re-list)
    /// instead.
    #[arg(long, env = "TANDEM_FEED_EVENTS_KEPT", default_value_t = Limits::default().feed_events_kept, value_parser = at_least_one::<usize>())]
    pub feed_events_kept: usize,
    /// Notifications in one page of `GET /api/me/notifications` (`limit`; HTTP 400 beyond).
    ///
    /// One screen of a notification list, and a bounded answer; the default page is 50.
    #[arg(long, env = "TANDEM_NOTIFICATIONS_PAGE_MAX", default_value_t = Limits::default().notifications_page_max, value_parser = at_least_one::<usize>())]
    pub notifications_page_max: usize,
    /// People in one page of `GET /api/people` (`limit`; HTTP 400 beyond); also the default page.
    ///
    /// A team's directory in one answer, bounded for a company-wide one.
    #[arg(long, env = "TANDEM_PEOPLE_PAGE_MAX", default_value_t = Limits::default().people_page_max, value_parser = at_least_one::<usize>())]
    pub people_page_max: usize,
    /// Open change-feed streams (`/api/events`) for the whole server (HTTP 503 beyond).
    #[arg(long, env = "TANDEM_FEED_STREAMS_MAX", default_value_t = Limits::default().feed_streams_max)]
    pub feed_streams_max: usize,
    /// Open change-feed streams per user (`sub`) when authentication is on (HTTP 429 beyond).
    ///
    /// So one token cannot take every stream. 16 covers a person's tabs and devices (a browser
    /// opens at most 6 HTTP/1.1 connections per server anyway) and a few integrations.
    #[arg(long, env = "TANDEM_FEED_STREAMS_PER_USER_MAX", default_value_t = Limits::default().feed_streams_per_user_max)]
    pub feed_streams_per_user_max: usize,
    /// Open change-feed streams per client IP (HTTP 429 beyond).
    ///
    /// A quarter of the server's streams, so no one address (or many users minted on one, in open
    /// mode or with dev login) takes them all, while an office behind one NAT address still fits.
    /// Behind a proxy that hides client addresses every client shares one: raise it to
    /// `feed_streams_max` there.
    #[arg(long, env = "TANDEM_FEED_STREAMS_PER_IP_MAX", default_value_t = Limits::default().feed_streams_per_ip_max)]
    pub feed_streams_per_ip_max: usize,
    /// Largest JSON body of a REST request, in bytes (HTTP 413 beyond).
    ///
    /// A note's body or a comment is text, not a file: 1 MiB holds a whole book of plain text.
    #[arg(long, env = "TANDEM_REST_BODY_MAX_BYTES", default_value_t = Limits::default().rest_body_max_bytes)]
    pub rest_body_max_bytes: u64,
    /// Largest page of a REST list (`?limit=`; HTTP 400 beyond).
    ///
    /// A page is read from the store in one call and rendered whole; 100 items answer in
    /// milliseconds, and clients page with `after` for more.
    #[arg(long, env = "TANDEM_REST_PAGE_LEN_MAX", default_value_t = Limits::default().rest_page_len_max, value_parser = at_least_one::<usize>())]
    pub rest_page_len_max: usize,
    /// Page length of a REST list that gives no `?limit=` (never more than
    /// `--rest-page-len-max`).
    ///
    /// Half the largest page: a listing screen shows a few dozen items, and a client that wants
    /// more says so.
    #[arg(long, env = "TANDEM_REST_PAGE_LEN_DEFAULT", default_value_t = Limits::default().rest_page_len_default, value_parser = at_least_one::<usize>())]
    pub rest_page_len_default: usize,
    /// Largest page of a document's history (`/api/docs/<doc>/history?limit=`; larger limits are
    /// cut to it).
    ///
    /// A history entry is metadata only (about 100 bytes of JSON), so 1000 is a 100 KB answer
    /// read in one store call.
    #[arg(long, env = "TANDEM_HISTORY_PAGE_LEN_MAX", default_value_t = Limits::default().history_page_len_max, value_parser = at_least_one::<usize>())]
    pub history_page_len_max: usize,
    /// Largest body of `POST /api/dev/token`, in bytes (HTTP 413 beyond).
    ///
    /// The body is `{"sub", "name"}`: a 64-byte `sub` and a display name fit many times over in
    /// 4 KiB, and nobody unauthenticated gets to make the server buffer more.
    #[arg(long, env = "TANDEM_DEV_TOKEN_BODY_MAX_BYTES", default_value_t = Limits::default().dev_token_body_max_bytes)]
    pub dev_token_body_max_bytes: u64,
    /// Documents one Hocuspocus socket may have open at once, authenticated or waiting; another
    /// gets PermissionDenied `too_many_documents`.
    ///
    /// Each costs its room a member and the socket an outbound queue of up to
    /// `outbound_queue_len_max` frames. A Tiptap page opens a handful (the document, its
    /// comments, a sidebar); 128 leaves room for apps that show many documents at once while
    /// bounding what one socket holds open.
    #[arg(long, env = "TANDEM_HOCUSPOCUS_DOCS_PER_CONN_MAX", default_value_t = Limits::default().hocuspocus_docs_per_conn_max, value_parser = at_least_one::<usize>())]
    pub hocuspocus_docs_per_conn_max: usize,
    /// Documents one Hocuspocus socket may have waiting for authentication (frames arrived, its
    /// token not yet checked or its room still loading); another gets PermissionDenied
    /// `preauth_documents_limit`.
    ///
    /// Each may start a document load, so this bounds the storage reads an unauthenticated
    /// socket can cause at once. The stock provider sends a document's token first and it is
    /// checked on arrival, so only a page attaching many documents in one burst comes near 16.
    /// Hocuspocus 4.3 added the same bound (GHSA-xwhh-v746-pj9m).
    #[arg(long, env = "TANDEM_PREAUTH_DOCS_PER_CONN_MAX", default_value_t = Limits::default().preauth_docs_per_conn_max, value_parser = at_least_one::<usize>())]
    pub preauth_docs_per_conn_max: usize,
    /// Bytes of frames one Hocuspocus socket may have held for documents waiting for
    /// authentication; the frame that would pass it refuses its document (`preauth_bytes_limit`).
    ///
    /// What the provider sends before its token is checked is a state vector and a presence
    /// state per document, hundreds of bytes; 1 MiB covers a burst of typing in that moment for
    /// every pending document while bounding what an unauthenticated socket makes the server
    /// hold.
    #[arg(long, env = "TANDEM_PREAUTH_BYTES_PER_CONN_MAX", default_value_t = Limits::default().preauth_bytes_per_conn_max)]
    pub preauth_bytes_per_conn_max: usize,
    /// Frames one Hocuspocus socket may have held for documents waiting for authentication
    /// (`preauth_messages_limit` beyond).
    ///
    /// Three or four per document; 256 bounds the bookkeeping of many tiny frames, which the
    /// byte bound alone would not.
    #[arg(long, env = "TANDEM_PREAUTH_MESSAGES_PER_CONN_MAX", default_value_t = Limits::default().preauth_messages_per_conn_max)]
    pub preauth_messages_per_conn_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_size_max_bytes: 16 * 1024 * 1024,
            nesting_depth_max: tandem_crdt_model::shape::NESTING_MAX_DEFAULT,
            doc_size_max_bytes: 64 * 1024 * 1024,
            outbound_queue_len_max: 1024,
            room_inbox_len_max: 1024,
            room_batch_len_max: 256,
            room_open_attempts_max: 8,
            commit_waiters_max: 4096,
            connections_max: 20_000,
            awareness_clients_per_conn_max: 16,
            awareness_state_max_bytes: 64 * 1024,
            messages_per_sec_per_conn: 500,
            messages_burst_per_conn: 5000,
            connections_per_ip_per_min: 6000,
            auth_failures_per_ip_per_min: 30,
            sockets_per_user_max: 64,
            feed_events_kept: 10_000,
            notifications_page_max: 200,
            people_page_max: 500,
            feed_streams_max: 1_000,
            feed_streams_per_user_max: 16,
            feed_streams_per_ip_max: 250,
            rest_body_max_bytes: 1024 * 1024,
            rest_page_len_max: 100,
            rest_page_len_default: 50,
            history_page_len_max: 1000,
            dev_token_body_max_bytes: 4096,
            hocuspocus_docs_per_conn_max: 128,
            preauth_docs_per_conn_max: 16,
            preauth_bytes_per_conn_max: 1024 * 1024,
            preauth_messages_per_conn_max: 256,
        }
    }
}

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

fn seconds(text: &str) -> Result<Duration, String> {
    whole(text).map(Duration::from_secs)
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
