//! An issue: title, description, status, priority, people and labels, and a comment thread.
//!
//! Yjs layout:
//!
//! | root | Yjs type | content |
//! |---|---|---|
//! | `title` | `Y.Text` | the title |
//! | `description` | `Y.Text` | the description |
//! | `meta` | `Y.Map` | `status` (`open` \| `in_progress` \| `done` \| `cancelled`), `priority` (`low` \| `medium` \| `high` \| `urgent`), `author` (string), `created`, `updated` (numbers, ms) |
//! | `assignees` | `Y.Array` | strings |
//! | `labels` | `Y.Array` | strings |
//! | `comments` | `Y.Array` | a thread: see [`crate::thread`] |

use serde::{Deserialize, Serialize};
use yrs::{Doc, GetString, Map, Transact};

use crate::schema::{strings, Fields, SchemaIssue};
use crate::text::{replace_minimal, replace_strings};
use crate::thread::{self, Entry};

/// The root holding the comment thread.
pub const COMMENTS: &str = "comments";
pub const STATUSES: [&str; 4] = ["open", "in_progress", "done", "cancelled"];
pub const PRIORITIES: [&str; 4] = ["low", "medium", "high", "urgent"];

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Issue {
    pub title: String,
    pub description: String,
    pub status: String,
    pub priority: String,
    pub author: String,
    /// Milliseconds since the epoch.
    pub created: i64,
    /// Milliseconds since the epoch.
    pub updated: i64,
    pub assignees: Vec<String>,
    pub labels: Vec<String>,
    pub comments: Vec<Entry>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueEdit {
    #[schemars(length(max = crate::schema::SHORT_TEXT_CHARS_MAX))]
    pub title: Option<String>,
    pub description: Option<String>,
    #[schemars(extend("enum" = ["open", "in_progress", "done", "cancelled", null]))]
    pub status: Option<String>,
    #[schemars(extend("enum" = ["low", "medium", "high", "urgent", null]))]
    pub priority: Option<String>,
    #[schemars(length(max = crate::schema::LIST_LEN_MAX), inner(length(max = crate::schema::SHORT_TEXT_CHARS_MAX)))]
    pub assignees: Option<Vec<String>>,
    #[schemars(length(max = crate::schema::LIST_LEN_MAX), inner(length(max = crate::schema::SHORT_TEXT_CHARS_MAX)))]
    pub labels: Option<Vec<String>>,
}

/// Why an edit was refused before touching the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueEditError {
    #[error("status must be one of open, in_progress, done, cancelled")]
    Status,
    #[error("priority must be one of low, medium, high, urgent")]
    Priority,
}

pub fn read(doc: &Doc) -> (Issue, Vec<SchemaIssue>) {
    let title = doc.get_or_insert_text("title");
    let description = doc.get_or_insert_text("description");
    let meta = doc.get_or_insert_map("meta");
    let assignees = doc.get_or_insert_array("assignees");
    let labels = doc.get_or_insert_array("labels");
    let comments = doc.get_or_insert_array(COMMENTS);
    let txn = doc.transact();
    let mut issues = Vec::new();
    let mut f = Fields {
        map: &meta,
        txn: &txn,
        path: "meta",
        issues: &mut issues,
    };
    let mut out = Issue {
        title: title.get_string(&txn),
        description: description.get_string(&txn),
        status: f.string("status"),
        priority: f.string("priority"),
        author: f.string("author"),
        created: f.time_ms("created"),
        updated: f.time_ms("updated"),
        assignees: strings(&assignees, &txn, "assignees", f.issues),
        labels: strings(&labels, &txn, "labels", f.issues),
        comments: thread::read(&comments, &txn, COMMENTS, f.issues),
    };
    for (value, allowed, path, expected) in [
        (
            &mut out.status,
            &STATUSES[..],
            "meta.status",
            "open | in_progress | done | cancelled",
        ),
        (
            &mut out.priority,
            &PRIORITIES[..],
            "meta.priority",
            "low | medium | high | urgent",
        ),
    ] {
        if !value.is_empty() && !allowed.contains(&value.as_str()) {
            issues.push(SchemaIssue {
                path: path.to_string(),
                expected,
                found: std::mem::take(value),
            });
        }
    }
    (out, issues)
}

