//! The route table: every REST operation, how a request is matched to it, and what the OpenAPI
//! document says of it. Its types are those of `types.rs`, so the document describes the bodies
//! that are really parsed and sent.

use schemars::JsonSchema;
use tandem_crdt_model::contact::{Contact, ContactEdit};
use tandem_crdt_model::issue::{Issue, IssueEdit};
use tandem_crdt_model::note::{Note, NoteEdit};
use tandem_crdt_model::thread::Entry;
use warp::http::Method;
use warp::reply::Response;

use super::types::{
    ContactCreate, Deleted, EntryText, IssueCreate, Item, NoteCreate, Page, StatusChange,
};
use super::validate::check_id;
use super::{Op, CONTACTS, ISSUES, NOTES, PRIVATE_NOTES};

/// A schema generator for a request or response body.
pub type SchemaOf = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// One REST operation: how it is matched and how it is documented.
pub struct Route {
    pub method: Method,
    /// `{id}` and `{entry}` are path parameters (ids: `doc_name::validate_id`).
    pub path: &'static str,
    pub op: Op,
    pub summary: &'static str,
    pub body: Option<SchemaOf>,
    /// The success status and body.
    pub ok: (u16, SchemaOf),
    /// The error statuses it may answer besides 401/403/429.
    pub errors: &'static [u16],
}

fn schema<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

macro_rules! route {
    ($method:ident $path:literal, $op:expr, $summary:literal, body $body:ty, ok $code:literal $ok:ty, errors $errors:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            op: $op,
            summary: $summary,
            body: Some(schema::<$body>),
            ok: ($code, schema::<$ok>),
            errors: $errors,
        }
    };
    ($method:ident $path:literal, $op:expr, $summary:literal, ok $code:literal $ok:ty, errors $errors:expr) => {
        Route {
            method: Method::$method,
            path: $path,
            op: $op,
            summary: $summary,
            body: None,
            ok: ($code, schema::<$ok>),
            errors: $errors,
        }
    };
}

