//! Who wrote a document, by the server's own records: its creator and, for each client ID that
//! wrote into it, the author (JWT `sub`) it belongs to. A client writes under its Yjs client ID,
//! and the server binds that ID to the first author it saw write under it; authorship of any
//! content then follows from the content's ID, whatever fields a client wrote into the document.
//!
//! A binding covers a client ID's clocks from `start` on. Clients bind from 0 (their whole ID);
//! the server's own edits (REST) share one client ID per loaded room and bind a range per edit.

use crate::record::{self, put_str16, Reader, RecordError};

/// Clocks `start..` of `client` were written by `author`, until the client's next binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub client: u64,
    pub start: u32,
    pub author: String,
}

/// A document's authorship record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authorship {
    /// The author of the document's first update (`None` for documents written before this
    /// record existed).
    pub creator: Option<String>,
    /// In no particular order.
    pub bindings: Vec<Binding>,
}

/// A stored author name, checksummed like every record.
pub(crate) fn encode_author(author: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(author.len() + 2);
    put_str16(&mut body, author);
    record::seal(&body)
}

pub(crate) fn decode_author(raw: &[u8]) -> Result<String, RecordError> {
    let mut r = Reader::new(record::open(raw)?);
    let author = String::from_utf8_lossy(r.bytes16()?).into_owned();
    r.end()?;
    Ok(author)
}
