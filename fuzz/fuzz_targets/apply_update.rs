//! Update application as a room does it: decode, apply (guarded) to a document that already
//! holds content; an accepted update must leave a document that encodes and decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

// The server's allocator, so the fuzzer exercises what production runs: oversized reservations
// from decoders fail instead of succeeding virtually (see tandem::alloc).
#[global_allocator]
static ALLOCATOR: tandem::alloc::BoundedAlloc = tandem::alloc::BoundedAlloc;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact, Update};

fuzz_target!(
    init: common::init(),
    |data: &[u8]| {
    // As in a room: the content came from remote clients (client 1 here), the server's own
    // client ID never wrote anything.
    let doc = Doc::with_client_id(0x5e_77e2);
    let base = {
        let author = Doc::with_client_id(1);
        author.get_or_insert_text("t").insert(&mut author.transact_mut(), 0, "base content");
        let update = author.transact().encode_state_as_update_v1(&StateVector::default());
        update
    };
    if let Ok(update) = Update::decode_v1(&base) {
        let _ = doc.transact_mut().apply_update(update);
    }
    let Ok((update, requires)) = tandem_crdt_model::protocol::decode_update(data) else {
        return;
    };
    // The room never applies an update that runs ahead of its dependencies.
    if tandem::room::has_gap(&doc, &requires) {
        return;
    }
    // A refused update is discarded by the room, which reloads the document from the store;
    // an accepted one must leave a document that encodes and decodes.
    if tandem::room::apply_guarded(&doc, update).is_ok() {
        let state = doc.transact().encode_state_as_update_v1(&StateVector::default());
        assert!(Update::decode_v1(&state).is_ok(), "accepted update left an undecodable state");
    }
    }
);
