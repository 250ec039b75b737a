//! The edits the REST operations send to a document's room: each is validated first, then made
//! as one closure on the room's `Doc` that answers with the document's (or entry's) new reading.

use std::sync::Arc;

use serde_json::Value;
use tandem_crdt_model::contact::{self, ContactEdit};
use tandem_crdt_model::issue::{self, IssueEdit};
use tandem_crdt_model::note::{self, NoteEdit};
use tandem_crdt_model::thread::{self, Entry};
use tandem_crdt_model::typed::{self, DocKind, Typed};
use warp::http::StatusCode;
use yrs::Doc;

use super::types::{ContactCreate, Deleted, IssueCreate, Item, NoteCreate};
use super::validate::{check_enum, check_id, check_list, check_short, parse};
use super::{doc_of, Op, Scope};
use crate::api::{ask_room, delete_document};
use crate::api_error::ApiError;
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::authorship::Authors;
use crate::clock::now_ms_f64 as now_ms;
use crate::room::{Edit, EditError, EditFn, RoomCmd};

/// A change to a document, made after the checks that decide whether it may be made.
pub(super) type Change = Box<dyn FnOnce(&Doc) + Send>;

/// The reading of an existing document as the API answers with it (`Item`), or 404.
pub(super) fn existing(kind: DocKind, doc: &Doc, id: &str, name: &str) -> Result<Value, EditError> {
    let item = Item::read(kind, doc, id, name).ok_or_else(|| not_found(kind))?;
    Ok(serde_json::to_value(item).unwrap_or_default())
}

fn not_found(kind: DocKind) -> EditError {
    EditError::NotFound(format!("no such {}", kind.name()))
}

/// Validates a create request and returns the id and the edit that creates it.
pub(super) fn create_edit(
    scope: Scope,
    body: &[u8],
    caller: &Principal,
) -> Result<(String, EditFn), ApiError> {
    let author = caller.sub.clone();
    let kind = scope.kind;
    let (id, make): (Option<String>, Change) = match kind {
        DocKind::Note => {
            let r: NoteCreate = parse(body)?;
            check_short("title", &r.title)?;
            check_list("tags", &r.tags)?;
            let private = scope.private;
            (
                r.id,
                Box::new(move |d: &Doc| {
                    let now = now_ms();
                    note::create(d, &author, now, &r.title, private);
                    if !r.body.is_empty() {
                        note::append_body(d, &r.body);
                    }
                    if !r.tags.is_empty() {
                        let edit = NoteEdit {
                            tags: Some(r.tags),
                            ..NoteEdit::default()
                        };
                        note::apply(d, &edit, now);
                    }
                }),
            )
        }
        DocKind::Contact => {
            let r: ContactCreate = parse(body)?;
            // A new contact is an edit that sets every field.
            let edit = ContactEdit {
                name: Some(r.name),
                email: Some(r.email),
                phone: Some(r.phone),
                company: Some(r.company),
                notes: Some(r.notes),
                custom: r.custom.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            };
            check_contact(&edit)?;
            if edit.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
                return Err(ApiError::invalid("name", "must not be empty"));
            }
            (r.id, Box::new(move |d: &Doc| contact::apply(d, &edit)))
        }
        DocKind::Issue => {
            let r: IssueCreate = parse(body)?;
            check_short("title", &r.title)?;
            check_enum("status", r.status.as_deref(), &issue::STATUSES)?;
            check_enum("priority", r.priority.as_deref(), &issue::PRIORITIES)?;
            check_list("assignees", &r.assignees)?;
            check_list("labels", &r.labels)?;
            (
                r.id,
                Box::new(move |d: &Doc| {
                    let now = now_ms();
                    issue::create(d, &author, now, &r.title);
                    let edit = IssueEdit {
                        description: Some(r.description),
                        status: r.status,
                        priority: r.priority,
                        assignees: Some(r.assignees),
                        labels: Some(r.labels),
                        ..IssueEdit::default()
                    };
                    // Validated above, so this cannot be refused.
                    let _ = issue::apply(d, &edit, now);
                }),
            )
        }
    };
    let id = match id {
        Some(id) => {
            check_id("id", &id)?;
            id
        }
        None => crate::doc_name::new_id(),
    };
    let name = doc_of(scope, &id, caller);
    let reply_id = id.clone();
    let edit: EditFn = Box::new(move |d: &Doc, _: &Authors| {
        if !typed::read(kind, d).0.is_blank() {
            return Err(EditError::Conflict(format!(
                "a {} with this id exists",
                kind.name()
            )));
        }
        make(d);
        existing(kind, d, &reply_id, &name)
    });
    Ok((id, edit))
}

/// Validates a patch and returns the edit that applies it to an existing document.
pub(super) fn patch_edit(
    kind: DocKind,
    id: &str,
    name: &str,
    body: &[u8],
) -> Result<EditFn, ApiError> {
    let (id, name) = (id.to_string(), name.to_string());
    let change: Change = match kind {
        DocKind::Note => {
            let e: NoteEdit = parse(body)?;
            if let Some(t) = &e.title {
                check_short("title", t)?;
            }
            if let Some(tags) = &e.tags {
                check_list("tags", tags)?;
            }
            Box::new(move |d: &Doc| note::apply(d, &e, now_ms()))
        }
        DocKind::Contact => {
            let e: ContactEdit = parse(body)?;
            check_contact(&e)?;
            Box::new(move |d: &Doc| contact::apply(d, &e))
        }
        DocKind::Issue => issue_change(parse(body)?)?,
    };
    Ok(on_existing(kind, id, name, change))
}

