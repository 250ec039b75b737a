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
use yrs::types::ToJson;
use yrs::{
    Any, Array, ArrayRef, Doc, GetString, Map, MapPrelim, MapRef, Out, ReadTxn, TextPrelim,
    TextRef, Transact, XmlFragment,
};

use crate::text::replace_minimal;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub title: String,
    /// The body as plain text (paragraphs joined by newlines); the rich structure stays in Yjs.
    pub body: String,
    pub tags: Vec<String>,
    pub private: bool,
    pub author: String,
    pub created: f64,
    pub updated: f64,
    pub replies: Vec<Reply>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub id: String,
    pub author: String,
    pub text: String,
    pub time: f64,
    pub edited: bool,
}

/// Something in a document that does not match the layout above: reported, never crashed on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaIssue {
    /// Where, e.g. `meta.private` or `replies[2].text`.
    pub path: String,
    pub expected: &'static str,
    pub found: String,
}

/// A typed change, applied as one transaction that changes only what differs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoteEdit {
    pub title: Option<String>,
    pub tags: Option<Vec<String>>,
    pub private: Option<bool>,
}

fn roots(doc: &Doc) -> (TextRef, MapRef, ArrayRef, ArrayRef) {
    (
        doc.get_or_insert_text("title"),
        doc.get_or_insert_map("meta"),
        doc.get_or_insert_array("tags"),
        doc.get_or_insert_array("replies"),
    )
}

fn describe(value: &Out, txn: &impl ReadTxn) -> String {
    match value {
        Out::Any(a) => format!("{a}"),
        Out::YText(_) => "Y.Text".into(),
        Out::YMap(_) => "Y.Map".into(),
        Out::YArray(_) => "Y.Array".into(),
        Out::YXmlElement(_) | Out::YXmlFragment(_) | Out::YXmlText(_) => "Y.Xml".into(),
        other => format!("{}", other.to_json(txn)),
    }
}

/// Reads the note, tolerating any deviation from the layout (wrong types read as defaults) and
/// listing every deviation found.
pub fn read(doc: &Doc) -> (Note, Vec<SchemaIssue>) {
    let (title, meta, tags, replies) = roots(doc);
    let body = doc.get_or_insert_xml_fragment("default");
    let txn = doc.transact();
    let mut issues = Vec::new();
    let mut note = Note {
        title: title.get_string(&txn),
        body: body_text(&body, &txn),
        ..Note::default()
    };
    let mut meta_field = |key: &'static str, expected: &'static str| -> Option<Any> {
        match meta.get(&txn, key) {
            None => None,
            Some(Out::Any(any)) => Some(any),
            Some(other) => {
                issues.push(SchemaIssue {
                    path: format!("meta.{key}"),
                    expected,
                    found: describe(&other, &txn),
                });
                None
            }
        }
    };
    let author = meta_field("author", "string");
    let created = meta_field("created", "number");
    let updated = meta_field("updated", "number");
    let private = meta_field("private", "boolean");
    let mut check = |path: &str, expected: &'static str, any: Option<Any>| -> Option<Any> {
        let ok = matches!(
            (&any, expected),
            (None, _)
                | (Some(Any::String(_)), "string")
                | (Some(Any::Number(_)), "number")
                | (Some(Any::Bool(_)), "boolean")
        );
        if ok {
            any
        } else {
            issues.push(SchemaIssue {
                path: path.to_string(),
                expected,
                found: any.map(|a| format!("{a}")).unwrap_or_default(),
            });
            None
        }
    };
    note.author = match check("meta.author", "string", author) {
        Some(Any::String(s)) => s.to_string(),
        _ => String::new(),
    };
    note.created = number(check("meta.created", "number", created));
    note.updated = number(check("meta.updated", "number", updated));
    note.private = matches!(
        check("meta.private", "boolean", private),
        Some(Any::Bool(true))
    );
    for (i, tag) in tags.iter(&txn).enumerate() {
        match tag {
            Out::Any(Any::String(s)) => note.tags.push(s.to_string()),
            other => issues.push(SchemaIssue {
                path: format!("tags[{i}]"),
                expected: "string",
                found: describe(&other, &txn),
            }),
        }
    }
    for (i, reply) in replies.iter(&txn).enumerate() {
        let Out::YMap(map) = reply else {
            issues.push(SchemaIssue {
                path: format!("replies[{i}]"),
                expected: "Y.Map",
                found: describe(&reply, &txn),
            });
            continue;
        };
        let string = |key: &str| match map.get(&txn, key) {
            Some(Out::Any(Any::String(s))) => s.to_string(),
            _ => String::new(),
        };
        let text = match map.get(&txn, "text") {
            Some(Out::YText(t)) => t.get_string(&txn),
            Some(other) => {
                issues.push(SchemaIssue {
                    path: format!("replies[{i}].text"),
                    expected: "Y.Text",
                    found: describe(&other, &txn),
                });
                String::new()
            }
            None => String::new(),
        };
        note.replies.push(Reply {
            id: string("id"),
            author: string("author"),
            text,
            time: match map.get(&txn, "time") {
                Some(Out::Any(any)) => number(Some(any)),
                _ => 0.0,
            },
            edited: matches!(map.get(&txn, "edited"), Some(Out::Any(Any::Bool(true)))),
        });
    }
    (note, issues)
}

