//! A note: a titled rich-text document with tags and a reply thread.
//!
//! Yjs layout (what browser and mobile clients build; names are part of the contract):
//!
//! | root | Yjs type | content |
//! |---|---|---|
//! | `title` | `Y.Text` | the title |
//! | `default` | `Y.XmlFragment` | the rich-text body. `default` is the fragment name Tiptap's Collaboration extension uses, and y-prosemirror binds to any named fragment, so the common editor bindings share the body with no configuration; a `Y.Text` body would lose structure (headings, lists) that every rich editor produces. |
//! | `meta` | `Y.Map` | `author` (string), `created`, `updated` (numbers, ms since the epoch), `private` (boolean) |
//! | `tags` | `Y.Array` | strings |
//! | `replies` | `Y.Array` | one `Y.Map` per reply: `id` (string), `author` (string), `text` (`Y.Text`), `time` (number, ms), `edited` (boolean) |

use serde::{Deserialize, Serialize};
use yrs::types::xml::XmlIn;
use yrs::{Doc, GetString, Map, Transact, XmlElementPrelim, XmlFragment, XmlTextPrelim};

use crate::schema::{strings, Fields, SchemaIssue};
use crate::text::{replace_minimal, replace_strings};
use crate::thread::{self, Entry};

pub use crate::thread::Entry as Reply;

/// The root holding the reply thread.
pub const REPLIES: &str = "replies";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Note {
    pub title: String,
    /// The body as plain text (paragraphs joined by newlines); the rich structure stays in Yjs.
    pub body: String,
    pub tags: Vec<String>,
    pub private: bool,
    pub author: String,
    /// Milliseconds since the epoch.
    pub created: i64,
    /// Milliseconds since the epoch.
    pub updated: i64,
    pub replies: Vec<Entry>,
}

/// A typed change, applied as one transaction that changes only what differs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteEdit {
    #[schemars(length(max = crate::schema::SHORT_TEXT_CHARS_MAX))]
    pub title: Option<String>,
    #[schemars(length(max = crate::schema::LIST_LEN_MAX), inner(length(max = crate::schema::SHORT_TEXT_CHARS_MAX)))]
    pub tags: Option<Vec<String>>,
    pub private: Option<bool>,
}

/// Reads the note, tolerating any deviation from the layout (wrong types read as defaults) and
/// listing every deviation found.
pub fn read(doc: &Doc) -> (Note, Vec<SchemaIssue>) {
    let title = doc.get_or_insert_text("title");
    let body = doc.get_or_insert_xml_fragment("default");
    let meta = doc.get_or_insert_map("meta");
    let tags = doc.get_or_insert_array("tags");
    let replies = doc.get_or_insert_array(REPLIES);
    let txn = doc.transact();
    let mut issues = Vec::new();
    let mut f = Fields {
        map: &meta,
        txn: &txn,
        path: "meta",
        issues: &mut issues,
    };
    let note = Note {
        title: title.get_string(&txn),
        body: body_text(&body, &txn),
        author: f.string("author"),
        created: f.time_ms("created"),
        updated: f.time_ms("updated"),
        private: f.boolean("private"),
        tags: strings(&tags, &txn, "tags", f.issues),
        replies: thread::read(&replies, &txn, REPLIES, f.issues),
    };
    (note, issues)
}

