//! Restoring a past version as a new forward edit.
//!
//! Nothing is rewritten: the result is an ordinary update that, applied to the current document,
//! makes its content equal to the past version's, and that every collaborator receives like any
//! other edit. It is computed by replaying, on a scratch document holding the past state, the
//! difference to the current state as one tracked transaction, and undoing that transaction:
//! the undo deletes what was inserted since and re-inserts what was deleted since, for every
//! kind of shared type (text, map, array, XML) without knowing the document's schema.

use yrs::types::ToJson;
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

    // Which root types exist now, read from a throwaway copy of the current state.
    let names: Vec<String> = {
        let probe = Doc::new();
        probe
            .transact_mut()
            .apply_update(decode("current", current)?)
            .map_err(|e| RestoreError::Failed(e.to_string()))?;
        let txn = probe.transact();
        let names = txn.root_refs().map(|(name, _)| name.to_string()).collect();
        names
    };

    let scratch = Doc::new();
    scratch
        .transact_mut()
        .apply_update(past_update)
        .map_err(|e| RestoreError::Failed(e.to_string()))?;
    let mut undo: UndoManager = UndoManager::with_options(yrs::undo::Options {
        capture_timeout_millis: u64::MAX / 2,
        ..Default::default()
    });
    undo.include_origin(Origin::from(REPLAY));
    for name in &names {
        // A root that does not exist yet is created untyped-as-map; items integrate into a
        // root by name whatever its declared type, which is all the undo needs.
        let existing = scratch
            .transact()
            .root_refs()
            .find(|(n, _)| *n == name.as_str())
            .map(|(_, out)| out);
        match existing {
            Some(out) => expand(&mut undo, &scratch, out)?,
            None => {
                let map = scratch.get_or_insert_map(name.as_str());
                undo.expand_scope(&scratch, &map);
            }
        }
    }
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

fn expand(undo: &mut UndoManager, doc: &Doc, out: yrs::Out) -> Result<(), RestoreError> {
    use yrs::Out;
    match out {
        Out::YText(t) => undo.expand_scope(doc, &t),
        Out::YArray(a) => undo.expand_scope(doc, &a),
        Out::YMap(m) => undo.expand_scope(doc, &m),
        Out::YXmlFragment(x) => undo.expand_scope(doc, &x),
        Out::YXmlElement(x) => undo.expand_scope(doc, &x),
        Out::YXmlText(x) => undo.expand_scope(doc, &x),
        Out::UndefinedRef(b) => undo.expand_scope(doc, &b),
        other => {
            return Err(RestoreError::Failed(format!(
                "unexpected root value {:?}",
                other.to_json(&doc.transact())
            )))
        }
    }
    Ok(())
}

fn empty_update() -> Vec<u8> {
    Doc::new()
        .transact()
        .encode_state_as_update_v1(&StateVector::default())
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn garbage_is_an_error() {
        assert!(matches!(
            revert_to(&[0xff, 0xff], &[0, 0]),
            Err(RestoreError::Decode { .. })
        ));
    }
}