/// Every REST operation.
pub static ROUTES: std::sync::LazyLock<Vec<Route>> = std::sync::LazyLock::new(|| {
    vec![
        route!(GET "/api/notes", Op::List(NOTES), "List shared notes", ok 200 Page<Item<Note>>, errors &[400]),
        route!(POST "/api/notes", Op::Create(NOTES), "Create a shared note", body NoteCreate, ok 201 Item<Note>, errors &[400, 409, 413]),
        route!(GET "/api/notes/{id}", Op::Read(NOTES), "Read a note", ok 200 Item<Note>, errors &[400, 404]),
        route!(PATCH "/api/notes/{id}", Op::Patch(NOTES), "Edit a note's title, tags or private flag", body NoteEdit, ok 200 Item<Note>, errors &[400, 404, 413]),
        route!(DELETE "/api/notes/{id}", Op::Delete(NOTES), "Delete a note (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
        route!(POST "/api/notes/{id}/replies", Op::AddEntry(NOTES), "Reply to a note", body EntryText, ok 201 Entry, errors &[400, 404, 413]),
        route!(PATCH "/api/notes/{id}/replies/{entry}", Op::EditEntry(NOTES), "Edit a reply (its author or an admin)", body EntryText, ok 200 Entry, errors &[400, 404, 413]),
        route!(DELETE "/api/notes/{id}/replies/{entry}", Op::DeleteEntry(NOTES), "Delete a reply (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
        route!(GET "/api/private/notes", Op::List(PRIVATE_NOTES), "List the caller's private notes", ok 200 Page<Item<Note>>, errors &[400]),
        route!(POST "/api/private/notes", Op::Create(PRIVATE_NOTES), "Create a private note", body NoteCreate, ok 201 Item<Note>, errors &[400, 409, 413]),
        route!(GET "/api/private/notes/{id}", Op::Read(PRIVATE_NOTES), "Read a private note", ok 200 Item<Note>, errors &[400, 404]),
        route!(PATCH "/api/private/notes/{id}", Op::Patch(PRIVATE_NOTES), "Edit a private note", body NoteEdit, ok 200 Item<Note>, errors &[400, 404, 413]),
        route!(DELETE "/api/private/notes/{id}", Op::Delete(PRIVATE_NOTES), "Delete a private note", ok 200 Deleted, errors &[400, 404]),
        route!(POST "/api/private/notes/{id}/replies", Op::AddEntry(PRIVATE_NOTES), "Reply to a private note", body EntryText, ok 201 Entry, errors &[400, 404, 413]),
        route!(PATCH "/api/private/notes/{id}/replies/{entry}", Op::EditEntry(PRIVATE_NOTES), "Edit a reply of a private note", body EntryText, ok 200 Entry, errors &[400, 404, 413]),
        route!(DELETE "/api/private/notes/{id}/replies/{entry}", Op::DeleteEntry(PRIVATE_NOTES), "Delete a reply of a private note", ok 200 Deleted, errors &[400, 404]),
        route!(GET "/api/contacts", Op::List(CONTACTS), "List contacts", ok 200 Page<Item<Contact>>, errors &[400]),
        route!(POST "/api/contacts", Op::Create(CONTACTS), "Create a contact", body ContactCreate, ok 201 Item<Contact>, errors &[400, 409, 413]),
        route!(GET "/api/contacts/{id}", Op::Read(CONTACTS), "Read a contact", ok 200 Item<Contact>, errors &[400, 404]),
        route!(PATCH "/api/contacts/{id}", Op::Patch(CONTACTS), "Edit a contact's fields (a custom field set to null is removed)", body ContactEdit, ok 200 Item<Contact>, errors &[400, 404, 413]),
        route!(DELETE "/api/contacts/{id}", Op::Delete(CONTACTS), "Delete a contact (admin)", ok 200 Deleted, errors &[400, 404]),
        route!(GET "/api/issues", Op::List(ISSUES), "List issues", ok 200 Page<Item<Issue>>, errors &[400]),
        route!(POST "/api/issues", Op::Create(ISSUES), "Create an issue", body IssueCreate, ok 201 Item<Issue>, errors &[400, 409, 413]),
        route!(GET "/api/issues/{id}", Op::Read(ISSUES), "Read an issue", ok 200 Item<Issue>, errors &[400, 404]),
        route!(PATCH "/api/issues/{id}", Op::Patch(ISSUES), "Edit an issue", body IssueEdit, ok 200 Item<Issue>, errors &[400, 404, 413]),
        route!(DELETE "/api/issues/{id}", Op::Delete(ISSUES), "Delete an issue (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
        route!(PUT "/api/issues/{id}/status", Op::SetStatus, "Change an issue's status", body StatusChange, ok 200 Item<Issue>, errors &[400, 404]),
        route!(POST "/api/issues/{id}/comments", Op::AddEntry(ISSUES), "Comment on an issue", body EntryText, ok 201 Entry, errors &[400, 404, 413]),
        route!(PATCH "/api/issues/{id}/comments/{entry}", Op::EditEntry(ISSUES), "Edit a comment (its author or an admin)", body EntryText, ok 200 Entry, errors &[400, 404, 413]),
        route!(DELETE "/api/issues/{id}/comments/{entry}", Op::DeleteEntry(ISSUES), "Delete a comment (its author or an admin)", ok 200 Deleted, errors &[400, 404]),
    ]
});

/// One matched request.
pub(super) struct Call<'a> {
    pub op: Op,
    pub id: Option<&'a str>,
    pub entry: Option<&'a str>,
}

/// Finds the route of `method path`: `Ok(None)` when no route has this path (another filter may
/// serve it), `Err` with the answer for a known path with the wrong method (405 with `Allow`) or
/// a malformed parameter.
pub(super) fn route_of<'a>(
    method: &Method,
    path: &'a str,
) -> Result<Option<Call<'a>>, Box<Response>> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut allowed = Vec::new();
    for route in ROUTES.iter() {
        let template: Vec<&str> = route.path.split('/').collect();
        if template.len() != segments.len() {
            continue;
        }
        let mut id = None;
        let mut entry = None;
        let matches = template.iter().zip(&segments).all(|(t, s)| match *t {
            "{id}" => {
                id = Some(*s);
                true
            }
            "{entry}" => {
                entry = Some(*s);
                true
            }
            literal => literal == *s,
        });
        if !matches {
            continue;
        }
        if route.method != *method {
            allowed.push(route.method.as_str());
            continue;
        }
        for (name, value) in [("id", id), ("entry", entry)] {
            if let Some(value) = value {
                check_id(name, value).map_err(|e| Box::new(e.into_response()))?;
            }
        }
        return Ok(Some(Call {
            op: route.op,
            id,
            entry,
        }));
    }
    if allowed.is_empty() {
        return Ok(None);
    }
    Err(Box::new(crate::api_error::method_not_allowed(&allowed)))
}
