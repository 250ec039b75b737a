//! The workspace index: the documents the web demo lists a collection from without opening
//! every item. `workspace/index` indexes the shared collections, `private/<owner>/index` an
//! owner's private space. Each holds one `Y.Map` per collection (`notes`, `contacts`, `issues`)
//! of id → `Y.Map {title, updated, status?, priority?, assignees?, labels?, private?}` (an
//! issue's card on the board shows the last three). Clients keep it up to date as they edit
//! (the web demo's `writeSummary` in `web-demo/src/sync.js`); the server's REST edits do the
//! same with [`set_row`], so both write the same shape with the same minimal changes.

use yrs::{Any, Doc, Map, MapPrelim, Out, Transact};

use crate::typed::DocKind;

/// The name of the index document: the shared one, or the private space of `private_owner`.
pub fn doc_name(private_owner: Option<&str>) -> String {
    match private_owner {
        Some(owner) => format!("private/{owner}/index"),
        None => "workspace/index".to_string(),
    }
}

/// One item's summary row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The title, or a contact's name.
    pub title: String,
    /// Milliseconds since the epoch, as JavaScript's `Date.now()`.
    pub updated: f64,
    /// An issue's status.
    pub status: Option<String>,
    /// An issue's priority, assignees (by `sub`) and labels, for its card.
    pub card: Option<Card>,
    /// Set (true) on the rows of a private space.
    pub private: bool,
}

/// What an issue's card shows besides its title and status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Card {
    pub priority: String,
    pub assignees: Vec<String>,
    pub labels: Vec<String>,
}

impl Row {
    fn fields(&self) -> Vec<(&'static str, Any)> {
        let mut fields = vec![
            ("title", Any::from(self.title.as_str())),
            ("updated", Any::from(self.updated)),
        ];
        if let Some(status) = &self.status {
            fields.push(("status", Any::from(status.as_str())));
        }
        if let Some(card) = &self.card {
            let list = |items: &[String]| {
                Any::from(
                    items
                        .iter()
                        .map(|s| Any::from(s.as_str()))
                        .collect::<Vec<_>>(),
                )
            };
            fields.push(("priority", Any::from(card.priority.as_str())));
            fields.push(("assignees", list(&card.assignees)));
            fields.push(("labels", list(&card.labels)));
        }
        if self.private {
            fields.push(("private", Any::from(true)));
        }
        fields
    }
}

/// Writes (or with `None` removes) the row of `id` in the map of `kind`'s collection, in one
/// transaction. Fields that already hold the value are left alone, so a repeated write makes no
/// update; fields the row does not name (a client's own) are kept.
pub fn set_row(index: &Doc, kind: DocKind, id: &str, row: Option<&Row>) {
    let map = index.get_or_insert_map(kind.collection());
    let mut txn = index.transact_mut();
    let Some(row) = row else {
        map.remove(&mut txn, id);
        return;
    };
    let target = match map.get(&txn, id) {
        Some(Out::YMap(existing)) => existing,
        _ => map.insert(&mut txn, id, MapPrelim::default()),
    };
    for (key, value) in row.fields() {
        if !matches!(target.get(&txn, key), Some(Out::Any(ref current)) if *current == value) {
            target.insert(&mut txn, key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::types::ToJson;
    use yrs::ReadTxn;

    fn row(title: &str, status: Option<&str>) -> Row {
        Row {
            title: title.into(),
            updated: 1.5e12,
            status: status.map(str::to_string),
            card: None,
            private: false,
        }
    }

    fn json(index: &Doc) -> serde_json::Value {
        let txn = index.transact();
        let mut out = serde_json::Map::new();
        for kind in DocKind::ALL {
            if let Some(map) = txn.get_map(kind.collection()) {
                let any = map.to_json(&txn);
                out.insert(
                    kind.collection().into(),
                    serde_json::to_value(&any).unwrap_or_default(),
                );
            }
        }
        serde_json::Value::Object(out)
    }

    #[test]
    fn names() {
        assert_eq!(doc_name(None), "workspace/index");
        assert_eq!(doc_name(Some("ada")), "private/ada/index");
    }

    // The layout the web demo reads, a repeated write that changes nothing, and a removal.
    #[test]
    fn rows_are_written_minimally_and_removed() {
        let index = Doc::new();
        set_row(
            &index,
            DocKind::Issue,
            "i1",
            Some(&row("Bug", Some("open"))),
        );
        set_row(
            &index,
            DocKind::Note,
            "n1",
            Some(&Row {
                private: true,
                ..row("Plan", None)
            }),
        );
        assert_eq!(
            json(&index),
            serde_json::json!({
                // A whole number of milliseconds reads back as an integer, as in JavaScript.
                "issues": { "i1": { "title": "Bug", "updated": 1_500_000_000_000_i64, "status": "open" } },
                "notes": { "n1": { "title": "Plan", "updated": 1_500_000_000_000_i64, "private": true } },
            })
        );
        let before = index.transact().state_vector();
        set_row(
            &index,
            DocKind::Issue,
            "i1",
            Some(&row("Bug", Some("open"))),
        );
        assert_eq!(
            index.transact().state_vector(),
            before,
            "a same write changed it"
        );
        set_row(
            &index,
            DocKind::Issue,
            "i1",
            Some(&row("Bug", Some("done"))),
        );
        assert_eq!(json(&index)["issues"]["i1"]["status"], "done");
        set_row(&index, DocKind::Issue, "i1", None);
        assert_eq!(json(&index)["issues"], serde_json::json!({}));
    }

    // An issue's card details, as arrays the web demo reads; the same again changes nothing.
    #[test]
    fn card_details() {
        let index = Doc::new();
        let card = Card {
            priority: "urgent".into(),
            assignees: vec!["ada".into()],
            labels: vec!["backend".into(), "p1".into()],
        };
        let with_card = Row {
            card: Some(card),
            ..row("Bug", Some("open"))
        };
        set_row(&index, DocKind::Issue, "i1", Some(&with_card));
        let issue = &json(&index)["issues"]["i1"];
        assert_eq!(issue["priority"], "urgent");
        assert_eq!(issue["assignees"], serde_json::json!(["ada"]));
        assert_eq!(issue["labels"], serde_json::json!(["backend", "p1"]));
        let before = index.transact().state_vector();
        set_row(&index, DocKind::Issue, "i1", Some(&with_card));
        assert_eq!(
            index.transact().state_vector(),
            before,
            "a same write changed it"
        );
    }
}
