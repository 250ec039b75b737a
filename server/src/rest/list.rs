//! Listing a collection: a page of typed documents in id order, read from the store without
//! opening a room, skipping what the caller may not read.

use std::collections::HashMap;
use std::sync::Arc;

use tandem_crdt_model::typed::Typed;
use warp::http::StatusCode;
use warp::reply::Response;

use super::doc_of;
use super::types::{Item, Page};
use super::validate::check_id;
use super::Scope;
use crate::api_error::{json_reply, ApiError};
use crate::app::App;
use crate::auth::Principal;

/// A page of a collection, read from the store (no room is opened for a listing).
pub(super) async fn list(
    app: &Arc<App>,
    principal: &Principal,
    scope: Scope,
    query: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let max = app.config.limits.rest_page_len_max;
    let limit = match query.get("limit") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("a number from 1 to {max}")))?,
        None => app.config.limits.rest_page_len_default.min(max),
    };
    let after = match query.get("after") {
        Some(a) => {
            check_id("after", a)?;
            a.as_str()
        }
        None => "",
    };
    let prefix = format!("{}/", doc_of(scope, "", principal).trim_end_matches('/'));
    let after_name = if after.is_empty() {
        String::new()
    } else {
        format!("{prefix}{after}")
    };
    let store = Arc::clone(&app.store);
    let (kind, caller) = (scope.kind, principal.clone());
    let page = tokio::task::spawn_blocking(move || -> Result<(Vec<Item<Typed>>, bool), String> {
        let infos = store
            .list_page(&prefix, &after_name, limit + 1)
            .map_err(|e| e.to_string())?;
        let more = infos.len() > limit;
        let mut items = Vec::new();
        for info in infos.into_iter().take(limit) {
            let id = &info.name[prefix.len()..];
            // Nested names (`notes/a/b`) are not typed documents; unreadable ones are skipped.
            if id.contains('/') || caller.role_for(&info.name).is_none() {
                continue;
            }
            let Some(stored) = store.load(&info.name).map_err(|e| e.to_string())? else {
                continue;
            };
            let Ok((doc, _)) = tandem_crdt_model::doc::build(stored.updates()) else {
                continue;
            };
            items.extend(Item::read(kind, &doc, id, &info.name));
        }
        Ok((items, more))
    })
    .await
    .map_err(|_| ApiError::storage())?
    .map_err(|_| ApiError::storage())?;
    let (items, more) = page;
    let next_after = more.then(|| items.last().map(|i| i.id.clone())).flatten();
    Ok(json_reply(StatusCode::OK, &Page { items, next_after }))
}
