//! A contact: a form whose every field is a `Y.Text`, so two people typing in two fields (or
//! in different parts of one) never overwrite each other.
//!
//! Yjs layout:
//!
//! | root | Yjs type | content |
//! |---|---|---|
//! | `fields` | `Y.Map` | `name`, `email`, `phone`, `company`, `notes`: each a `Y.Text` |
//! | `custom` | `Y.Map` | label → `Y.Text`: fields the team adds |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yrs::{Doc, GetString, Map, MapRef, Out, ReadTxn, TextPrelim, Transact, TransactionMut};

use crate::schema::{describe, SchemaIssue};
use crate::text::replace_minimal;

/// The standard fields, in form order.
pub const FIELDS: [&str; 5] = ["name", "email", "phone", "company", "notes"];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Contact {
    pub name: String,
    pub email: String,
    pub phone: String,
    pub company: String,
    pub notes: String,
    pub custom: BTreeMap<String, String>,
}

/// A typed change: `Some` fields are set (minimally), custom fields set to `None` are removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactEdit {
    #[schemars(length(max = crate::schema::SHORT_TEXT_CHARS_MAX))]
    pub name: Option<String>,
    #[schemars(length(max = crate::schema::SHORT_TEXT_CHARS_MAX))]
    pub email: Option<String>,
    #[schemars(length(max = crate::schema::SHORT_TEXT_CHARS_MAX))]
    pub phone: Option<String>,
    #[schemars(length(max = crate::schema::SHORT_TEXT_CHARS_MAX))]
    pub company: Option<String>,
    pub notes: Option<String>,
    #[serde(default)]
    pub custom: BTreeMap<String, Option<String>>,
}

fn text_of<T: ReadTxn>(
    map: &MapRef,
    txn: &T,
    key: &str,
    path: &str,
    issues: &mut Vec<SchemaIssue>,
) -> String {
    match map.get(txn, key) {
        None => String::new(),
        Some(Out::YText(t)) => t.get_string(txn),
        Some(other) => {
            issues.push(SchemaIssue {
                path: path.to_string(),
                expected: "Y.Text",
                found: describe(&other, txn),
            });
            String::new()
        }
    }
}

pub fn read(doc: &Doc) -> (Contact, Vec<SchemaIssue>) {
    let fields = doc.get_or_insert_map("fields");
    let custom = doc.get_or_insert_map("custom");
    let txn = doc.transact();
    let mut issues = Vec::new();
    let mut get = |key: &str| text_of(&fields, &txn, key, &format!("fields.{key}"), &mut issues);
    let mut contact = Contact {
        name: get("name"),
        email: get("email"),
        phone: get("phone"),
        company: get("company"),
        notes: get("notes"),
        custom: BTreeMap::new(),
    };
    let keys: Vec<String> = custom.keys(&txn).map(str::to_string).collect();
    for key in keys {
        let value = text_of(&custom, &txn, &key, &format!("custom.{key}"), &mut issues);
        contact.custom.insert(key, value);
    }
    (contact, issues)
}

/// Sets `map[key]` to `value`, editing the existing `Y.Text` minimally or creating one.
fn set_text(txn: &mut TransactionMut, map: &MapRef, key: &str, value: &str) {
    match map.get(txn, key) {
        Some(Out::YText(t)) => replace_minimal(txn, &t, value),
        _ => {
            map.insert(txn, key, TextPrelim::new(value));
        }
    }
}

/// Applies a typed edit as one transaction with minimal changes.
pub fn apply(doc: &Doc, edit: &ContactEdit) {
    let fields = doc.get_or_insert_map("fields");
    let custom = doc.get_or_insert_map("custom");
    let mut txn = doc.transact_mut();
    let standard = [
        ("name", &edit.name),
        ("email", &edit.email),
        ("phone", &edit.phone),
        ("company", &edit.company),
        ("notes", &edit.notes),
    ];
    for (key, value) in standard {
        if let Some(value) = value {
            set_text(&mut txn, &fields, key, value);
        }
    }
    for (key, value) in &edit.custom {
        match value {
            Some(value) => set_text(&mut txn, &custom, key, value),
            None => {
                custom.remove(&mut txn, key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::merge;

    // Two people fill different fields at the same time; merged in either order, both stay.
    #[test]
    fn concurrent_fields_merge() {
        let a = Doc::with_client_id(1);
        let b = Doc::with_client_id(2);
        apply(
            &a,
            &ContactEdit {
                name: Some("Ada Lovelace".into()),
                ..Default::default()
            },
        );
        merge(&a, &b);
        apply(
            &a,
            &ContactEdit {
                email: Some("ada@example.org".into()),
                ..Default::default()
            },
        );
        let mut custom = BTreeMap::new();
        custom.insert("linkedin".to_string(), Some("ada-l".to_string()));
        apply(
            &b,
            &ContactEdit {
                name: Some("Ada King Lovelace".into()),
                custom,
                ..Default::default()
            },
        );
        merge(&a, &b);
        let (ca, issues) = read(&a);
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(ca, read(&b).0);
        assert_eq!(ca.name, "Ada King Lovelace");
        assert_eq!(ca.email, "ada@example.org");
        assert_eq!(ca.custom.get("linkedin").map(String::as_str), Some("ada-l"));
        let mut remove = BTreeMap::new();
        remove.insert("linkedin".to_string(), None);
        apply(
            &a,
            &ContactEdit {
                custom: remove,
                ..Default::default()
            },
        );
        assert!(read(&a).0.custom.is_empty());
    }

    #[test]
    fn wrong_types_are_reported() {
        let doc = Doc::new();
        let fields = doc.get_or_insert_map("fields");
        fields.insert(&mut doc.transact_mut(), "phone", 5551234);
        let (contact, issues) = read(&doc);
        assert_eq!(contact.phone, "");
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].path, "fields.phone");
    }
}