/// Creates a new issue (status `open`, priority `medium`).
pub fn create(doc: &Doc, author: &str, now_ms: f64, title: &str) {
    let title_ref = doc.get_or_insert_text("title");
    let meta = doc.get_or_insert_map("meta");
    let mut txn = doc.transact_mut();
    replace_minimal(&mut txn, &title_ref, title);
    meta.insert(&mut txn, "status", "open");
    meta.insert(&mut txn, "priority", "medium");
    meta.insert(&mut txn, "author", author);
    meta.insert(&mut txn, "created", now_ms);
    meta.insert(&mut txn, "updated", now_ms);
}

/// Applies a typed edit as one transaction with minimal changes; invalid enums are refused
/// before anything changes.
pub fn apply(doc: &Doc, edit: &IssueEdit, now_ms: f64) -> Result<(), IssueEditError> {
    if edit
        .status
        .as_deref()
        .is_some_and(|s| !STATUSES.contains(&s))
    {
        return Err(IssueEditError::Status);
    }
    if edit
        .priority
        .as_deref()
        .is_some_and(|p| !PRIORITIES.contains(&p))
    {
        return Err(IssueEditError::Priority);
    }
    let title = doc.get_or_insert_text("title");
    let description = doc.get_or_insert_text("description");
    let meta = doc.get_or_insert_map("meta");
    let assignees = doc.get_or_insert_array("assignees");
    let labels = doc.get_or_insert_array("labels");
    let mut txn = doc.transact_mut();
    if let Some(v) = &edit.title {
        replace_minimal(&mut txn, &title, v);
    }
    if let Some(v) = &edit.description {
        replace_minimal(&mut txn, &description, v);
    }
    if let Some(v) = &edit.status {
        meta.insert(&mut txn, "status", v.as_str());
    }
    if let Some(v) = &edit.priority {
        meta.insert(&mut txn, "priority", v.as_str());
    }
    if let Some(v) = &edit.assignees {
        replace_strings(&mut txn, &assignees, v);
    }
    if let Some(v) = &edit.labels {
        replace_strings(&mut txn, &labels, v);
    }
    meta.insert(&mut txn, "updated", now_ms);
    Ok(())
}

pub fn add_comment(doc: &Doc, id: &str, author: &str, text: &str, now_ms: f64) {
    thread::add(doc, COMMENTS, id, author, text, now_ms);
}

pub fn edit_comment(doc: &Doc, id: &str, text: &str) -> bool {
    thread::edit(doc, COMMENTS, id, text)
}

pub fn delete_comment(doc: &Doc, id: &str) -> bool {
    thread::delete(doc, COMMENTS, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::merge;

    #[test]
    fn lifecycle_and_concurrent_edits() {
        let a = Doc::with_client_id(1);
        create(&a, "ada", 1.0, "Crash on save");
        let b = Doc::with_client_id(2);
        merge(&a, &b);
        apply(
            &a,
            &IssueEdit {
                status: Some("in_progress".into()),
                labels: Some(vec!["bug".into()]),
                ..Default::default()
            },
            2.0,
        )
        .expect("valid");
        apply(
            &b,
            &IssueEdit {
                description: Some("Steps: open, save.".into()),
                ..Default::default()
            },
            3.0,
        )
        .expect("valid");
        add_comment(&b, "c1", "bob", "reproduced", 4.0);
        merge(&a, &b);
        let (ia, issues) = read(&a);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(ia, read(&b).0);
        assert_eq!(ia.status, "in_progress");
        assert_eq!(ia.labels, vec!["bug"]);
        assert_eq!(ia.description, "Steps: open, save.");
        assert_eq!(ia.comments[0].text, "reproduced");
        assert!(edit_comment(&a, "c1", "reproduced twice"));
        assert_eq!(read(&a).0.comments[0].text, "reproduced twice");
        assert!(read(&a).0.comments[0].edited);
        assert!(delete_comment(&a, "c1"));
        assert!(!delete_comment(&a, "c1"));
        assert!(read(&a).0.comments.is_empty());
    }

    #[test]
    fn invalid_values_refused_or_reported() {
        let doc = Doc::new();
        create(&doc, "ada", 1.0, "x");
        assert_eq!(
            apply(
                &doc,
                &IssueEdit {
                    status: Some("closed".into()),
                    ..Default::default()
                },
                2.0
            ),
            Err(IssueEditError::Status)
        );
        let meta = doc.get_or_insert_map("meta");
        meta.insert(&mut doc.transact_mut(), "priority", "whenever");
        let (issue, issues) = read(&doc);
        assert_eq!(issue.priority, "");
        assert_eq!(issues[0].path, "meta.priority");
    }
}
