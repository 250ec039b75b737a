//! Restoring a past version as a new forward edit.
//!
//! Nothing is rewritten: the result is an ordinary update that, applied to the current document,
//! makes its content equal to the past version's, and that every collaborator receives like any
//! other edit. It is computed by replaying, on a scratch document holding the past state, the
//! difference to the current state as one tracked transaction, and undoing that transaction:
//! the undo deletes what was inserted since and re-inserts what was deleted since, for every
//! kind of shared type (text, map, array, XML) without knowing the document's schema.

use yrs::updates::decoder::Decode;
use yrs::{Doc, Origin, ReadTxn, StateVector, Transact, UndoManager, Update};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RestoreError {
    #[error("the {which} state does not decode: {detail}")]
    Decode { which: &'static str, detail: String },
    #[error("the past state is not part of the current document's history")]
    NotAnAncestor,
    #[error("restoring failed: {0}")]
    Failed(String),
}

const REPLAY: &str = "tandem-restore-replay";

/// The update that turns `current` (a full document state) back into `past` (a full state from
/// its history), as a forward edit.
pub fn revert_to(current: &[u8], past: &[u8]) -> Result<Vec<u8>, RestoreError> {
    let decode = |which, bytes: &[u8]| {
        Update::decode_v1(bytes).map_err(|e| RestoreError::Decode {
            which,
            detail: e.to_string(),
        })
    };
    let current_update = decode("current", current)?;
    let past_update = decode("past", past)?;

    // Root types are referenced by name only in updates, and yrs emits no change events (which
    // the undo manager relies on) for roots whose type it was never told. So the kind of every
    // root is inferred from its content, past first (deleted content is still there), and the
    // scratch document declares each root with that kind before anything is applied.
    let mut kinds: Vec<(String, RootKind)> = Vec::new();
    for state in [past, current] {
        let probe = Doc::new();
        probe
            .transact_mut()
            .apply_update(decode("state", state)?)
            .map_err(|e| RestoreError::Failed(e.to_string()))?;
        let txn = probe.transact();
        for (name, out) in txn.root_refs() {
            if kinds.iter().any(|(n, _)| n == name) {
                continue;
            }
            if let Some(kind) = infer_kind(&txn, out) {
                kinds.push((name.to_string(), kind));
            }
        }
    }

    let scratch = Doc::new();
    let mut undo: UndoManager = UndoManager::with_options(yrs::undo::Options {
        capture_timeout_millis: u64::MAX / 2,
        ..Default::default()
    });
    undo.include_origin(Origin::from(REPLAY));
    for (name, kind) in &kinds {
        match kind {
            RootKind::Text => {
                undo.expand_scope(&scratch, &scratch.get_or_insert_text(name.as_str()))
            }
            RootKind::Map => undo.expand_scope(&scratch, &scratch.get_or_insert_map(name.as_str())),
            RootKind::Array => {
                undo.expand_scope(&scratch, &scratch.get_or_insert_array(name.as_str()))
            }
            RootKind::Xml => {
                undo.expand_scope(&scratch, &scratch.get_or_insert_xml_fragment(name.as_str()))
            }
        }
    }
    scratch
        .transact_mut()
        .apply_update(past_update)
        .map_err(|e| RestoreError::Failed(e.to_string()))?;
    let before = scratch.transact().state_vector();
    {
        let mut txn = scratch.transact_mut_with(REPLAY);
        txn.apply_update(current_update)
            .map_err(|e| RestoreError::Failed(e.to_string()))?;
        if txn.has_missing_updates() {
            return Err(RestoreError::NotAnAncestor);
        }
    }
    let after_replay = scratch.transact().state_vector();
    if after_replay == before {
        return Ok(empty_update());
    }
    while undo.can_undo() {
        if !undo.undo_blocking() {
            break;
        }
    }
    let txn = scratch.transact();
    Ok(txn.encode_state_as_update_v1(&after_replay))
}

/// A document state as JSON, one key per root: texts and XML as strings, maps as objects,
/// arrays as arrays. Root kinds are inferred from content (updates carry no root types), so an
/// empty root is omitted.
pub fn state_to_json(state: &[u8]) -> Result<serde_json::Value, RestoreError> {
    use yrs::types::ToJson;
    use yrs::{ArrayRef, GetString, MapRef, TextRef, XmlFragmentRef};
    let update = Update::decode_v1(state).map_err(|e| RestoreError::Decode {
        which: "state",
        detail: e.to_string(),
    })?;
    let doc = Doc::new();
    doc.transact_mut()
        .apply_update(update)
        .map_err(|e| RestoreError::Failed(e.to_string()))?;
    let txn = doc.transact();
    let mut out = serde_json::Map::new();
    for (name, root) in txn.root_refs() {
        let yrs::Out::UndefinedRef(branch) = root else {
            continue;
        };
        let Some(kind) = infer_kind(&txn, yrs::Out::UndefinedRef(branch)) else {
            continue;
        };
        let value = match kind {
            RootKind::Text => serde_json::Value::String(TextRef::from(branch).get_string(&txn)),
            RootKind::Xml => {
                serde_json::Value::String(XmlFragmentRef::from(branch).get_string(&txn))
            }
            RootKind::Map => serde_json::to_value(MapRef::from(branch).to_json(&txn))
                .map_err(|e| RestoreError::Failed(e.to_string()))?,
            RootKind::Array => serde_json::to_value(ArrayRef::from(branch).to_json(&txn))
                .map_err(|e| RestoreError::Failed(e.to_string()))?,
        };
        out.insert(name.to_string(), value);
    }
    Ok(serde_json::Value::Object(out))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RootKind {
    Text,
    Map,
    Array,
    Xml,
}

/// The kind of a root seen only through updates, from what it holds; `None` when empty.
fn infer_kind<T: ReadTxn>(txn: &T, out: yrs::Out) -> Option<RootKind> {
    use yrs::{Array, ArrayRef, GetString, Map, MapRef, Out, TextRef};
    let branch = match out {
        Out::UndefinedRef(b) => b,
        Out::YText(_) => return Some(RootKind::Text),
        Out::YMap(_) => return Some(RootKind::Map),
        Out::YArray(_) => return Some(RootKind::Array),
        Out::YXmlFragment(_) => return Some(RootKind::Xml),
        _ => return None,
    };
    if MapRef::from(branch).len(txn) > 0 {
        return Some(RootKind::Map);
    }
    let array = ArrayRef::from(branch);
    if array
        .iter(txn)
        .any(|v| matches!(v, Out::YXmlElement(_) | Out::YXmlText(_)))
    {
        return Some(RootKind::Xml);
    }
    if !TextRef::from(branch).get_string(txn).is_empty() {
        return Some(RootKind::Text);
    }
    (array.len(txn) > 0).then_some(RootKind::Array)
}

fn empty_update() -> Vec<u8> {
    Doc::new()
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::types::ToJson;
    use yrs::{Array, GetString, Map, Text, WriteTxn};

    fn state(doc: &Doc) -> Vec<u8> {
        let s = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        s
    }

    fn json(doc: &Doc) -> String {
        let txn = doc.transact();
        let mut roots: Vec<(String, String)> = txn
            .root_refs()
            .map(|(n, v)| (n.to_string(), v.to_json(&txn).to_string()))
            .collect();
        roots.sort();
        format!("{roots:?}")
    }

    // After text inserts and deletes, a map overwrite, an array push and a root that did not
    // exist, restoring v1 gives back exactly v1's content, and the restore is a plain update that
    // a second replica can apply too.
    #[test]
    fn restores_every_kind_of_change() {
        let doc = Doc::with_client_id(1);
        let text = doc.get_or_insert_text("title");
        let map = doc.get_or_insert_map("meta");
        let arr = doc.get_or_insert_array("tags");
        {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "hello world");
            map.insert(&mut txn, "status", "open");
            arr.push_back(&mut txn, "a");
        }
        let v1 = state(&doc);
        let v1_json = json(&doc);
        {
            let mut txn = doc.transact_mut();
            text.remove_range(&mut txn, 0, 6);
            text.insert(&mut txn, 5, "!!");
            map.insert(&mut txn, "status", "done");
            map.insert(&mut txn, "extra", 1);
            arr.push_back(&mut txn, "b");
            let later = txn.get_or_insert_text("later");
            later.insert(&mut txn, 0, "new root");
        }
        let peer = Doc::with_client_id(2);
        peer.transact_mut()
            .apply_update(Update::decode_v1(&state(&doc)).expect("decodes"))
            .expect("applies");

        let revert = revert_to(&state(&doc), &v1).expect("reverts");
        for replica in [&doc, &peer] {
            replica
                .transact_mut()
                .apply_update(Update::decode_v1(&revert).expect("decodes"))
                .expect("applies");
        }
        assert_eq!(text.get_string(&doc.transact()), "hello world");
        let later = doc.get_or_insert_text("later");
        assert_eq!(later.get_string(&doc.transact()), "");
        assert_eq!(map.to_json(&doc.transact()).to_string(), "{status: open}");
        assert_eq!(arr.to_json(&doc.transact()).to_string(), "[a]");
        assert_eq!(state(&peer), state(&doc), "replicas converge");
        assert!(json(&doc).contains("hello world") && v1_json.contains("hello world"));
    }

    // One writer typing at the end (items squash into one block), then restoring the first
    // version: the later text is deleted.
    #[test]
    fn restores_appended_typing() {
        let doc = Doc::with_client_id(1);
        let t = doc.get_or_insert_text("t");
        let mut states = vec![];
        for p in ["one ", "two ", "three"] {
            let len = t.len(&doc.transact());
            t.insert(&mut doc.transact_mut(), len, p);
            states.push(state(&doc));
        }
        let revert = revert_to(&states[2], &states[0]).expect("reverts");
        doc.transact_mut()
            .apply_update(Update::decode_v1(&revert).expect("decodes"))
            .expect("applies");
        assert_eq!(t.get_string(&doc.transact()), "one ");
    }

    // A rich-text body (XML fragment) and an array of maps (reply threads) restore too.
    #[test]
    fn restores_xml_and_nested_maps() {
        use yrs::{MapPrelim, XmlElementPrelim, XmlFragment, XmlTextPrelim};
        let doc = Doc::with_client_id(3);
        let body = doc.get_or_insert_xml_fragment("default");
        let replies = doc.get_or_insert_array("replies");
        {
            let mut txn = doc.transact_mut();
            let p = body.insert(&mut txn, 0, XmlElementPrelim::empty("paragraph"));
            p.insert(&mut txn, 0, XmlTextPrelim::new("first"));
            replies.push_back(
                &mut txn,
                MapPrelim::from([("id".to_string(), yrs::In::from("r1"))]),
            );
        }
        let v1 = state(&doc);
        let v1_body = body.get_string(&doc.transact());
        {
            let mut txn = doc.transact_mut();
            body.remove_range(&mut txn, 0, 1);
            let p = body.insert(&mut txn, 0, XmlElementPrelim::empty("heading"));
            p.insert(&mut txn, 0, XmlTextPrelim::new("second"));
            replies.remove(&mut txn, 0);
        }
        let revert = revert_to(&state(&doc), &v1).expect("reverts");
        doc.transact_mut()
            .apply_update(Update::decode_v1(&revert).expect("decodes"))
            .expect("applies");
        assert_eq!(body.get_string(&doc.transact()), v1_body);
        assert_eq!(replies.len(&doc.transact()), 1);
    }

    #[test]
    fn restoring_the_current_state_changes_nothing() {
        let doc = Doc::with_client_id(1);
        doc.get_or_insert_text("t")
            .insert(&mut doc.transact_mut(), 0, "x");
        let s = state(&doc);
        let revert = revert_to(&s, &s).expect("reverts");
        let u = Update::decode_v1(&revert).expect("decodes");
        assert!(u.is_empty());
    }

    // Each kind of root renders as the JSON a reader expects.
    #[test]
    fn json_of_a_state() {
        let doc = Doc::with_client_id(4);
        {
            let mut txn = doc.transact_mut();
            txn.get_or_insert_text("title").insert(&mut txn, 0, "Hi");
            txn.get_or_insert_map("meta")
                .insert(&mut txn, "status", "open");
            txn.get_or_insert_array("tags").push_back(&mut txn, "x");
        }
        let json = state_to_json(&state(&doc)).expect("renders");
        assert_eq!(
            json,
            serde_json::json!({"title": "Hi", "meta": {"status": "open"}, "tags": ["x"]})
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            revert_to(&[0xff, 0xff], &[0, 0]),
            Err(RestoreError::Decode { .. })
        ));
    }
}
