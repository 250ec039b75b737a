//! Websocket close codes the server sends, and why. Stock y-websocket clients reconnect after
//! any close, so a code tells the operator (and a smarter client) what happened.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// The client asked to close (a Hocuspocus CLOSE for one document; RFC 6455 1000).
    Normal,
    /// A text frame: the protocol is binary only (RFC 6455 1003, unsupported data).
    Unsupported,
    /// A binary frame that is not a valid y-websocket message (RFC 6455 1007).
    InvalidPayload,
    /// A frame larger than `frame_size_max_bytes` (RFC 6455 1009).
    TooBig,
    /// The server could not persist or load the document (RFC 6455 1011).
    InternalError,
    /// The server is shutting down; reconnect, possibly elsewhere (RFC 6455 1012).
    Restart,
    /// The socket's outbound queue overflowed: it reads slower than the room writes.
    SlowConsumer,
    /// No pong arrived within a ping interval.
    PingTimeout,
    /// The socket sent messages faster than `messages_per_sec_per_conn` allows.
    RateLimited,
    /// The socket's token expired; reconnect with a fresh one.
    TokenExpired,
    /// An admin deleted the document.
    DocumentDeleted,
    /// An update would push the document past `doc_size_max_bytes`.
    DocumentTooLarge,
    /// A Hocuspocus socket authenticated no document within `preauth_wait_max` (the code
    /// Hocuspocus uses for its own connection timeout).
    AuthTimeout,
}

impl CloseCode {
    pub fn code(self) -> u16 {
        match self {
            CloseCode::Normal => 1000,
            CloseCode::Unsupported => 1003,
            CloseCode::InvalidPayload => 1007,
            CloseCode::TooBig => 1009,
            CloseCode::InternalError => 1011,
            CloseCode::Restart => 1012,
            CloseCode::SlowConsumer => 4001,
            CloseCode::PingTimeout => 4002,
            CloseCode::TokenExpired => 4401,
            CloseCode::RateLimited => 4429,
            CloseCode::DocumentDeleted => 4404,
            CloseCode::DocumentTooLarge => 4413,
            CloseCode::AuthTimeout => 4408,
        }
    }

    /// The short reason sent in the close frame (at most 123 bytes by RFC 6455).
    pub fn reason(self) -> &'static str {
        match self {
            CloseCode::Normal => "closed by the client",
            CloseCode::Unsupported => "text frames are not part of the protocol",
            CloseCode::InvalidPayload => "malformed message",
            CloseCode::TooBig => "frame too large",
            CloseCode::InternalError => "storage failure",
            CloseCode::Restart => "server restarting",
            CloseCode::SlowConsumer => "socket too slow to keep up",
            CloseCode::PingTimeout => "ping timeout",
            CloseCode::TokenExpired => "token expired",
            CloseCode::RateLimited => "rate limit exceeded",
            CloseCode::DocumentDeleted => "document deleted",
            CloseCode::DocumentTooLarge => "document size limit reached",
            CloseCode::AuthTimeout => "no document authenticated in time",
        }
    }
}
