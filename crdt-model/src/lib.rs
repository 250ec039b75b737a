//! The Yjs side of tandem, with no I/O.
//!
//! - [`history`]: restoring a past version as a new forward edit.
//! - [`protocol`]: the y-websocket wire codec (y-protocols sync, awareness, auth, query-awareness).
//!   It turns untrusted frames into typed messages and typed replies into frames, and never panics.
//!
//! - [`note`], [`contact`], [`issue`]: the typed documents. Each module documents its Yjs layout
//!   (so browser and mobile clients build the same shape), reads it as a serde struct while
//!   reporting schema deviations, and applies typed edits as one transaction of minimal changes.
//! - [`thread`]: reply/comment threads shared by notes and issues; [`schema`]: reading against a
//!   layout; [`text`]: minimal text and list edits.
//!
//! Architecture invariant: nothing here touches sockets, files or clocks; every function is a pure
//! transformation of bytes and `yrs` values, so it can be fuzzed and tested without a server.

pub mod contact;
pub mod history;
pub mod issue;
pub mod note;
pub mod protocol;
pub mod schema;
pub mod text;
pub mod thread;
