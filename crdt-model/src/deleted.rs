//! What a document has deleted, kept current as the document changes.
//!
//! A read-only client's SyncStep2 repeats the document's whole delete set, and the server must
//! tell it from an edit (which it refuses) without applying it. `yrs` only answers "what is
//! deleted" through a snapshot, which walks every block of the document: a reader could make the
//! room do that walk for every frame it sends. [`Deleted`] takes that walk once, when it starts
//! tracking a document, and then adds each transaction's deletions as it commits, so asking costs
//! the size of the update asked about.

use std::sync::{Arc, Mutex, PoisonError};

use yrs::{Doc, IdSet, ReadTxn, Transact};

use crate::shape::UpdateShape;

/// The key of the observer; one tracker per document.
const OBSERVER: &str = "tandem-deleted";

/// The delete set of one document. Dropping the tracker leaves the observer on the document
/// (it then only updates a set nobody reads); a document is tracked for its whole life.
#[derive(Debug, Clone)]
pub struct Deleted {
    set: Arc<Mutex<IdSet>>,
}

impl Deleted {
    /// Starts tracking `doc`: one walk of its blocks now, a merge per transaction after.
    pub fn track(doc: &Doc) -> Result<Self, String> {
        let set = Arc::new(Mutex::new(IdSet::new()));
        let observed = Arc::clone(&set);
        // Observed first, read second: a transaction in between lands in both, harmlessly.
        doc.observe_after_transaction(OBSERVER, move |txn| {
            let deleted = txn.delete_set();
            if !deleted.is_empty() {
                observed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .merge_with(deleted.clone());
            }
        })
        .map_err(|e| format!("observing the document: {e}"))?;
        let now = doc.transact().snapshot().delete_set;
        set.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .merge_with(now);
        Ok(Deleted { set })
    }

    /// True when `doc` (the document this tracks) already holds everything the update brings
    /// and deletes: applying it would change nothing.
    pub fn knows(&self, doc: &Doc, shape: &UpdateShape) -> bool {
        if shape.is_empty() {
            return true;
        }
        // The transaction ends before the set is locked: the observer locks it inside commits.
        let have = doc.transact().state_vector();
        let set = self.set.lock().unwrap_or_else(PoisonError::into_inner);
        shape.is_known(&have, &set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::{shape, UpdateShape, NESTING_MAX_DEFAULT};
    use yrs::updates::decoder::Decode;
    use yrs::{GetString, Text, Update};

    fn shape_of(update: &[u8]) -> UpdateShape {
        shape(update, NESTING_MAX_DEFAULT).expect("well-formed")
    }

    fn full_state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&yrs::StateVector::default())
    }

    // The tracked set agrees with a fresh snapshot after every kind of change: deletions made
    // locally, deletions arriving in updates, and deletions present when tracking starts.
    #[test]
    fn agrees_with_a_snapshot_as_the_document_changes() {
        let doc = Doc::with_client_id(1);
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "hello world");
        text.remove_range(&mut doc.transact_mut(), 0, 2);
        let deleted = Deleted::track(&doc).expect("tracks");
        let other = Doc::with_client_id(2);
        other
            .transact_mut()
            .apply_update(Update::decode_v1(&full_state(&doc)).expect("decodes"))
            .expect("applies");
        let other_text = other.get_or_insert_text("t");
        other_text.remove_range(&mut other.transact_mut(), 3, 4);
        doc.transact_mut()
            .apply_update(Update::decode_v1(&full_state(&other)).expect("decodes"))
            .expect("applies");
        text.remove_range(&mut doc.transact_mut(), 0, 1);
        assert_eq!(text.get_string(&doc.transact()), "lold");
        let fresh = doc.transact().snapshot().delete_set;
        assert_eq!(*deleted.set.lock().expect("lock"), fresh);
        // A reader's SyncStep2 (the whole state) is known; a new deletion is not.
        assert!(deleted.knows(&doc, &shape_of(&full_state(&doc))));
        let reader = Doc::with_client_id(3);
        reader
            .transact_mut()
            .apply_update(Update::decode_v1(&full_state(&doc)).expect("decodes"))
            .expect("applies");
        let sv = reader.transact().state_vector();
        reader
            .get_or_insert_text("t")
            .remove_range(&mut reader.transact_mut(), 0, 1);
        let deletion = reader.transact().encode_state_as_update_v1(&sv);
        assert!(!deleted.knows(&doc, &shape_of(&deletion)));
        doc.transact_mut()
            .apply_update(Update::decode_v1(&deletion).expect("decodes"))
            .expect("applies");
        assert!(deleted.knows(&doc, &shape_of(&deletion)), "known once made");
    }
}
