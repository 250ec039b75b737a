//! The three typed kinds together: where each lives in the document namespace, reading any of
//! them, and describing what changed between two readings as typed events (`note.updated` with
//! the fields that changed, `reply.created`, `issue.status_changed`, ...).
//!
//! Events are derived by comparing readings, not by trusting who made the change, so an edit from
//! a stock Yjs client over the websocket produces the same events as one made through REST.

use serde::{Deserialize, Serialize};
use yrs::Doc;

use crate::contact::{self, Contact};
use crate::issue::{self, Issue};
use crate::note::{self, Note};
use crate::schema::SchemaIssue;
use crate::thread::Entry;

/// A typed kind of document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocKind {
    Note,
    Contact,
    Issue,
}

impl DocKind {
    pub const ALL: [DocKind; 3] = [DocKind::Note, DocKind::Contact, DocKind::Issue];

    /// The name used in events and URLs: `note`, `contact`, `issue`.
    pub fn name(self) -> &'static str {
        match self {
            DocKind::Note => "note",
            DocKind::Contact => "contact",
            DocKind::Issue => "issue",
        }
    }

    /// The collection segment of document names: `notes`, `contacts`, `issues`.
    pub fn collection(self) -> &'static str {
        match self {
            DocKind::Note => "notes",
            DocKind::Contact => "contacts",
            DocKind::Issue => "issues",
        }
    }

    pub fn from_name(name: &str) -> Option<DocKind> {
        DocKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The thread root of this kind, and the event prefix of its entries.
    pub fn thread(self) -> Option<(&'static str, &'static str)> {
        match self {
            DocKind::Note => Some((note::REPLIES, "reply")),
            DocKind::Issue => Some((issue::COMMENTS, "comment")),
            DocKind::Contact => None,
        }
    }
}

/// Where a typed document lives: `notes/<id>`, `contacts/<id>`, `issues/<id>`, and a private
/// note `private/<owner>/notes/<id>`. Ids are one path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<'a> {
    pub kind: DocKind,
    pub id: &'a str,
    /// The owner of a private document.
    pub owner: Option<&'a str>,
}

pub fn locate(doc_name: &str) -> Option<Located<'_>> {
    let segments: Vec<&str> = doc_name.split('/').collect();
    let (owner, collection, id) = match segments.as_slice() {
        [collection, id] => (None, *collection, *id),
        ["private", owner, "notes", id] => (Some(*owner), "notes", *id),
        _ => return None,
    };
    let kind = DocKind::ALL
        .into_iter()
        .find(|k| k.collection() == collection)?;
    (!id.is_empty()).then_some(Located { kind, id, owner })
}

/// The document name of a typed document.
pub fn doc_name(kind: DocKind, id: &str, private_owner: Option<&str>) -> String {
    match private_owner {
        Some(owner) => format!("private/{owner}/{}/{id}", kind.collection()),
        None => format!("{}/{id}", kind.collection()),
    }
}

/// A typed reading of a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Typed {
    Note(Note),
    Contact(Contact),
    Issue(Issue),
}

pub fn read(kind: DocKind, doc: &Doc) -> (Typed, Vec<SchemaIssue>) {
    match kind {
        DocKind::Note => {
            let (n, i) = note::read(doc);
            (Typed::Note(n), i)
        }
        DocKind::Contact => {
            let (c, i) = contact::read(doc);
            (Typed::Contact(c), i)
        }
        DocKind::Issue => {
            let (x, i) = issue::read(doc);
            (Typed::Issue(x), i)
        }
    }
}

impl Typed {
    /// True for a document nobody has created yet (nothing in its layout is set).
    pub fn is_blank(&self) -> bool {
        match self {
            Typed::Note(n) => n.created == 0 && n.title.is_empty() && n.body.is_empty(),
            Typed::Contact(c) => *c == Contact::default(),
            Typed::Issue(x) => x.created == 0 && x.title.is_empty() && x.description.is_empty(),
        }
    }

