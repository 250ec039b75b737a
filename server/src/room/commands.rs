//! What the rest of the server sends a room, and what a room answers: the room's whole API.

use std::sync::Arc;

use tandem_crdt_model::protocol::{ClientUpdate, Inbound};
use tandem_crdt_model::shape::UpdateShape;
use tandem_storage::{CompactionReport, StoreError, UpdateRecord};
use tokio::sync::oneshot;
use yrs::{Doc, StateVector};

use super::mailbox::Mailbox;
use crate::authorship::Authors;

/// The reason a read-only member (and an HTTP sync with a read-only token) is given when its
/// edit is refused: stock providers show it to their user (y-websocket logs "Permission denied
/// to access <url>" and this), so it says why, not only that.
pub const READ_ONLY: &str =
    "read-only: the token's role on this document is read, so its edits are refused";

/// One attachment of a connection to a document. A y-websocket socket holds one; a connection
/// of a multiplexing dialect may hold several, each its own member.
pub type MemberId = u64;

/// A member as the room sees it: who it speaks for and where its messages go.
pub struct Member {
    pub id: MemberId,
    /// The author recorded next to this member's updates (the token's `sub`).
    pub author: Arc<str>,
    /// Read-only members receive everything; their edits are refused.
    pub can_write: bool,
    /// Where the room's messages for it go, and why the room lets it go. Bounded: a member
    /// whose mailbox is full is detached as a slow consumer.
    pub mailbox: Mailbox,
    /// What the member takes besides the document and presence.
    pub receives: Receives,
}

/// Messages only some members take; a member that did not ask costs the room nothing for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receives {
    /// One [`Outgoing::Ack`](super::Outgoing::Ack) for every update or SyncStep2 it sends:
    /// applied (durable, or already in the document) or refused. A member its own update
    /// detaches gets none for it: its attachment ends instead.
    pub acks: bool,
    /// Other members' [`Outgoing::Stateless`](super::Outgoing::Stateless) messages.
    pub stateless: bool,
}

/// Why a room could not serve a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RoomError {
    #[error("document {doc} could not be loaded: {cause}")]
    Load { doc: String, cause: String },
    #[error("the document is being unloaded; retry")]
    Gone,
}

pub enum RoomCmd {
    /// Answered once the document is loaded (or failed to load).
    Ready(oneshot::Sender<Result<(), RoomError>>),
    /// Answered once the member's first messages (our SyncStep1, presence) are queued.
    Join(Member, oneshot::Sender<()>),
    Inbound {
        member: MemberId,
        messages: Vec<Inbound>,
    },
    Leave {
        member: MemberId,
    },
    Compacted(Result<CompactionReport, StoreError>),
    /// Edits from HTTP: one-round-trip sync, restores. Boxed: the largest command by far, and
    /// every slot of every room's inbox and batch is the size of the largest.
    HttpSync(Box<HttpSync>),
    /// A typed edit from the REST API, made by the room on its own document.
    Edit(Edit),
    /// Cluster mode: updates other nodes appended to this document's stream, in order.
    Remote(Vec<UpdateRecord>),
    /// Cluster mode: presence of another node's sockets.
    RemoteAwareness {
        node: String,
        update: Vec<u8>,
    },
    /// Cluster mode: a room opened on another node; republish our members' presence.
    AwarenessHello,
    /// Cluster mode: a node's lease expired; drop the presence that came from it.
    NodeGone(String),
    /// Cluster mode: another node deleted the document.
    RemoteDeleted,
    /// The document's full state as one update (durable: read between batches).
    State(oneshot::Sender<Vec<u8>>),
    /// Detaches every member, deletes the document from the store, unloads the room.
    Delete {
        /// Who deleted it (the feed's `by`).
        by: Arc<str>,
        reply: oneshot::Sender<Result<bool, String>>,
    },
}

/// A one-round-trip sync request (`POST /api/docs/<doc>/sync`).
pub struct HttpSync {
    /// What the client has.
    pub state_vector: StateVector,
    /// The client's offline edits, in order, when it may write.
    pub updates: Vec<ClientUpdate>,
    /// The shapes of its updates when it may not (only those that would change the document
    /// are refused).
    pub read_only: Vec<UpdateShape>,
    pub author: Arc<str>,
    /// The state tag the client last saw: if nothing changed and nothing was refused, the
    /// room skips computing a diff.
    pub if_none_match: Option<String>,
    pub reply: oneshot::Sender<Result<HttpSyncReply, HttpSyncError>>,
}

/// The room's answer to an HTTP sync, once its edits are durable. The HTTP layer frames it.
#[derive(Debug)]
pub struct HttpSyncReply {
    /// What the client lacks (a Yjs v1 update); `None` when the document is as the client last
    /// saw it and nothing was refused ("not modified").
    pub diff: Option<Vec<u8>>,
    /// The server's state vector now, and its tag (`doc::state_tag`).
    pub state_vector: StateVector,
    pub tag: String,
    /// Edits refused (read-only caller, another author's client ID).
    pub refused_updates: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpSyncError {
    #[error("the edits would take the document past its size limit")]
    TooLarge,
    #[error("an update does not apply: {0}")]
    Invalid(String),
    #[error("storage failure")]
    Storage,
    #[error(transparent)]
    Room(#[from] RoomError),
}

/// What a REST edit does to the document, and what it answers.
///
/// It runs on the room's task, against the room's document, in transactions of its own: typed
/// edits are small and bounded by the REST body limit, and running them here (rather than on a
/// copy) means they see every edit acknowledged before them and need no second merge. It gets
/// the room's authorship record too: "author or admin" rules read it.
pub type EditFn = Box<dyn FnOnce(&Doc, &Authors) -> Result<serde_json::Value, EditError> + Send>;

pub struct Edit {
    pub author: Arc<str>,
    /// Must leave the document untouched when it returns `Err`.
    pub apply: EditFn,
    pub reply: oneshot::Sender<Result<serde_json::Value, EditError>>,
}

/// Why a REST edit was not made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EditError {
    /// The thing to change does not exist (a document not created yet, a reply id).
    #[error("{0}")]
    NotFound(String),
    /// A value in the request is not allowed; `field` names it.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// The document is in a state that forbids the edit (creating what exists).
    #[error("{0}")]
    Conflict(String),
    /// The caller may write the document but not change this part of it (another's reply).
    #[error("{0}")]
    Forbidden(String),
    #[error("the document is at its size limit")]
    TooLarge,
    #[error("the edit failed inside the CRDT library; nothing was changed")]
    Failed,
    #[error("storage failure")]
    Storage,
    #[error(transparent)]
    Room(#[from] RoomError),
}
