//! What each fuzz target feeds and checks. Shared by the targets (`fuzz_targets/*.rs`) and by
//! `server/tests/fuzz_corpus.rs`, which replays every committed input of `fuzz/corpus/` (seeds
//! and past crashes) in the ordinary test run: a crash becomes a regression test by copying it
//! there.
//!
//! Every check runs code exactly as the server does: frames are bounded before decoding, every
//! `yrs` call is guarded, and a room never applies an update it cannot integrate completely.

// Each fuzz target uses one of these checks; the replay test uses them all.
#![allow(dead_code)]

use std::sync::OnceLock;

use tandem_crdt_model::protocol;
use yrs::updates::decoder::Decode;
use yrs::{Doc, ReadTxn, StateVector, Text, Transact, Update};

/// The largest frame the checks accept, as a server configured with 1 MiB frames would.
pub const FRAME_SIZE_MAX_BYTES: usize = 1 << 20;

/// The server's default nesting bound.
pub const NESTING_MAX: u32 = tandem_crdt_model::shape::NESTING_MAX_DEFAULT;

/// How a socket decodes, for a writer or a reader.
pub fn decoding(may_write: bool) -> protocol::Decoding {
    protocol::Decoding {
        frame_size_max_bytes: FRAME_SIZE_MAX_BYTES,
        nesting_max: NESTING_MAX,
        may_write,
    }
}

/// The allocator bound a server with default limits uses (16 MiB frames, 64 MiB documents).
/// Callers install `tandem_crdt_model::bounded_alloc::BOUNDED_SYSTEM` as their global
/// allocator.
pub fn bound_allocations() {
    tandem_crdt_model::bounded_alloc::set_single_allocation_max(16 << 20, 64 << 20);
}

/// Both wire decoders on arbitrary bytes, y-websocket's and Hocuspocus': they return, never
/// panic, never allocate what a length prefix claims (the bounded allocator refuses it), and
/// what the Hocuspocus one reads keeps to its bounds.
pub fn decode_frame(data: &[u8]) {
    for may_write in [true, false] {
        let _ = protocol::decode_frame(data, &decoding(may_write));
        decode_hocuspocus(data, &decoding(may_write));
    }
}

fn decode_hocuspocus(data: &[u8], decoding: &protocol::Decoding) {
    use tandem_crdt_model::hocuspocus::{self, ClientMessage, Frame};
    match hocuspocus::read_frame(data, decoding.frame_size_max_bytes) {
        Ok(Frame::Ping | Frame::Pong) => assert_eq!(data.len(), 1, "a keep-alive is one byte"),
        Ok(Frame::Addressed {
            address,
            message_type,
            body,
        }) => {
            assert!(address.as_str().len() < data.len());
            assert!(address.doc().len() <= address.as_str().len());
            if let Some(session) = address.session() {
                assert!(!session.is_empty() && session.len() <= hocuspocus::SESSION_LEN_MAX_BYTES);
            }
            if let Ok(ClientMessage::Token {
                token,
                provider_version,
            }) = hocuspocus::decode_message(message_type, body, decoding)
            {
                assert!(token.len() <= hocuspocus::TOKEN_LEN_MAX_BYTES);
                assert!(
                    provider_version.is_none_or(|v| v.len() <= hocuspocus::VERSION_LEN_MAX_BYTES)
                );
            }
        }
        Err(_) => {}
    }
}

/// Arbitrary bytes as an update to a document that already holds content, decided on as a room
/// decides; an update the room accepts must leave a document that encodes and decodes.
pub fn apply_update(data: &[u8]) {
    // As in a room: the content came from remote clients (client 1 here), the server's own
    // client ID never wrote anything.
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let author = Doc::with_client_id(1);
        author
            .get_or_insert_text("t")
            .insert(&mut author.transact_mut(), 0, "base content");
        let base = author
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        base
    });
    let doc = Doc::with_client_id(0x5e_77e2);
    tandem_crdt_model::doc::apply_guarded(
        &doc,
        Update::decode_v1(base).expect("base decodes"),
        u32::MAX,
    )
    .expect("base applies");

    let Ok((update, shape)) = protocol::decode_update(data, NESTING_MAX) else {
        return;
    };
    if tandem_crdt_model::doc::has_gap(&doc, &shape.requires) {
        return;
    }
    // A refused update is discarded by the room, which rebuilds the document from the store.
    let depth_max = NESTING_MAX.saturating_sub(shape.type_depth);
    if tandem_crdt_model::doc::apply_guarded(&doc, update, depth_max).is_ok() {
        let state = doc
            .transact()
            .encode_state_as_update_v1(&StateVector::default());
        assert!(
            Update::decode_v1(&state).is_ok(),
            "accepted update left an undecodable state"
        );
    }
}

