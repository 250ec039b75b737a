//! `GET /api/openapi.json`: the OpenAPI 3 description of every HTTP endpoint. The typed REST
//! API's part is generated from the route table that dispatches requests (`rest::ROUTES`); the
//! other endpoints are described in `endpoints.rs`. Every JSON body's schema is what `schemars`
//! derives from the types the handlers parse and serialize (`rest::types`, `api_error::ErrorBody`,
//! the people layer's, ...), so it cannot drift from the code. `answers_fit_their_schemas` checks
//! real answers against it as well.

use std::sync::{Arc, LazyLock};

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::api_error::ErrorBody;
use crate::app::App;
use crate::rest::{Op, ROUTES};

mod endpoints;

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
        if matches!(route.op, Op::List(_)) {
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
    endpoints::add(
        &mut paths,
        &mut endpoints::Describe {
            generator: &mut generator,
            error,
        },
    );
    let schemas = generator.take_definitions(true);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "tandem",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "tandem's HTTP API: the typed REST API over its Yjs documents (every write is a CRDT transaction applied through the document's room: connected editors see it live), HTTP sync, history, notifications, who is online, and the server's own endpoints."
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
    use crate::api_error::ApiError;
    use crate::rest::types::{Deleted, Item, Page};
    use tandem_crdt_model::typed::{DocKind, Typed};

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

    /// Checks `value` against `schema` (the OpenAPI 3 subset schemars writes: `$ref`, `type`,
    /// `nullable`, `properties`, `required`, `items`, `additionalProperties`, `allOf`, `anyOf`,
    /// `oneOf`, `enum`), returning where it does not fit.
    fn fit(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
        if let Some(target) = schema["$ref"].as_str() {
            let name = target.trim_start_matches("#/components/schemas/");
            return fit(doc, &doc["components"]["schemas"][name], value, at);
        }
        if value.is_null() && schema["nullable"] == true {
            return Ok(());
        }
        if let Some(all) = schema["allOf"].as_array() {
            for s in all {
                fit(doc, s, value, at)?;
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(any) = schema[key].as_array() {
                if !any.iter().any(|s| fit(doc, s, value, at).is_ok()) {
                    return Err(format!("{at}: {value} fits no {key} branch"));
                }
            }
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                return Err(format!("{at}: {value} is not one of {allowed:?}"));
            }
        }
        let fits_type = match schema["type"].as_str() {
            None => true,
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.is_u64() || value.is_i64(),
            Some("number") => value.is_number(),
            Some(other) => return Err(format!("{at}: unexpected type {other}")),
        };
        if !fits_type {
            return Err(format!("{at}: {value} is not a {}", schema["type"]));
        }
        if let Value::Object(fields) = value {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("{at}: required {name} is missing"));
                }
            }
            for (name, v) in fields {
                match properties.and_then(|p| p.get(name)) {
                    Some(s) => fit(doc, s, v, &format!("{at}.{name}"))?,
                    None if schema["additionalProperties"].is_object() => {
                        fit(
                            doc,
                            &schema["additionalProperties"],
                            v,
                            &format!("{at}.{name}"),
                        )?;
                    }
                    // A field the schema does not declare: a type and its schema disagree.
                    None if properties.is_some() => {
                        return Err(format!("{at}: {name} is not in the schema"));
                    }
                    None => {}
                }
            }
        }
        if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
            for (i, v) in items.iter().enumerate() {
                fit(doc, s, v, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }

    /// One document of each kind with every part filled: a note with a reply, a contact with a
    /// custom field, an issue with a comment, as the REST answers read them.
    fn examples() -> Vec<(DocKind, Value, Value)> {
        use tandem_crdt_model::{contact, issue, note};
        let now = 1.7e12;
        let n = yrs::Doc::new();
        note::create(&n, "ada", now, "Plan", false);
        note::append_body(&n, "one\ntwo");
        note::add_reply(&n, "r1", "bob", "ok", now);
        let c = yrs::Doc::new();
        contact::apply(
            &c,
            &contact::ContactEdit {
                name: Some("Ada".into()),
                custom: [("twitter".to_string(), Some("@ada".to_string()))].into(),
                ..contact::ContactEdit::default()
            },
        );
        let i = yrs::Doc::new();
        issue::create(&i, "ada", now, "Bug");
        issue::add_comment(&i, "c1", "bob", "seen", now);
        let mut out = Vec::new();
        for (kind, doc, entry) in [
            (DocKind::Note, &n, Some("r1")),
            (DocKind::Contact, &c, None),
            (DocKind::Issue, &i, Some("c1")),
        ] {
            let item = Item::read(kind, doc, "x1", "docs/x1").expect("created");
            let entry = entry.map(|id| {
                let thread = match &item.value {
                    Typed::Note(n) => &n.replies,
                    Typed::Issue(i) => &i.comments,
                    Typed::Contact(_) => unreachable!(),
                };
                serde_json::to_value(thread.iter().find(|e| e.id == id)).unwrap_or_default()
            });
            let item = serde_json::to_value(&item).unwrap_or_default();
            out.push((kind, item, entry.unwrap_or_default()));
        }
        out
    }

    // The drift check: what the handlers serialize for each operation (the `types.rs` answers,
    // filled from real documents, and the error body) fits the schema the document gives it.
    #[test]
    fn answers_fit_their_schemas() {
        let doc = document();
        let examples = examples();
        for route in ROUTES.iter() {
            let kind = match route.op {
                Op::List(s) | Op::Create(s) | Op::Read(s) | Op::Patch(s) | Op::Delete(s) => s.kind,
                Op::AddEntry(s) | Op::EditEntry(s) | Op::DeleteEntry(s) => s.kind,
                Op::SetStatus => DocKind::Issue,
            };
            let (_, item, entry) = examples.iter().find(|(k, ..)| *k == kind).expect("kind");
            let deleted = serde_json::to_value(Deleted { deleted: true }).unwrap_or_default();
            let answer = match route.op {
                Op::List(_) => serde_json::to_value(Page {
                    items: vec![item.clone()],
                    next_after: Some("x1".into()),
                })
                .unwrap_or_default(),
                Op::Create(_) | Op::Read(_) | Op::Patch(_) | Op::SetStatus => item.clone(),
                Op::Delete(_) | Op::DeleteEntry(_) => deleted,
                Op::AddEntry(_) | Op::EditEntry(_) => entry.clone(),
            };
            let method = route.method.as_str().to_lowercase();
            let responses = &doc["paths"][route.path][&method]["responses"];
            let ok = &responses[route.ok.0.to_string()]["content"]["application/json"]["schema"];
            let at = format!("{method} {}", route.path);
            assert_eq!(fit(&doc, ok, &answer, &at), Ok(()));
            let refusal = ApiError::invalid("title", "too long").body();
            let refusal = serde_json::to_value(refusal).unwrap_or_default();
            let error = &responses["400"]["content"]["application/json"]["schema"];
            assert_eq!(fit(&doc, error, &refusal, &at), Ok(()));
        }
        // The check itself refuses what does not fit.
        let (_, note, _) = &examples[0];
        let mut stray = note.clone();
        stray["surprise"] = json!(1);
        let schema = &doc["paths"]["/api/notes/{id}"]["get"]["responses"]["200"]["content"]
            ["application/json"]["schema"];
        assert!(fit(&doc, schema, &stray, "stray").is_err());
        let mut wrong = note.clone();
        wrong["title"] = json!(7);
        assert!(fit(&doc, schema, &wrong, "wrong").is_err());
    }
}
