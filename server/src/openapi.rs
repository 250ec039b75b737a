//! `GET /api/openapi.json`: the OpenAPI 3 description of the typed REST API, generated from the
//! route table that dispatches requests (`rest::ROUTES`) and the schemas `schemars` derives from
//! the request and response types, so it cannot drift from the code.

use std::sync::{Arc, LazyLock};

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::app::App;
use crate::rest::{ErrorBody, ROUTES};

/// Built once: it depends on nothing but the code.
static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

pub fn routes(
    _app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    warp::path!("api" / "openapi.json")
        .and(warp::get())
        .map(|| warp::reply::json(&*DOCUMENT).into_response())
}

fn document() -> Value {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let error = serde_json::to_value(generator.subschema_for::<ErrorBody>()).unwrap_or_default();
    let error_response = |description: &str| json!({ "description": description, "content": { "application/json": { "schema": error } } });
    let id_pattern = crate::doc_name::id_pattern();
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES.iter() {
        let mut parameters = Vec::new();
        for name in ["id", "entry"] {
            if route.path.contains(&format!("{{{name}}}")) {
                parameters.push(json!({
                    "name": name, "in": "path", "required": true,
                    "schema": { "type": "string", "pattern": id_pattern }
                }));
            }
        }
        if matches!(route.op, crate::rest::Op::List(_)) {
            parameters.push(json!({
                "name": "limit", "in": "query", "required": false,
                // The default limit: a server started with a lower one answers 400 beyond it.
                "schema": { "type": "integer", "minimum": 1, "maximum": crate::config::Limits::default().rest_page_len_max }
            }));
            parameters.push(json!({
                "name": "after", "in": "query", "required": false,
                "description": "the next_after of the previous page",
                "schema": { "type": "string", "pattern": id_pattern }
            }));
        }
        let ok = serde_json::to_value((route.ok.1)(&mut generator)).unwrap_or_default();
        let mut responses = Map::new();
        responses.insert(
            route.ok.0.to_string(),
            json!({ "description": "success", "content": { "application/json": { "schema": ok } } }),
        );
        for (status, what) in [
            (400, "invalid input; `field` names the culprit"),
            (401, "missing, invalid or expired token"),
            (403, "the token's role does not allow this"),
            (404, "no such document or entry"),
            (405, "wrong method for this path"),
            (409, "it exists already"),
            (413, "the body or the document is too large"),
            (429, "too many failed authentications from this address"),
            (503, "storage unavailable or the document busy; retry"),
        ] {
            if route.errors.contains(&status) || [401, 403, 405, 429, 503].contains(&status) {
                responses.insert(status.to_string(), error_response(what));
            }
        }
        let mut operation = json!({
            "summary": route.summary,
            "operationId": operation_id(route.method.as_str(), route.path),
            "parameters": parameters,
            "responses": responses,
            "security": [{}, { "bearer": [] }],
        });
        if let Some(body) = route.body {
            let schema = serde_json::to_value(body(&mut generator)).unwrap_or_default();
            operation["requestBody"] = json!({
                "required": true,
                "content": { "application/json": { "schema": schema } }
            });
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method.as_str().to_lowercase()] = operation;
    }
    paths.insert(
        "/api/events".into(),
        json!({ "get": {
            "summary": "The change feed as Server-Sent Events (resumable with Last-Event-ID)",
            "operationId": "events",
            "parameters": [
                { "name": "kind", "in": "query", "required": false, "description": "comma-separated: note, contact, issue", "schema": { "type": "string" } },
                { "name": "docs", "in": "query", "required": false, "description": "a document pattern such as notes/*", "schema": { "type": "string" } },
                { "name": "Last-Event-ID", "in": "header", "required": false, "schema": { "type": "string", "pattern": "^[0-9]{1,19}$" } }
            ],
            "responses": {
                "200": { "description": "an endless text/event-stream; each event's data is a JSON FeedEvent", "content": { "text/event-stream": { "schema": { "type": "string" } } } },
                "400": error_response("invalid filter or event id"),
                "401": error_response("missing, invalid or expired token"),
                "429": error_response("too many failed authentications from this address"),
                "503": error_response("too many open streams")
            },
            "security": [{}, { "bearer": [] }]
        }}),
    );
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tandem",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Typed REST API over tandem's Yjs documents. Every write is a CRDT transaction applied through the document's room: connected editors see it live."
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } }
        }
    })
}

/// `PATCH /api/notes/{id}/replies/{entry}` → `patch_notes_id_replies_entry`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_lowercase();
    for segment in path.trim_start_matches("/api/").split('/') {
        id.push('_');
        id.push_str(segment.trim_matches(|c| c == '{' || c == '}'));
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_described_with_resolvable_schemas() {
        let doc = document();
        let text = doc.to_string();
        for route in ROUTES.iter() {
            let op = &doc["paths"][route.path][route.method.as_str().to_lowercase()];
            assert!(op.is_object(), "{} {} is missing", route.method, route.path);
        }
        // Every $ref points into components/schemas and resolves.
        for piece in text.split("\"$ref\":\"").skip(1) {
            let target = piece.split('"').next().unwrap_or_default();
            let name = target
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("unexpected ref {target}"));
            assert!(
                doc["components"]["schemas"][name].is_object(),
                "{name} unresolved"
            );
        }
    }
}
