//! Every tunable of a running server, in one place: the CLI and the tests fill a [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tandem_storage::StoreConfig;

/// The bounds that keep one client, document or burst from exhausting the server.
/// Each has a test at its edge (see the README's "Guarantees").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest websocket message accepted. 16 MiB carries a large paste or the first sync of a
    /// big document, while bounding what one frame can make the server buffer.
    pub frame_size_max_bytes: usize,
    /// How deep values (JSON-like arrays and maps) and shared types (arrays, maps, XML elements
    /// inside each other) may nest in a document. `yrs` decodes values and deletes nested types
    /// recursively, so depth is stack: an array nested 10,000 deep (a 20 KB frame) aborted the
    /// server. 128 is far beyond real documents (a ProseMirror outline ten lists deep nests 30
    /// types) and what the JSON of a REST body may nest (`serde_json` stops at 128 too), while
    /// the recursion it allows fits a worker thread's stack many times over.
    pub nesting_depth_max: u32,
    /// Largest document (snapshot plus log, an upper bound of its encoded size). 64 MiB is far
    /// beyond any note or issue, yet keeps one room's memory in the hundreds of MiB.
    pub doc_size_max_bytes: u64,
    /// Frames waiting to be written to one socket. A reader this far behind is closed (and
    /// resyncs on reconnect) instead of making the room buffer without bound.
    pub outbound_queue_len_max: usize,
    /// Commands waiting for one room. When full, connections wait, which pushes back on
    /// the clients that flood the room rather than on memory.
    pub room_inbox_len_max: usize,
    /// Rooms waiting for the group commit at once. A full queue makes rooms wait, which is the
    /// back-pressure we want when the disk is the bottleneck; 4096 is far more rooms than ever
    /// write within one flush.
    pub commit_waiters_max: usize,
    /// Open websocket connections for the whole server; the next upgrade gets HTTP 503.
    pub connections_max: usize,
    /// Awareness client IDs one socket may introduce. A browser tab uses one; a few more
    /// cover client-ID changes during a session, and the bound stops a socket from filling the
    /// room's presence table.
    pub awareness_clients_per_conn_max: usize,
    /// Largest presence state (the JSON of one awareness entry) a socket may publish; a larger
    /// one is dropped. A name, a colour and a cursor take a few hundred bytes; 64 KiB leaves room
    /// for richer states while bounding what one socket parks in a room's presence table (16 IDs
    /// of 64 KiB) and what every stock client echoes back. Never more than a sixth of
    /// `frame_size_max_bytes`, so that an echo, grown by JavaScript's number formatting, fits in
    /// a frame (see `presence.rs`).
    pub awareness_state_max_bytes: usize,
    /// Messages per second one socket may send on average. Fast typing with cursor presence is
    /// under 50; 500 leaves room for scripted clients while stopping a flood.
    pub messages_per_sec_per_conn: u32,
    /// Messages one socket may send in a burst (a reconnect, a paste split in many updates).
    pub messages_burst_per_conn: u32,
    /// New websocket connections per client IP per minute (HTTP 429 beyond). Generous because
    /// offices share one address; it stops reconnect storms, not users.
    pub connections_per_ip_per_min: u32,
    /// Failed authentications per client IP per minute answered with 401; further failures in
    /// that minute get 429, telling a guessing or misconfigured client to back off. A valid
    /// token is never refused for them: behind a NAT or a load balancer many users share one
    /// address, and one of them must not lock out the rest.
    pub auth_failures_per_ip_per_min: u32,
    /// Open sockets per user (`sub`) when authentication is on (HTTP 429 beyond).
    pub sockets_per_user_max: usize,
    /// Change-feed events kept in memory for `Last-Event-ID` resumption. 10,000 covers minutes
    /// of a busy team; a client further behind is told to `reset` (re-list) instead.
    pub feed_events_kept: usize,
    /// Notifications in one page of `GET /api/me/notifications` (`limit`, HTTP 400 beyond): one
    /// screen of a notification list, and a bounded answer.
    pub notifications_page_max: usize,
    /// People in one page of `GET /api/people`.
    pub people_page_max: usize,
    /// Open change-feed streams for the whole server (HTTP 503 beyond).
    pub feed_streams_max: usize,
    /// Open change-feed streams per user (`sub`) when authentication is on (HTTP 429 beyond), so
    /// one token cannot take every stream. 16 covers a person's tabs and devices (a browser opens
    /// at most 6 HTTP/1.1 connections per server anyway) and a few integrations.
    pub feed_streams_per_user_max: usize,
    /// Open change-feed streams per client IP (HTTP 429 beyond): a quarter of the server's
    /// streams, so no one address (or many users minted on one, in open mode or with dev login)
    /// takes them all, while an office behind one NAT address still fits. Behind a proxy that
    /// hides client addresses every client shares one: raise it to `feed_streams_max` there.
    pub feed_streams_per_ip_max: usize,
    /// Largest JSON body of a REST request: a note's body or a comment is text, not a file.
    pub rest_body_max_bytes: u64,
    /// Largest page of a REST list.
    pub rest_page_len_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_size_max_bytes: 16 * 1024 * 1024,
            nesting_depth_max: tandem_crdt_model::shape::NESTING_MAX_DEFAULT,
            doc_size_max_bytes: 64 * 1024 * 1024,
            outbound_queue_len_max: 1024,
            room_inbox_len_max: 1024,
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
        }
    }
}

