//! The REST filter and what each operation does, in order: match the route, authenticate,
//! authorize, validate, make the edit in the document's room, keep the index in step, answer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tandem_crdt_model::issue::IssueEdit;
use tandem_crdt_model::typed::DocKind;
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::Filter;

use super::edits::{
    create_edit, delete, edit_in_room, entry_edit, existing, issue_change, on_existing, patch_edit,
};
use super::index::update_index;
use super::list::list;
use super::routes::{route_of, Call};
use super::types::{EntryText, StatusChange};
use super::validate::parse;
use super::{doc_of, Op, ISSUES};
use crate::api_error::{json_reply, ApiError};
use crate::app::App;
use crate::auth::{Principal, Role};
use crate::request::{authenticate, bounded_body, credentials, query, remote, role_on, with_app};

pub fn routes(
    app: Arc<App>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let body_max = app.config.limits.rest_body_max_bytes;
    warp::path("api")
        .and(warp::path::full())
        .and(warp::method())
        .and(query())
        .and(credentials())
        .and(remote())
        .and(bounded_body(body_max))
        .and(with_app(app))
        .and_then(
            |path: warp::path::FullPath,
             method: Method,
             query: HashMap<String, String>,
             token: Option<String>,
             remote: Option<SocketAddr>,
             body: Bytes,
             app: Arc<App>| async move {
                let call = match route_of(&method, path.as_str()) {
                    Ok(Some(call)) => call,
                    Ok(None) => return Err(warp::reject::not_found()),
                    Err(refusal) => return Ok(*refusal),
                };
                let request = Request {
                    query: &query,
                    token: token.as_deref(),
                    remote,
                    body: &body,
                };
                Ok(handle(&app, &call, request)
                    .await
                    .unwrap_or_else(ApiError::into_response))
            },
        )
}

struct Request<'a> {
    query: &'a HashMap<String, String>,
    token: Option<&'a str>,
    remote: Option<SocketAddr>,
    body: &'a [u8],
}

async fn handle(app: &Arc<App>, call: &Call<'_>, req: Request<'_>) -> Result<Response, ApiError> {
    let principal = authenticate(app, req.remote, req.token)?;
    match call.op {
        Op::List(scope) => list(app, &principal, scope, req.query).await,
        Op::Create(scope) => {
            let (id, edit) = create_edit(scope, req.body, &principal)?;
            let doc = doc_of(scope, &id, &principal);
            require(&principal, &doc, Role::Write)?;
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            update_index(app, &principal, scope, &id, Some(&value)).await;
            Ok(json_reply(StatusCode::CREATED, &value))
        }
        Op::Read(scope) => {
            let doc = doc_of(scope, param(call.id)?, &principal);
            require(&principal, &doc, Role::Read)?;
            let (kind, id, name) = (scope.kind, param(call.id)?.to_string(), doc.clone());
            let value = edit_in_room(
                app,
                &doc,
                &principal.sub,
                Box::new(move |d, _| existing(kind, d, &id, &name)),
            )
            .await?;
            Ok(json_reply(StatusCode::OK, &value))
        }
        Op::Patch(scope) => {
            let doc = doc_of(scope, param(call.id)?, &principal);
            require(&principal, &doc, Role::Write)?;
            let edit = patch_edit(scope.kind, param(call.id)?, &doc, req.body)?;
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            update_index(app, &principal, scope, param(call.id)?, Some(&value)).await;
            Ok(json_reply(StatusCode::OK, &value))
        }
        Op::SetStatus => {
            let doc = doc_of(ISSUES, param(call.id)?, &principal);
            require(&principal, &doc, Role::Write)?;
            let StatusChange { status } = parse(req.body)?;
            let change = issue_change(IssueEdit {
                status: Some(status),
                ..IssueEdit::default()
            })?;
            let edit = on_existing(DocKind::Issue, param(call.id)?.into(), doc.clone(), change);
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            update_index(app, &principal, ISSUES, param(call.id)?, Some(&value)).await;
            Ok(json_reply(StatusCode::OK, &value))
        }
        Op::Delete(scope) => {
            let id = param(call.id)?;
            let doc = doc_of(scope, id, &principal);
            let role = require(&principal, &doc, Role::Write)?;
            let answer = delete(app, &principal, scope, &doc, role).await?;
            update_index(app, &principal, scope, id, None).await;
            Ok(json_reply(StatusCode::OK, &answer))
        }
        Op::AddEntry(scope) | Op::EditEntry(scope) | Op::DeleteEntry(scope) => {
            let doc = doc_of(scope, param(call.id)?, &principal);
            let role = require(&principal, &doc, Role::Write)?;
            let text = match call.op {
                Op::DeleteEntry(_) => None,
                _ => Some(parse::<EntryText>(req.body)?.text),
            };
            let edit = entry_edit(
                scope.kind,
                call.op,
                call.entry.map(str::to_string),
                text,
                &principal.sub,
                role >= Role::Admin,
            )?;
            let value = edit_in_room(app, &doc, &principal.sub, edit).await?;
            let status = if matches!(call.op, Op::AddEntry(_)) {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json_reply(status, &value))
        }
    }
}

fn param(value: Option<&str>) -> Result<&str, ApiError> {
    value.ok_or_else(|| ApiError::invalid("id", "missing"))
}

/// The caller's role on `doc` if it is at least `needed`.
fn require(principal: &Principal, doc: &str, needed: Role) -> Result<Role, ApiError> {
    let role = role_on(principal, doc)?;
    if role == Role::Read && needed > Role::Read {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            format!(
                "read-only: the token's role on this document is read, and this needs {}",
                format!("{needed:?}").to_lowercase()
            ),
        ));
    }
    if role < needed {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs the {needed:?} role on the document").to_lowercase(),
        ));
    }
    Ok(role)
}
