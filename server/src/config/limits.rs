//! The bounds that keep one client, document or burst from exhausting the server.

// The flag parsers and the types every part of the configuration uses.
use super::*;

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
    /// Sync requests one socket may make of one document per minute, on average: SyncStep1, and
    /// presence queries (y-protocols' query-awareness).
    ///
    /// Each is answered with a snapshot encoded for the asker alone: what it lacks of the
    /// document (up to `doc_size_max_bytes`), or everyone's presence, queued until the socket
    /// takes it. A client that asks a thousand times without reading would make the server
    /// encode and hold a thousand copies. Stock clients ask once per (re)connection, or every
    /// `resyncInterval` if set; requests beyond the budget are not answered (the asker already
    /// has an answer, and every change since reaches it anyway), and counted in
    /// `tandem_sync_requests_dropped_total`.
    #[arg(long, env = "TANDEM_SYNC_REQUESTS_PER_MIN", default_value_t = Limits::default().sync_requests_per_min)]
    pub sync_requests_per_min: u32,
    /// Sync requests one socket may make of one document in a burst.
    #[arg(long, env = "TANDEM_SYNC_REQUESTS_BURST", default_value_t = Limits::default().sync_requests_burst, value_parser = at_least_one::<u32>())]
    pub sync_requests_burst: u32,
    /// Largest stateless message (Hocuspocus' `sendStateless`) a socket may send, in bytes; larger
    /// ones are dropped, not relayed.
    ///
    /// Every other page of the document receives a copy: a bound on what one frame makes the
    /// server write N times. Stateless messages are signals (a cursor jump, a "saved" notice);
    /// 64 KiB, the bound of a presence state, leaves room for rich ones.
    #[arg(long, env = "TANDEM_STATELESS_MAX_BYTES", default_value_t = Limits::default().stateless_max_bytes)]
    pub stateless_max_bytes: usize,
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
            sync_requests_per_min: 60,
            sync_requests_burst: 8,
            stateless_max_bytes: 64 * 1024,
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