/// Nesting built by a writer one update at a time, decided on as a room decides, on a thread
/// whose stack is a tokio worker's: after every update the room accepts, no live shared type may
/// sit deeper than the bound, and nothing may crash `yrs`' recursion (deleting a nested type,
/// decoding a nested value; an update may build past the bound and delete it again, which yrs
/// recurses through while applying it). Each input byte is one step of the writer: the low two
/// bits pick what it does, the rest how much.
pub fn nesting(data: &[u8]) {
    let updates = nested_writes(data);
    let server = std::thread::Builder::new()
        .stack_size(NESTING_CHECK_STACK_BYTES)
        .spawn(move || {
            let mut accepted: Vec<Vec<u8>> = Vec::new();
            let mut doc = Doc::with_client_id(0x5e_77e2);
            for bytes in updates {
                let Ok((update, shape)) = protocol::decode_update(&bytes, NESTING_MAX) else {
                    continue;
                };
                if tandem_crdt_model::doc::has_gap(&doc, &shape.requires) {
                    continue;
                }
                let depth_max = NESTING_MAX.saturating_sub(shape.type_depth);
                match tandem_crdt_model::doc::apply_guarded(&doc, update, depth_max) {
                    Ok(_) => {
                        let depth = deepest_live_type(&doc);
                        assert!(depth <= NESTING_MAX, "accepted a type {depth} deep");
                        accepted.push(bytes);
                    }
                    // As a room does: rebuild from what was stored.
                    Err(_) => {
                        doc = Doc::with_client_id(0x5e_77e2);
                        for stored in &accepted {
                            let update = Update::decode_v1(stored).expect("stored decodes");
                            tandem_crdt_model::doc::apply_guarded(&doc, update, u32::MAX)
                                .expect("stored applies");
                        }
                    }
                }
            }
        })
        .expect("spawns");
    server.join().expect("the server side survived");
}

/// Stack of the thread `nesting` decides on: a tokio worker's, where rooms run. Room for `yrs`'
/// recursion over what the bound allows, far too little for the thousands of levels an input
/// can build.
const NESTING_CHECK_STACK_BYTES: usize = 2 << 20;

/// How deep the deepest live shared type of `doc` sits (a type in a root type is 1 deep),
/// walked with an explicit stack.
fn deepest_live_type(doc: &Doc) -> u32 {
    use yrs::types::xml::{XmlFragment, XmlOut};
    use yrs::{Array, Map, Out};
    let txn = doc.transact();
    let mut stack: Vec<(Out, u32)> = txn.root_refs().map(|(_, root)| (root, 0)).collect();
    let mut deepest = 0;
    let xml = |node: XmlOut| match node {
        XmlOut::Element(e) => Out::YXmlElement(e),
        XmlOut::Fragment(f) => Out::YXmlFragment(f),
        XmlOut::Text(t) => Out::YXmlText(t),
    };
    while let Some((node, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        let children: Vec<Out> = match &node {
            Out::YArray(a) => a.iter(&txn).collect(),
            Out::YMap(m) => m.iter(&txn).map(|(_, v)| v).collect(),
            Out::YXmlElement(e) => e.children(&txn).map(xml).collect(),
            Out::YXmlFragment(f) => f.children(&txn).map(xml).collect(),
            _ => Vec::new(),
        };
        stack.extend(
            children
                .into_iter()
                .filter(|child| !matches!(child, Out::Any(_)))
                .map(|child| (child, depth + 1)),
        );
    }
    deepest
}

/// The updates a writer makes while following `data` (see [`nesting`]).
fn nested_writes(data: &[u8]) -> Vec<Vec<u8>> {
    use yrs::{Array, ArrayPrelim, ArrayRef, Map, MapPrelim, XmlElementPrelim, XmlFragment};
    let writer = Doc::with_client_id(7);
    let root = writer.get_or_insert_array("a");
    let fragment = writer.get_or_insert_xml_fragment("x");
    // The arrays of the chain being built, innermost last.
    let mut chain: Vec<ArrayRef> = Vec::new();
    let mut updates = Vec::new();
    let mut txn = writer.transact_mut();
    for &byte in data {
        let amount = usize::from(byte >> 2);
        match byte & 0b11 {
            // Nest: a new array (or a map holding an array) inside the innermost one.
            0 => {
                let parent = chain.last().cloned().unwrap_or(root.clone());
                let next = if amount % 2 == 0 {
                    parent.insert(&mut txn, 0, ArrayPrelim::default())
                } else {
                    let map = parent.insert(&mut txn, 0, MapPrelim::default());
                    map.insert(&mut txn, "inner", ArrayPrelim::default())
                };
                chain.push(next);
            }
            // A value nested `8 × amount` deep, or XML elements nested inside each other.
            1 => {
                if amount % 2 == 0 {
                    let mut value = yrs::Any::Null;
                    for _ in 0..amount * 8 {
                        value = yrs::Any::Array(vec![value].into());
                    }
                    let parent = chain.last().cloned().unwrap_or(root.clone());
                    parent.insert(&mut txn, 0, value);
                } else {
                    let mut element = fragment.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
                    for _ in 0..amount {
                        element = element.insert(&mut txn, 0, XmlElementPrelim::empty("p"));
                    }
                }
            }
            // Send what was written since the last update.
            2 => {
                updates.push(txn.encode_update_v1());
                drop(txn);
                txn = writer.transact_mut();
            }
            // Delete the outermost level: what makes `yrs` recurse through everything below.
            _ => {
                if root.len(&txn) > 0 {
                    root.remove(&mut txn, 0);
                }
                chain.clear();
            }
        }
    }
    updates.push(txn.encode_update_v1());
    updates
}
