//! What goes into an endpoint's outbox: the events of a change, as the JSON the receiver gets
//! (the change feed's event without its feed id), one copy per endpoint whose filters take it.
//! At delivery the body gains `delivery` and `attempt` ([`request_body`]).

use std::sync::Arc;

use base64::Engine;
use serde::Serialize;
use tandem_crdt_model::typed::{self, Change, DocKind};
use tandem_storage::NewHookEvent;

use super::config::Endpoint;

/// The stored body of one event.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(flatten)]
    change: &'a Change,
    doc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<DocKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<String>,
    by: &'a [String],
    time_ms: u64,
    /// `document.updated` only: the Yjs v1 update, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    update: Option<String>,
    /// `document.updated` only: the document's state vector after the update, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    state_vector: Option<String>,
}

/// The Yjs side of a `document.updated` event.
pub struct DocumentUpdate<'a> {
    pub update: &'a [u8],
    pub state_vector: &'a [u8],
}

/// The outbox entries for `changes` of `doc` made by `by`, for every endpoint that takes them.
pub fn entries(
    endpoints: &[Arc<super::EndpointState>],
    doc: &str,
    by: &[String],
    changes: &[Change],
    yjs: Option<DocumentUpdate<'_>>,
    time_ms: u64,
) -> Vec<NewHookEvent> {
    let located = typed::locate(doc);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut out = Vec::new();
    for change in changes {
        let wanted: Vec<&Endpoint> = endpoints
            .iter()
            .map(|e| &e.config)
            .filter(|e| e.wants(&change.event, doc))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let body = Body {
            change,
            doc,
            kind: located.as_ref().map(|l| l.kind),
            item: located.as_ref().map(|l| l.id.to_string()),
            by,
            time_ms,
            update: yjs.as_ref().map(|y| b64(y.update)),
            state_vector: yjs.as_ref().map(|y| b64(y.state_vector)),
        };
        let Ok(body) = serde_json::to_vec(&body) else {
            continue;
        };
        for endpoint in wanted {
            out.push(NewHookEvent {
                endpoint: endpoint.id.clone(),
                event: change.event.clone(),
                time_ms,
                body: body.clone(),
            });
        }
    }
    out
}

/// The body a receiver gets: the stored one with the delivery id and the attempt number.
pub fn request_body(stored: &[u8], delivery: &str, attempt: u32) -> Vec<u8> {
    let mut object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(stored).unwrap_or_default();
    object.insert("delivery".into(), delivery.into());
    object.insert("attempt".into(), attempt.into());
    serde_json::to_vec(&object).unwrap_or_default()
}
