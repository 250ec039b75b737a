//! The Yjs side of tandem, with no I/O.
//!
//! - [`history`]: restoring a past version as a new forward edit.
//! - [`protocol`]: the y-websocket wire codec (y-protocols sync, awareness, auth, query-awareness).
//!   It turns untrusted frames into typed messages and typed replies into frames, and never panics.
//!
//! - [`note`]: the typed view of a note (layout, read, validate, minimal edits).
//! - [`text`]: minimal text replacement shared by every typed edit.
//!
//! Contacts and issues will get their own modules beside `note`.
//!
//! Architecture invariant: nothing here touches sockets, files or clocks; every function is a pure
//! transformation of bytes and `yrs` values, so it can be fuzzed and tested without a server.

pub mod history;
pub mod note;
pub mod protocol;
pub mod text;
