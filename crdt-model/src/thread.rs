//! Reply threads (note replies, issue comments): a `Y.Array` of `Y.Map`s, each
//! `{id: string, author: string, text: Y.Text, time: number (ms), edited: boolean}`.

use serde::{Deserialize, Serialize};
use yrs::{
    Array, ArrayRef, Doc, GetString, Map, MapPrelim, MapRef, Out, ReadTxn, TextPrelim, Transact,
};

use crate::schema::{describe, Fields, SchemaIssue};
use crate::text::replace_minimal;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Entry {
    pub id: String,
    pub author: String,
    pub text: String,
    /// Milliseconds since the epoch.
    pub time: i64,
    pub edited: bool,
}

/// Reads the thread in root `name`, reporting entries that are not maps or whose fields have
/// the wrong kind.
pub fn read<T: ReadTxn>(
    array: &ArrayRef,
    txn: &T,
    name: &str,
    issues: &mut Vec<SchemaIssue>,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for (i, value) in array.iter(txn).enumerate() {
        let path = format!("{name}[{i}]");
        let Out::YMap(map) = value else {
            issues.push(SchemaIssue {
                path,
                expected: "Y.Map",
                found: describe(&value, txn),
            });
            continue;
        };
        let text = match map.get(txn, "text") {
            Some(Out::YText(t)) => t.get_string(txn),
            Some(other) => {
                issues.push(SchemaIssue {
                    path: format!("{path}.text"),
                    expected: "Y.Text",
                    found: describe(&other, txn),
                });
                String::new()
            }
            None => String::new(),
        };
        let mut f = Fields {
            map: &map,
            txn,
            path: &path,
            issues,
        };
        out.push(Entry {
            id: f.string("id"),
            author: f.string("author"),
            text,
            time: f.time_ms("time"),
            edited: f.boolean("edited"),
        });
    }
    out
}

/// Appends an entry to the thread in root `name`, as one transaction.
pub fn add(doc: &Doc, name: &str, id: &str, author: &str, text: &str, now_ms: f64) {
    let array = doc.get_or_insert_array(name);
    let mut txn = doc.transact_mut();
    let len = array.len(&txn);
    let map = array.insert(&mut txn, len, MapPrelim::default());
    map.insert(&mut txn, "id", id);
    map.insert(&mut txn, "author", author);
    map.insert(&mut txn, "text", TextPrelim::new(text));
    map.insert(&mut txn, "time", now_ms);
    map.insert(&mut txn, "edited", false);
}

fn find<T: ReadTxn>(array: &ArrayRef, txn: &T, id: &str) -> Option<(u32, MapRef)> {
    array.iter(txn).enumerate().find_map(|(i, v)| match v {
        Out::YMap(m) if matches!(m.get(txn, "id"), Some(Out::Any(yrs::Any::String(s))) if &*s == id) => {
            Some((u32::try_from(i).ok()?, m))
        }
        _ => None,
    })
}

/// Edits an entry's text (minimal change) and marks it edited; false if there is no such entry.
pub fn edit(doc: &Doc, name: &str, id: &str, text: &str) -> bool {
    let array = doc.get_or_insert_array(name);
    let mut txn = doc.transact_mut();
    let Some((_, map)) = find(&array, &txn, id) else {
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

/// Deletes an entry; false if there is no such entry.
pub fn delete(doc: &Doc, name: &str, id: &str) -> bool {
    let array = doc.get_or_insert_array(name);
    let mut txn = doc.transact_mut();
    match find(&array, &txn, id) {
        Some((i, _)) => {
            array.remove(&mut txn, i);
            true
        }
        None => false,
    }
}

/// The ID of the item holding an entry: who wrote it is the server's record of who wrote that
/// item, never the entry's own `author` field, which any writer can change.
pub fn entry_item(doc: &Doc, name: &str, id: &str) -> Option<yrs::ID> {
    let array = doc.get_or_insert_array(name);
    let txn = doc.transact();
    let (_, map) = find(&array, &txn, id)?;
    match map.as_ref().id() {
        yrs::BranchID::Nested(item) => Some(item),
        yrs::BranchID::Root(_) => None,
    }
}
