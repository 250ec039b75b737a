//! Keeping the web demo's workspace index (`tandem_crdt_model::index`: its names and layout) in
//! step with REST edits, so lists built from it show what REST created, changed or deleted.

use std::sync::Arc;

use serde_json::Value;
use tandem_crdt_model::index::{self, Card, Row};
use yrs::Doc;

use super::edits::edit_in_room;
use super::Scope;
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::authorship::Authors;
use crate::clock::now_ms_f64;
use crate::room::EditFn;

/// Writes the index row of item `id` from its new reading (the REST answer, an `Item`), or
/// removes it (`None`, a deletion). Best effort: the document is the truth, and a caller without
/// write access to the index leaves it to the clients that have it.
pub(super) async fn update_index(
    app: &Arc<App>,
    principal: &Principal,
    scope: Scope,
    id: &str,
    item: Option<&Value>,
) {
    let index = index::doc_name(scope.private.then_some(principal.space()));
    if principal.role_for(&index).is_none_or(|r| r < Role::Write) {
        return;
    }
    let row = item.map(|item| Row {
        // A contact's line is its name.
        title: item["title"]
            .as_str()
            .or(item["name"].as_str())
            .unwrap_or_default()
            .to_string(),
        // Contacts keep no time of their own.
        updated: item["updated"].as_f64().unwrap_or_else(now_ms_f64),
        status: item["status"].as_str().map(str::to_string),
        // An issue's answer carries its priority: its card shows that, assignees and labels.
        card: item["priority"].as_str().map(|priority| Card {
            priority: priority.to_string(),
            assignees: strings(&item["assignees"]),
            labels: strings(&item["labels"]),
        }),
        private: scope.private,
    });
    let (kind, id) = (scope.kind, id.to_string());
    let edit: EditFn = Box::new(move |d: &Doc, _: &Authors| {
        index::set_row(d, kind, &id, row.as_ref());
        Ok(Value::Null)
    });
    if let Err(e) = edit_in_room(app, &index, &principal.sub, edit).await {
        tracing::debug!(index = %index, error = %e.message, "index row not updated");
    }
}

/// The strings of a JSON array (nothing for anything else).
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