    /// A short line for lists: the title, or a contact's name.
    pub fn title(&self) -> &str {
        match self {
            Typed::Note(n) => &n.title,
            Typed::Contact(c) => &c.name,
            Typed::Issue(x) => &x.title,
        }
    }

    fn thread(&self) -> &[Entry] {
        match self {
            Typed::Note(n) => &n.replies,
            Typed::Issue(x) => &x.comments,
            Typed::Contact(_) => &[],
        }
    }

    /// The top-level fields (not the thread, not `updated`) that differ from `other`.
    fn changed_fields(&self, other: &Typed) -> Vec<String> {
        let fields = |t: &Typed| -> Vec<(String, serde_json::Value)> {
            let value = serde_json::to_value(t).unwrap_or_default();
            let serde_json::Value::Object(map) = value else {
                return Vec::new();
            };
            map.into_iter()
                .filter(|(k, _)| !matches!(k.as_str(), "updated" | "replies" | "comments"))
                .collect()
        };
        let (a, b) = (fields(self), fields(other));
        let mut changed: Vec<String> = a
            .iter()
            .filter(|(k, v)| b.iter().find(|(k2, _)| k2 == k).map(|(_, v2)| v2) != Some(v))
            .map(|(k, _)| k.clone())
            .collect();
        for (k, _) in &b {
            if !a.iter().any(|(k2, _)| k2 == k) {
                changed.push(k.clone());
            }
        }
        changed
    }
}

/// One typed change, before it is stamped with an id, a document and the people who made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Change {
    /// `note.created`, `note.updated`, `reply.created`, `issue.status_changed`, ...
    #[serde(rename = "type")]
    pub event: String,
    /// For `*.updated`: the fields that changed (contact custom fields as `custom.<label>`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// For reply and comment events: the entry's id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entry: Option<String>,
    /// For `issue.status_changed`: the old and new status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
}

impl Change {
    pub fn new(event: impl Into<String>) -> Change {
        Change {
            event: event.into(),
            fields: Vec::new(),
            entry: None,
            from: None,
            to: None,
        }
    }
}

