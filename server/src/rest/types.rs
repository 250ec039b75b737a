//! The bodies of the REST API: what requests are parsed into and what answers are serialized
//! from. The OpenAPI schemas are derived from these same types (`routes.rs`, `openapi.rs`), so
//! the document and the bytes on the wire cannot drift apart; `openapi.rs` tests each answer
//! against its schema as well.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tandem_crdt_model::schema::SchemaIssue;
use tandem_crdt_model::typed::{self, DocKind, Typed};
use yrs::Doc;

/// A typed document as the API returns it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Item<T> {
    /// The id in its collection.
    pub id: String,
    /// The Yjs document name (connect a y-websocket provider to `/sync/<doc>`).
    pub doc: String,
    #[serde(flatten)]
    pub value: T,
    /// Where the document deviates from its layout (a client wrote a number where text
    /// belongs, ...). Such values read as defaults; the document itself is left as it is.
    pub schema_issues: Vec<SchemaIssue>,
}

impl Item<Typed> {
    /// The reading of the document `name`, `id` in its collection; `None` while it is blank
    /// (nobody has created it).
    pub fn read(kind: DocKind, doc: &Doc, id: &str, name: &str) -> Option<Self> {
        let (value, schema_issues) = typed::read(kind, doc);
        (!value.is_blank()).then(|| Item {
            id: id.to_string(),
            doc: name.to_string(),
            value,
            schema_issues,
        })
    }
}

/// A page of a listing, in id order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<String>,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Deleted {
    pub deleted: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteCreate {
    /// Chosen by the client (`doc_name::validate_id`); generated if absent.
    #[serde(default)]
    #[schemars(regex(pattern = crate::doc_name::id_pattern()))]
    pub id: Option<String>,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub title: String,
    /// Plain text; each line becomes a paragraph of the rich-text body.
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::LIST_LEN_MAX), inner(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX)))]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactCreate {
    #[serde(default)]
    #[schemars(regex(pattern = crate::doc_name::id_pattern()))]
    pub id: Option<String>,
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX), regex(pattern = r"\S"))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub email: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub phone: String,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub company: String,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub custom: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueCreate {
    #[serde(default)]
    #[schemars(regex(pattern = crate::doc_name::id_pattern()))]
    pub id: Option<String>,
    #[schemars(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX))]
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// `open` (default), `in_progress`, `done` or `cancelled`.
    #[serde(default)]
    #[schemars(extend("enum" = ["open", "in_progress", "done", "cancelled", null]))]
    pub status: Option<String>,
    /// `low`, `medium` (default), `high` or `urgent`.
    #[serde(default)]
    #[schemars(extend("enum" = ["low", "medium", "high", "urgent", null]))]
    pub priority: Option<String>,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::LIST_LEN_MAX), inner(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX)))]
    pub assignees: Vec<String>,
    #[serde(default)]
    #[schemars(length(max = tandem_crdt_model::schema::LIST_LEN_MAX), inner(length(max = tandem_crdt_model::schema::SHORT_TEXT_CHARS_MAX)))]
    pub labels: Vec<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EntryText {
    pub text: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    /// `open`, `in_progress`, `done` or `cancelled`.
    #[schemars(extend("enum" = ["open", "in_progress", "done", "cancelled"]))]
    pub status: String,
}