/// Timers.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Websocket ping period. A peer that has not answered the previous ping by the next tick is
    /// closed. 30 s matches what stock clients expect (they drop a socket silent for 30 s).
    pub ping_interval: Duration,
    /// How long a room with no sockets stays loaded, so a page reload does not reload the doc.
    pub room_idle_grace: Duration,
    /// How long a close handshake or a final write may take before the socket is dropped.
    pub close_timeout: Duration,
    /// How long one frame may take to reach the kernel. A peer whose receive window stays shut
    /// this long is not reading; without this bound its connection task would wait on the write
    /// (TCP keeps probing a zero window forever) and hold a connection slot.
    pub write_stall_max: Duration,
    /// Shortest time between two presence broadcasts of a room; changes in between are
    /// coalesced into one frame. Stock providers send back every presence frame they receive, so
    /// this rate (20 frames/s) bounds what any socket echoes, however fast others publish, and
    /// 50 ms is below what a person notices in a moving cursor.
    pub presence_broadcast_interval: Duration,
    /// How long the server waits for a complete request head, counted from when it starts
    /// waiting: on a new connection, or on a kept-alive one once the previous answer is out (so
    /// this is also how long an idle keep-alive connection stays open). A real client sends its
    /// head at once, within a round trip even on a poor mobile link; a client dripping a header
    /// a byte at a time, or a connection opened and never used, is closed after 10 s. Browsers
    /// reopen a closed keep-alive connection by themselves, and 10 s still lets a page's burst
    /// of requests share one.
    pub http_head_read_max: Duration,
    /// How long an HTTP connection may move no byte in either direction while a request is
    /// being read or answered: a body that stops arriving, or an answer the client stops
    /// reading, is closed after 60 s. Long above the keep-alive comments of event streams (sent
    /// at least every half of this, and every 15 s at most) and any answer a healthy room takes
    /// to give; websockets leave this bound at the upgrade and have their own pings.
    pub http_idle_max: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ping_interval: Duration::from_secs(30),
            room_idle_grace: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
            write_stall_max: Duration::from_secs(10),
            presence_broadcast_interval: Duration::from_millis(50),
            http_head_read_max: Duration::from_secs(10),
            http_idle_max: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub timing: Timing,
    pub store: StoreConfig,
    /// How tokens are verified; `None` is open development mode (everyone may write everything).
    pub auth: Option<crate::auth::Verifier>,
    /// With an HS256 secret: lets `POST /api/dev/token` mint write tokens for any name (a
    /// sign-in for demos and local development; never enable it in production).
    pub dev_login_secret: Option<Vec<u8>>,
    /// The built web demo served at `/`; `None` serves nothing there.
    pub static_dir: Option<PathBuf>,
    /// Cluster mode: documents live in this Redis and nodes share them (`None`: sled, one node).
    pub redis_url: Option<String>,
}

impl Config {
    /// The embedded defaults: loopback, `./data`, no auth.
    pub fn new(addr: SocketAddr, data_dir: PathBuf) -> Self {
        Config {
            addr,
            data_dir,
            limits: Limits::default(),
            timing: Timing::default(),
            store: StoreConfig::default(),
            auth: None,
            dev_login_secret: None,
            redis_url: None,
            static_dir: None,
        }
    }
}