/// What happened between two readings of the same document, as typed events.
pub fn changes(kind: DocKind, before: &Typed, after: &Typed) -> Vec<Change> {
    let mut out = Vec::new();
    if after.is_blank() {
        return out;
    }
    let name = kind.name();
    if before.is_blank() {
        out.push(Change::new(format!("{name}.created")));
    } else {
        let mut fields = before.changed_fields(after);
        if let (Typed::Issue(b), Typed::Issue(a)) = (before, after) {
            if a.status != b.status {
                fields.retain(|f| f != "status");
                out.push(Change {
                    from: Some(b.status.clone()),
                    to: Some(a.status.clone()),
                    ..Change::new("issue.status_changed")
                });
            }
        }
        if let (Typed::Contact(b), Typed::Contact(a)) = (before, after) {
            if fields.iter().any(|f| f == "custom") {
                fields.retain(|f| f != "custom");
                let labels = b.custom.keys().chain(a.custom.keys());
                let mut custom: Vec<String> = labels
                    .filter(|l| b.custom.get(*l) != a.custom.get(*l))
                    .map(|l| format!("custom.{l}"))
                    .collect();
                custom.dedup();
                fields.extend(custom);
            }
        }
        if !fields.is_empty() {
            fields.sort();
            out.push(Change {
                fields,
                ..Change::new(format!("{name}.updated"))
            });
        }
    }
    if let Some((_, entry)) = kind.thread() {
        let (old, new) = (before.thread(), after.thread());
        for e in new {
            match old.iter().find(|o| o.id == e.id) {
                None => out.push(Change {
                    entry: Some(e.id.clone()),
                    ..Change::new(format!("{entry}.created"))
                }),
                Some(o) if o.text != e.text || o.edited != e.edited => out.push(Change {
                    entry: Some(e.id.clone()),
                    ..Change::new(format!("{entry}.updated"))
                }),
                Some(_) => {}
            }
        }
        for o in old {
            if !new.iter().any(|e| e.id == o.id) {
                out.push(Change {
                    entry: Some(o.id.clone()),
                    ..Change::new(format!("{entry}.deleted"))
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issue::IssueEdit;
    use crate::note::NoteEdit;

    #[test]
    fn locates_typed_documents() {
        let l = locate("notes/n1").expect("note");
        assert_eq!((l.kind, l.id, l.owner), (DocKind::Note, "n1", None));
        let l = locate("private/ada/notes/n2").expect("private note");
        assert_eq!((l.kind, l.id, l.owner), (DocKind::Note, "n2", Some("ada")));
        assert_eq!(locate("issues/7").map(|l| l.kind), Some(DocKind::Issue));
        assert_eq!(locate("contacts/c").map(|l| l.kind), Some(DocKind::Contact));
        for other in [
            "notes",
            "notes/a/b",
            "workspace/index",
            "private/ada/index",
            "x/y",
        ] {
            assert_eq!(locate(other), None, "{other}");
        }
        assert_eq!(
            doc_name(DocKind::Note, "n2", Some("ada")),
            "private/ada/notes/n2"
        );
        assert_eq!(doc_name(DocKind::Issue, "7", None), "issues/7");
    }

    #[test]
    fn note_events() {
        let doc = Doc::new();
        let blank = read(DocKind::Note, &doc).0;
        assert!(blank.is_blank());
        note::create(&doc, "ada", 1.0, "Plan", false);
        let created = read(DocKind::Note, &doc).0;
        let events: Vec<_> = changes(DocKind::Note, &blank, &created)
            .into_iter()
            .map(|c| c.event)
            .collect();
        assert_eq!(events, ["note.created"]);
        note::apply(
            &doc,
            &NoteEdit {
                title: Some("Plan B".into()),
                tags: Some(vec!["x".into()]),
                ..NoteEdit::default()
            },
            2.0,
        );
        note::add_reply(&doc, "r1", "bob", "ok", 3.0);
        let edited = read(DocKind::Note, &doc).0;
        let c = changes(DocKind::Note, &created, &edited);
        assert_eq!(c[0].event, "note.updated");
        assert_eq!(c[0].fields, ["tags", "title"]);
        assert_eq!(c[1].event, "reply.created");
        assert_eq!(c[1].entry.as_deref(), Some("r1"));
        note::delete_reply(&doc, "r1");
        let c = changes(DocKind::Note, &edited, &read(DocKind::Note, &doc).0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].event, "reply.deleted");
    }

    #[test]
    fn issue_status_change_is_its_own_event() {
        let doc = Doc::new();
        issue::create(&doc, "ada", 1.0, "Bug");
        let before = read(DocKind::Issue, &doc).0;
        issue::apply(
            &doc,
            &IssueEdit {
                status: Some("done".into()),
                ..IssueEdit::default()
            },
            2.0,
        )
        .expect("valid");
        let c = changes(DocKind::Issue, &before, &read(DocKind::Issue, &doc).0);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].event, "issue.status_changed");
        assert_eq!(
            (c[0].from.as_deref(), c[0].to.as_deref()),
            (Some("open"), Some("done"))
        );
    }

    #[test]
    fn contact_custom_fields_are_named() {
        let doc = Doc::new();
        let mut edit = contact::ContactEdit {
            name: Some("Ada".into()),
            ..Default::default()
        };
        contact::apply(&doc, &edit);
        let before = read(DocKind::Contact, &doc).0;
        edit.name = None;
        edit.custom.insert("twitter".into(), Some("@ada".into()));
        contact::apply(&doc, &edit);
        let c = changes(DocKind::Contact, &before, &read(DocKind::Contact, &doc).0);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].event.as_str(), c[0].fields.as_slice()),
            ("contact.updated", &["custom.twitter".to_string()][..])
        );
    }
}
