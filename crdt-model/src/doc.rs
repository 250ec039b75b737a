//! A document held by a server: built from its stored updates, changed only through a guarded
//! application that refuses what `yrs` would keep pending or nest too deep, and read as diffs.
//! Pure: the room (`tandem::room`), the HTTP API and the fuzz targets all use these functions,
//! and none of them does I/O.

use std::panic::AssertUnwindSafe;

use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;
use yrs::{Doc, ReadTxn, StateVector, Transact, Update};

/// Rebuilds a document from its stored updates (snapshot first, then the log, in order);
/// returns it with their total size.
///
/// Every stored update was accepted by a room, but not necessarily in log order with its
/// dependencies (a log written by an older version, which let updates with missing origins in),
/// so content may be pending between two entries; it must not be once the whole log is in.
pub fn build<'a>(stored: impl IntoIterator<Item = &'a [u8]>) -> Result<(Doc, u64), String> {
    // What is stored passed every check when it was written.
    let any_depth = u32::MAX;
    let doc = Doc::new();
    let mut bytes = 0u64;
    let mut pending = false;
    for raw in stored {
        bytes = bytes.saturating_add(u64::try_from(raw.len()).unwrap_or(u64::MAX));
        let update =
            Update::decode_v1(raw).map_err(|e| format!("stored update does not decode: {e}"))?;
        let (_, left_pending) = integrate(&doc, update, any_depth)
            .map_err(|e| format!("stored update does not apply: {e}"))?;
        pending = left_pending;
    }
    if pending {
        return Err("the stored log leaves content pending (a dependency is missing)".into());
    }
    Ok((doc, bytes))
}

/// Applies an update, turning a `yrs` error or panic into an error. `Ok(false)` means the
/// update changed nothing (everything in it was already known).
///
/// `changed_depth_max` bounds how deep the shared types the update changes may sit (the nesting
/// limit less the levels the update itself brings, `UpdateShape::type_depth`): `yrs` deletes
/// and collects nested types recursively, so a document nested thousands deep, built one level
/// per update, would overflow the stack when someone deletes its top. An update past the bound
/// is an error like any other, and the caller rebuilds the document.
///
/// The document never keeps pending content: an update that would leave some (it points at
/// content the document lacks, which [`has_gap`] should have caught, or its blocks depend on each
/// other in a cycle) is an error, and the caller must rebuild the document, since `yrs` cannot
/// take pending content back out. Fuzzing found crafted pending content that makes every later
/// encode of the document panic, encode to bytes that no longer decode, or read freed memory.
pub fn apply_guarded(doc: &Doc, update: Update, changed_depth_max: u32) -> Result<bool, String> {
    match integrate(doc, update, changed_depth_max)? {
        (_, true) => Err("the update depends on content the document lacks".to_string()),
        (changed, false) => Ok(changed),
    }
}

/// Applies an update under a panic guard; returns whether it changed the document and whether
/// the document now holds pending content.
fn integrate(doc: &Doc, update: Update, changed_depth_max: u32) -> Result<(bool, bool), String> {
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let mut txn = doc.transact_mut();
        txn.apply_update(update).map_err(|e| e.to_string())?;
        txn.commit();
        let depth = deepest_changed_type(&txn);
        if depth > changed_depth_max {
            return Err(format!(
                "the update nests shared types too deep (it changes a type at depth {depth})"
            ));
        }
        let (changed, pending) = (txn.has_changes(), txn.has_missing_updates());
        // What the update added, encoded as it will reach other clients and the store's
        // compaction, must decode again: fuzzing found updates that integrate but leave a
        // document encoding to bytes that no longer decode. The transaction's own encoding (the
        // blocks it added and what it deleted) costs the size of the update; a diff against the
        // state before would also encode the document's whole delete set, which yrs rebuilds by
        // walking every block: 250 µs per keystroke on a document of 60,000 edits.
        if changed {
            let delta = txn.encode_update_v1();
            Update::decode_v1(&delta)
                .map_err(|e| format!("the update does not round-trip: {e}"))?;
        }
        Ok::<_, String>((changed, pending))
    }));
    result.unwrap_or_else(|_| Err("applying the update panicked".into()))
}

/// The depth of the deepest shared type a committed transaction changed (a root type is 0).
///
/// `yrs` lists, for every type that changed, the type and its ancestors up to the root, one
/// chain after another; each chain ends at a root, so a chain's length less one is the changed
/// type's depth. (`yrs` offers no other way up from a type; the chains come for free, since
/// `yrs` walks them on every commit anyway.)
fn deepest_changed_type(txn: &yrs::TransactionMut) -> u32 {
    let (mut deepest, mut chain) = (0u32, 0u32);
    for branch in txn.changed_parent_types() {
        if let yrs::BranchID::Root(_) = branch.id() {
            deepest = deepest.max(chain);
            chain = 0;
        } else {
            chain = chain.saturating_add(1);
        }
    }
    deepest.max(chain)
}

/// True when an update needing `requires` ([`UpdateShape::requires`](crate::shape::UpdateShape))
/// depends on content
/// `doc` does not have: earlier clocks of a client, an origin or parent, or what it deletes.
///
/// The room never lets such an update into its document. Stock clients only produce one when
/// a fresh edit overtakes the SyncStep2 that carries its predecessors (or, with a second
/// provider such as y-webrtc, when they saw a peer's edit before we did), and they repair that
/// by answering our SyncStep1.
pub fn has_gap(doc: &Doc, requires: &StateVector) -> bool {
    let have = doc.transact().state_vector();
    requires
        .iter()
        .any(|(client, clock)| have.get(client) < *clock)
}

/// What `doc` has beyond `sv`, or `None` if `yrs` panics encoding it (see [`apply_guarded`]).
pub fn encode_diff(doc: &Doc, sv: &StateVector) -> Option<Vec<u8>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        doc.transact().encode_state_as_update_v1(sv)
    }))
    .ok()
}

/// Updates merged into one (Yjs v1), or `None` if `yrs` refuses or panics. The room merges
/// updates it has applied, so they decode; the guard is for the day one does not.
pub fn merge_updates<T: AsRef<[u8]>>(updates: &[T]) -> Option<Vec<u8>> {
    std::panic::catch_unwind(AssertUnwindSafe(|| yrs::merge_updates_v1(updates).ok()))
        .ok()
        .flatten()
}

/// A short stable tag of a state vector: equal tags mean the same document state (HTTP sync
/// uses it as its `ETag`).
pub fn state_tag(sv: &StateVector) -> String {
    // The encoded state vector is compact (a few bytes per client); its CRC-free FNV-1a hash is
    // enough to tell states apart for caching, and the length guards against trivial collisions.
    let bytes = sv.encode_v1();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in &bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{hash:016x}-{}\"", bytes.len())
}

/// The document's full state as one update (empty if it cannot encode).
pub fn encode_state(doc: &Doc) -> Vec<u8> {
    encode_diff(doc, &StateVector::default()).unwrap_or_default()
}
