//! The Yjs side of tandem, with no I/O.
//!
//! - [`bounded_alloc`]: the global allocator bound that makes length-prefix bombs fail fast.
//! - [`doc`]: a server's document: built from stored updates, changed under guard, read as diffs.
//! - [`deleted`]: a document's delete set kept current, so a reader's frame is checked without a
//!   walk of the whole document.
//! - [`history`]: restoring a past version as a new forward edit.
//! - [`shape`]: what an update is, read without integrating it or recursing: what it needs from
//!   a document, what it brings and deletes, how deep it nests.
//! - [`protocol`]: the y-websocket wire codec (y-protocols sync, awareness, auth, query-awareness).
//!   It turns untrusted frames into typed messages and typed replies into frames, and never panics.
//! - [`hocuspocus`]: the Hocuspocus wire codec (addressed frames, several documents per socket,
//!   per-document auth, acknowledgements, stateless messages, ping/pong), on the same decoders.
//!
//! - [`note`], [`contact`], [`issue`]: the typed documents. Each module documents its Yjs layout
//!   (so browser and mobile clients build the same shape), reads it as a serde struct while
//!   reporting schema deviations, and applies typed edits as one transaction of minimal changes.
//! - [`typed`]: the three kinds together: where they live in the namespace, and the typed events
//!   (`note.updated`, `issue.status_changed`, ...) that describe what changed between two readings.
//! - [`notify`]: who a change concerns: the notifications it addresses to people (assigned,
//!   mentioned, replied, commented, status changed).
//! - [`index`]: the workspace index the web demo lists collections from (one summary row per item).
//! - [`thread`]: reply/comment threads shared by notes and issues; [`schema`]: reading against a
//!   layout; [`text`]: minimal text and list edits.
//!
//! Architecture invariant: nothing here touches sockets, files or clocks; every function is a pure
//! transformation of bytes and `yrs` values, so it can be fuzzed and tested without a server.

pub mod bounded_alloc;
pub mod contact;
pub mod deleted;
pub mod doc;
pub mod history;
pub mod hocuspocus;
pub mod index;
pub mod issue;
pub mod note;
pub mod notify;
pub mod protocol;
pub mod schema;
pub mod shape;
pub mod text;
pub mod thread;
pub mod typed;

/// Helpers shared by the unit tests of the typed documents.
#[cfg(test)]
pub(crate) mod test_support {
    use yrs::updates::decoder::Decode;
    use yrs::{Doc, ReadTxn, Transact, Update};

    /// Exchanges what each replica lacks, both ways, as two peers syncing would.
    pub fn merge(a: &Doc, b: &Doc) {
        for (from, to) in [(a, b), (b, a)] {
            let sv = to.transact().state_vector();
            let u = from.transact().encode_state_as_update_v1(&sv);
            to.transact_mut()
                .apply_update(Update::decode_v1(&u).expect("decodes"))
                .expect("applies");
        }
    }
}