fn body_text<T: yrs::ReadTxn>(body: &yrs::XmlFragmentRef, txn: &T) -> String {
    // Paragraph-level plain text: each top-level element's text, one per line.
    body.children(txn)
        .map(|child| match child {
            yrs::XmlOut::Element(e) => strip_tags(&e.get_string(txn)),
            yrs::XmlOut::Text(t) => t.get_string(txn),
            yrs::XmlOut::Fragment(f) => strip_tags(&f.get_string(txn)),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_tags(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut in_tag = false;
    for c in xml.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Creates the note's structure (a new note) in one transaction.
pub fn create(doc: &Doc, author: &str, now_ms: f64, title: &str, private: bool) {
    // Root handles first: taking them needs the document's lock, which a transaction holds.
    let title_ref = doc.get_or_insert_text("title");
    let meta = doc.get_or_insert_map("meta");
    let mut txn = doc.transact_mut();
    replace_minimal(&mut txn, &title_ref, title);
    meta.insert(&mut txn, "author", author);
    meta.insert(&mut txn, "created", now_ms);
    meta.insert(&mut txn, "updated", now_ms);
    meta.insert(&mut txn, "private", private);
}

/// Appends plain text to the body, one `paragraph` element per line (the node name ProseMirror's
/// and Tiptap's schemas use), so rich editors open it as ordinary paragraphs.
pub fn append_body(doc: &Doc, text: &str) {
    let body = doc.get_or_insert_xml_fragment("default");
    let mut txn = doc.transact_mut();
    for line in text.lines() {
        let children = if line.is_empty() {
            Vec::new()
        } else {
            vec![XmlIn::from(XmlTextPrelim::new(line))]
        };
        body.push_back(&mut txn, XmlElementPrelim::new("paragraph", children));
    }
}

/// Applies a typed edit as one transaction with minimal changes.
pub fn apply(doc: &Doc, edit: &NoteEdit, now_ms: f64) {
    let title = doc.get_or_insert_text("title");
    let meta = doc.get_or_insert_map("meta");
    let tags = doc.get_or_insert_array("tags");
    let mut txn = doc.transact_mut();
    if let Some(new_title) = &edit.title {
        replace_minimal(&mut txn, &title, new_title);
    }
    if let Some(new_tags) = &edit.tags {
        replace_strings(&mut txn, &tags, new_tags);
    }
    if let Some(private) = edit.private {
        meta.insert(&mut txn, "private", private);
    }
    meta.insert(&mut txn, "updated", now_ms);
}

/// Adds a reply at the end of the thread.
pub fn add_reply(doc: &Doc, id: &str, author: &str, text: &str, now_ms: f64) {
    thread::add(doc, REPLIES, id, author, text, now_ms);
}

/// Edits a reply's text (minimal change) and marks it edited; false if there is no such reply.
pub fn edit_reply(doc: &Doc, id: &str, text: &str) -> bool {
    thread::edit(doc, REPLIES, id, text)
}

/// Deletes a reply; false if there is no such reply.
pub fn delete_reply(doc: &Doc, id: &str) -> bool {
    thread::delete(doc, REPLIES, id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::merge;
    use yrs::{Any, Array, Map};

    fn new_note() -> Doc {
        let doc = Doc::with_client_id(1);
        create(&doc, "ada", 1000.0, "Plan", false);
        doc
    }

    // Times are read as whole milliseconds, whatever a client wrote (a fraction, an integer, a
    // number too large for an i64, not a number), and serialize as JSON integers.
    #[test]
    fn times_read_as_integer_milliseconds() {
        for (written, read_ms) in [
            (Any::from(1_796_153_363_581.437_3), 1_796_153_363_581),
            (Any::from(1_796_153_363_581.5), 1_796_153_363_582),
            (Any::from(1_796_153_363_581.0), 1_796_153_363_581),
            (Any::from(1_796_153_363_581_i64), 1_796_153_363_581),
            (Any::from(1e300), i64::MAX),
            (Any::from(f64::NAN), 0),
            (Any::from("yesterday"), 0),
        ] {
            let doc = new_note();
            let meta = doc.get_or_insert_map("meta");
            meta.insert(&mut doc.transact_mut(), "updated", written.clone());
            let (note, _) = read(&doc);
            assert_eq!(note.updated, read_ms, "{written:?}");
            let json = serde_json::to_string(&note).expect("serializes");
            assert!(json.contains(&format!("\"updated\":{read_ms},")), "{json}");
        }
    }

    #[test]
    fn create_read_edit() {
        let doc = new_note();
        apply(
            &doc,
            &NoteEdit {
                title: Some("Plan B".into()),
                tags: Some(vec!["work".into(), "q3".into()]),
                private: Some(true),
            },
            2000.0,
        );
        add_reply(&doc, "r1", "bob", "looks good", 3000.0);
        assert!(edit_reply(&doc, "r1", "looks great"));
        let (note, issues) = read(&doc);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(note.title, "Plan B");
        assert_eq!(note.tags, vec!["work", "q3"]);
        assert!(note.private);
        assert_eq!(
            (note.author.as_str(), note.created, note.updated),
            ("ada", 1000, 2000)
        );
        assert_eq!(note.replies.len(), 1);
        assert_eq!(note.replies[0].text, "looks great");
        assert!(note.replies[0].edited);
        assert!(delete_reply(&doc, "r1"));
        assert!(!delete_reply(&doc, "r1"));
        assert!(read(&doc).0.replies.is_empty());
    }

    // Concurrent typed edits from two replicas, merged in either order, give the same note with
    // both changes kept.
    #[test]
    fn concurrent_typed_edits_converge() {
        let a = new_note();
        let b = Doc::with_client_id(2);
        merge(&a, &b);
        apply(
            &a,
            &NoteEdit {
                title: Some("Plan for Q3".into()),
                ..Default::default()
            },
            5.0,
        );
        apply(
            &b,
            &NoteEdit {
                title: Some("The Plan".into()),
                ..Default::default()
            },
            6.0,
        );
        add_reply(&a, "ra", "ada", "first", 7.0);
        add_reply(&b, "rb", "bob", "second", 8.0);
        merge(&a, &b);
        let (na, _) = read(&a);
        let (nb, _) = read(&b);
        assert_eq!(na, nb);
        assert_eq!(na.title, "The Plan for Q3");
        assert_eq!(na.replies.len(), 2);
    }

    // A client that writes a number where text belongs, or a string where a reply map belongs,
    // is reported, not crashed on.
    #[test]
    fn schema_violations_are_reported() {
        let doc = new_note();
        {
            let meta = doc.get_or_insert_map("meta");
            let replies = doc.get_or_insert_array("replies");
            let tags = doc.get_or_insert_array("tags");
            let mut txn = doc.transact_mut();
            meta.insert(&mut txn, "author", 42);
            meta.insert(&mut txn, "private", "yes");
            replies.push_back(&mut txn, "not a map");
            tags.push_back(&mut txn, 7);
        }
        let (note, issues) = read(&doc);
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["meta.author", "meta.private", "tags[0]", "replies[0]"]
        );
        assert_eq!(note.author, "");
        assert!(!note.private);
    }
}