fn number(any: Option<Any>) -> f64 {
    match any {
        Some(Any::Number(yrs::any::Number::Float(f))) => f,
        // Millisecond timestamps stay exact in an f64 until the year 287,396.
        #[allow(clippy::cast_precision_loss)]
        Some(Any::Number(yrs::any::Number::Int(i))) => i as f64,
        _ => 0.0,
    }
}

fn body_text<T: ReadTxn>(body: &yrs::XmlFragmentRef, txn: &T) -> String {
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
    let (title_ref, meta, _, _) = roots(doc);
    let mut txn = doc.transact_mut();
    replace_minimal(&mut txn, &title_ref, title);
    meta.insert(&mut txn, "author", author);
    meta.insert(&mut txn, "created", now_ms);
    meta.insert(&mut txn, "updated", now_ms);
    meta.insert(&mut txn, "private", private);
}

/// Applies a typed edit as one transaction with minimal changes.
pub fn apply(doc: &Doc, edit: &NoteEdit, now_ms: f64) {
    let (title, meta, tags, _) = roots(doc);
    let mut txn = doc.transact_mut();
    if let Some(new_title) = &edit.title {
        replace_minimal(&mut txn, &title, new_title);
    }
    if let Some(new_tags) = &edit.tags {
        let current: Vec<String> = tags
            .iter(&txn)
            .map(|v| match v {
                Out::Any(Any::String(s)) => s.to_string(),
                other => other.to_string(&txn),
            })
            .collect();
        if &current != new_tags {
            // Keep the common prefix, replace the rest: tag lists are short.
            let keep = current
                .iter()
                .zip(new_tags)
                .take_while(|(a, b)| a == b)
                .count();
            let keep_u32 = u32::try_from(keep).unwrap_or(u32::MAX);
            let len = tags.len(&txn);
            if len > keep_u32 {
                tags.remove_range(&mut txn, keep_u32, len - keep_u32);
            }
            for (i, tag) in new_tags[keep..].iter().enumerate() {
                let at = keep_u32.saturating_add(u32::try_from(i).unwrap_or(u32::MAX));
                tags.insert(&mut txn, at, tag.as_str());
            }
        }
    }
    if let Some(private) = edit.private {
        meta.insert(&mut txn, "private", private);
    }
    meta.insert(&mut txn, "updated", now_ms);
}

/// Adds a reply at the end of the thread.
pub fn add_reply(doc: &Doc, id: &str, author: &str, text: &str, now_ms: f64) {
    let replies = doc.get_or_insert_array("replies");
    let mut txn = doc.transact_mut();
    let len = replies.len(&txn);
    let map = replies.insert(&mut txn, len, MapPrelim::default());
    map.insert(&mut txn, "id", id);
    map.insert(&mut txn, "author", author);
    map.insert(&mut txn, "text", TextPrelim::new(text));
    map.insert(&mut txn, "time", now_ms);
    map.insert(&mut txn, "edited", false);
}

fn reply_index<T: ReadTxn>(replies: &ArrayRef, txn: &T, id: &str) -> Option<(u32, MapRef)> {
    replies.iter(txn).enumerate().find_map(|(i, v)| match v {
        Out::YMap(m) if matches!(m.get(txn, "id"), Some(Out::Any(Any::String(s))) if &*s == id) => {
            Some((u32::try_from(i).ok()?, m))
        }
        _ => None,
    })
}

/// Edits a reply's text (minimal change) and marks it edited; false if there is no such reply.
pub fn edit_reply(doc: &Doc, id: &str, text: &str) -> bool {
    let replies = doc.get_or_insert_array("replies");
    let mut txn = doc.transact_mut();
    let Some((_, map)) = reply_index(&replies, &txn, id) else {
        return false;
    };
    match map.get(&txn, "text") {
        Some(Out::YText(t)) => replace_minimal(&mut txn, &t, text),
        _ => {
            map.insert(&mut txn, "text", TextPrelim::new(text));
        }
    }
    map.insert(&mut txn, "edited", true);
    true
}

/// Deletes a reply; false if there is no such reply.
pub fn delete_reply(doc: &Doc, id: &str) -> bool {
    let replies = doc.get_or_insert_array("replies");
    let mut txn = doc.transact_mut();
    match reply_index(&replies, &txn, id) {
        Some((i, _)) => {
            replies.remove(&mut txn, i);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::decoder::Decode;
    use yrs::Update;

    fn merge(a: &Doc, b: &Doc) {
        for (from, to) in [(a, b), (b, a)] {
            let sv = to.transact().state_vector();
            let u = from.transact().encode_state_as_update_v1(&sv);
            to.transact_mut()
                .apply_update(Update::decode_v1(&u).expect("decodes"))
                .expect("applies");
        }
    }

    fn new_note() -> Doc {
        let doc = Doc::with_client_id(1);
        create(&doc, "ada", 1000.0, "Plan", false);
        doc
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
            ("ada", 1000.0, 2000.0)
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