/// A contact's short fields are bounded (its notes and custom fields are not short text).
fn check_contact(e: &ContactEdit) -> Result<(), ApiError> {
    for (field, value) in [
        ("name", &e.name),
        ("email", &e.email),
        ("phone", &e.phone),
        ("company", &e.company),
    ] {
        if let Some(v) = value {
            check_short(field, v)?;
        }
    }
    Ok(())
}

/// Validates an issue edit and returns the change that makes it.
pub(super) fn issue_change(e: IssueEdit) -> Result<Change, ApiError> {
    if let Some(t) = &e.title {
        check_short("title", t)?;
    }
    check_enum("status", e.status.as_deref(), &issue::STATUSES)?;
    check_enum("priority", e.priority.as_deref(), &issue::PRIORITIES)?;
    for (field, list) in [("assignees", &e.assignees), ("labels", &e.labels)] {
        if let Some(list) = list {
            check_list(field, list)?;
        }
    }
    Ok(Box::new(move |d: &Doc| {
        // Validated above, so this cannot be refused.
        let _ = issue::apply(d, &e, now_ms());
    }))
}

/// The edit that makes `change` to an existing document and answers with its new reading.
pub(super) fn on_existing(kind: DocKind, id: String, name: String, change: Change) -> EditFn {
    Box::new(move |d: &Doc, _: &Authors| {
        if typed::read(kind, d).0.is_blank() {
            return Err(not_found(kind));
        }
        change(d);
        existing(kind, d, &id, &name)
    })
}

/// Adds, edits or deletes a reply or comment. Only its author (or an admin) may change one.
pub(super) fn entry_edit(
    kind: DocKind,
    op: Op,
    entry: Option<String>,
    text: Option<String>,
    caller: &str,
    admin: bool,
) -> Result<EditFn, ApiError> {
    let Some((thread_root, entry_name)) = kind.thread() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such route",
        ));
    };
    let caller = caller.to_string();
    Ok(Box::new(move |d: &Doc, authors: &Authors| {
        if typed::read(kind, d).0.is_blank() {
            return Err(not_found(kind));
        }
        let entry_of = |d: &Doc, id: &str| -> Option<Entry> {
            let (value, _) = typed::read(kind, d);
            let entries = match value {
                Typed::Note(n) => n.replies,
                Typed::Issue(i) => i.comments,
                Typed::Contact(_) => Vec::new(),
            };
            entries.into_iter().find(|e| e.id == id)
        };
        let missing = || EditError::NotFound(format!("no such {entry_name}"));
        match (op, entry, text) {
            (Op::AddEntry(_), _, Some(text)) => {
                let id = crate::doc_name::new_id();
                thread::add(d, thread_root, &id, &caller, &text, now_ms());
                let e = entry_of(d, &id).ok_or_else(missing)?;
                Ok(serde_json::to_value(e).unwrap_or_default())
            }
            (op, Some(id), text) => {
                let item = thread::entry_item(d, thread_root, &id).ok_or_else(missing)?;
                // The server's record of who wrote the entry, not its `author` field.
                if authors.author_of(&item) != Some(caller.as_str()) && !admin {
                    return Err(EditError::Forbidden(format!(
                        "only the {entry_name}'s author or an admin may change it"
                    )));
                }
                match (op, text) {
                    (Op::EditEntry(_), Some(text)) => {
                        thread::edit(d, thread_root, &id, &text);
                        let e = entry_of(d, &id).ok_or_else(missing)?;
                        Ok(serde_json::to_value(e).unwrap_or_default())
                    }
                    _ => {
                        thread::delete(d, thread_root, &id);
                        Ok(serde_json::to_value(Deleted { deleted: true }).unwrap_or_default())
                    }
                }
            }
            _ => Err(missing()),
        }
    }))
}

/// Sends an edit (or a read) to the document's room and waits for its durable answer.
pub(super) async fn edit_in_room(
    app: &Arc<App>,
    doc: &str,
    author: &str,
    apply: EditFn,
) -> Result<Value, ApiError> {
    let author = Arc::from(author);
    ask_room(app, doc, |reply| {
        RoomCmd::Edit(Edit {
            author,
            apply,
            reply,
        })
    })
    .await?
    .map_err(ApiError::from)
}

/// Deletes a typed document: its author (or an admin; anyone in their own private space) may.
pub(super) async fn delete(
    app: &Arc<App>,
    principal: &Principal,
    scope: Scope,
    doc: &str,
    role: Role,
) -> Result<Deleted, ApiError> {
    let kind = scope.kind;
    let author = edit_in_room(
        app,
        doc,
        &principal.sub,
        Box::new(move |d: &Doc, authors: &Authors| {
            if typed::read(kind, d).0.is_blank() {
                return Err(not_found(kind));
            }
            // Who created it by the server's record (the author of its first update), never
            // the `author` field in its metadata, which any writer can change.
            Ok(Value::from(authors.creator()))
        }),
    )
    .await?;
    let allowed = role >= Role::Admin
        || scope.private
        || app.config.auth.is_none()
        || author.as_str() == Some(principal.sub.as_str());
    if !allowed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("only its author or an admin may delete a {}", kind.name()),
        ));
    }
    if delete_document(app, doc, &principal.sub).await? {
        Ok(Deleted { deleted: true })
    } else {
        Err(not_found(kind).into())
    }
}
