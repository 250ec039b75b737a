//! The typed REST API: notes, contacts and issues as JSON, with the same tokens and roles as the
//! websocket. Every write is a CRDT transaction made by the document's room (`RoomCmd::Edit`),
//! so connected editors see it live, it is persisted and attributed to the token's `sub`, and
//! the change feed describes it like any other edit.
//!
//! By job:
//! - [`routes`]: [`ROUTES`], the one description of the API: requests are dispatched by
//!   matching it, and `GET /api/openapi.json` is generated from it (`openapi.rs`).
//! - [`types`]: the request bodies and the answers, the types that are parsed and serialized and
//!   that the OpenAPI schemas are derived from.
//! - [`dispatch`]: the warp filter and what each operation does, in order: authenticate,
//!   authorize, validate, edit in the room, answer.
//! - [`validate`]: parsing bodies and checking fields, naming the field at fault.
//! - [`edits`]: the edits each operation sends to a room (create, patch, threads, delete).
//! - [`list`]: pages of a collection, read from the store.
//! - [`index`]: keeping the web demo's workspace index in step with REST edits.

mod dispatch;
mod edits;
mod index;
mod list;
pub mod routes;
pub mod types;
mod validate;

use tandem_crdt_model::typed::{self, DocKind};

use crate::auth::Principal;

pub use dispatch::routes;
pub use routes::{Route, ROUTES};

/// A typed collection as the API exposes it: a kind, shared or in the caller's private space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scope {
    pub kind: DocKind,
    pub private: bool,
}

const NOTES: Scope = Scope {
    kind: DocKind::Note,
    private: false,
};
const PRIVATE_NOTES: Scope = Scope {
    kind: DocKind::Note,
    private: true,
};
const CONTACTS: Scope = Scope {
    kind: DocKind::Contact,
    private: false,
};
const ISSUES: Scope = Scope {
    kind: DocKind::Issue,
    private: false,
};

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    List(Scope),
    Create(Scope),
    Read(Scope),
    Patch(Scope),
    Delete(Scope),
    AddEntry(Scope),
    EditEntry(Scope),
    DeleteEntry(Scope),
    SetStatus,
}

/// The document of `id` in `scope`: in the caller's own space for a private scope.
fn doc_of(scope: Scope, id: &str, principal: &Principal) -> String {
    typed::doc_name(scope.kind, id, scope.private.then_some(principal.space()))
}
