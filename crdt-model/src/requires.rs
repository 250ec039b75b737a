//! What a Yjs update needs from the document it is applied to.
//!
//! `yrs` integrates an update's blocks only once everything they point at is in the document:
//! the left and right neighbours the author saw (origins), the parent type, the earlier clocks of
//! the block's own client, and the content its delete set removes. What is missing it keeps
//! *pending* inside the document, and fuzzing found crafted pending content that makes the whole
//! document encode to bytes that no longer decode, or read freed memory (`fuzz/README.md`).
//! `yrs` does not expose an update's blocks, so this module walks the encoding itself, with
//! `yrs`' own decoder, and sums the update's needs up as one state vector: the update integrates
//! completely into a document whose state vector reaches [`required_state`] for every client,
//! and may leave pending content in any other. It also refuses block shapes no Yjs client
//! writes and content kinds `yrs` mishandles ([`ShapeError`]).
//!
//! A room checks this before it applies anything (`tandem::room::has_gap`); it is computed on
//! the connection's task, next to decoding, so the room only compares two state vectors.

use std::collections::HashMap;

use yrs::block::{
    ItemContent, BLOCK_GC_REF_NUMBER, BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_DOC_REF_NUMBER,
    BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN,
    HAS_PARENT_SUB, HAS_RIGHT_ORIGIN,
};
use yrs::encoding::read::Read;
use yrs::updates::decoder::{Decode, Decoder, DecoderV1};
use yrs::{ClientID, IdSet, StateVector, ID};

/// Why an update's shape is refused before it reaches any document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ShapeError {
    #[error("{0}")]
    Decode(String),
    /// Blocks of one client overlap or go backwards. Yjs encoders write each client's blocks
    /// once, in clock order; `yrs` would integrate such an update in an order nobody intended.
    #[error("blocks of client {client} are out of clock order at {clock}")]
    OutOfOrder { client: u64, clock: u32 },
    /// A block that points at itself or at a later block of its own client: a cycle that can
    /// never integrate.
    #[error("block {client}#{clock} depends on its own future")]
    DependsOnItself { client: u64, clock: u32 },
    /// Legacy JSON content (Yjs' `ContentJSON`, which current Yjs only reads): `yrs` 0.28 reads
    /// one string more than the count it writes, so such a block either misreads what follows it
    /// or makes the document's state undecodable once stored (a fuzzing find).
    #[error("block {client}#{clock} carries legacy JSON content")]
    LegacyJson { client: u64, clock: u32 },
    /// A subdocument (`ContentDoc`). `yrs` 0.28 never frees a subdocument's store once it was
    /// integrated (a reference cycle, found by LeakSanitizer while fuzzing), so every load of a
    /// document holding them would leak memory in proportion to their number. Hocuspocus does not
    /// support subdocuments either.
    #[error("block {client}#{clock} is a subdocument, which this server does not support")]
    Subdocument { client: u64, clock: u32 },
}

/// The clock ranges one client's blocks cover in an update, in order.
#[derive(Default)]
struct Coverage {
    ranges: Vec<(u32, u32)>,
}

impl Coverage {
    fn covers(&self, clock: u32) -> bool {
        // Ranges are sorted and disjoint (checked while walking).
        let i = self.ranges.partition_point(|&(_, end)| end <= clock);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= clock)
    }

    /// Appends a block's range, merged with the previous one when they touch.
    fn add(&mut self, start: u32, end: u32) {
        match self.ranges.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => self.ranges.push((start, end)),
        }
    }

    fn end(&self) -> u32 {
        self.ranges.last().map_or(0, |&(_, end)| end)
    }

    /// The clock the document must already have for these blocks to integrate without a hole:
    /// the start of every range that does not follow the one before it. Touching ranges are
    /// merged (`add`), so that is the start of the last range.
    fn requires(&self) -> u32 {
        self.ranges.last().map_or(0, |&(start, _)| start)
    }
}

/// The smallest state vector a document must have for `update` (Yjs v1 encoding) to integrate
/// completely, leaving nothing pending. An error means the bytes are not a well-formed update.
pub fn required_state(update: &[u8]) -> Result<StateVector, ShapeError> {
    let mut decoder = DecoderV1::from(update);
    let mut covered: HashMap<ClientID, Coverage> = HashMap::new();
    // Dependencies on other clients' (or this update's) content, resolved once every block is
    // known, since a block may point at one that comes later in the encoding.
    let mut depends_on: Vec<ID> = Vec::new();

    let sections: u32 = decoder.read_var().map_err(decode_error)?;
    for _ in 0..sections {
        let blocks: u32 = decoder.read_var().map_err(decode_error)?;
        let client = decoder.read_client().map_err(decode_error)?;
        let mut clock: u32 = decoder.read_var().map_err(decode_error)?;
        for _ in 0..blocks {
            let block = read_block(&mut decoder, ID::new(client, clock))?;
            if block.len == 0 {
                // `yrs` drops empty items without advancing the clock; so do we.
                continue;
            }
            let end = clock
                .checked_add(block.len)
                .ok_or_else(|| ShapeError::Decode("clock overflows".into()))?;
            if !block.skip {
                let coverage = covered.entry(client).or_default();
                if clock < coverage.end() {
                    return Err(ShapeError::OutOfOrder {
                        client: client.get(),
                        clock,
                    });
                }
                // Most blocks point at the block just before them (the previous keystroke of
                // the same client); settle those here instead of collecting them.
                depends_on.extend(
                    block
                        .refs
                        .into_iter()
                        .flatten()
                        .filter(|r| r.client != client || !coverage.covers(r.clock)),
                );
                coverage.add(clock, end);
            }
            clock = end;
        }
    }
    let deletes = IdSet::decode(&mut decoder).map_err(decode_error)?;

    let mut required = StateVector::default();
    // Clients that need nothing stay out of the result.
    let mut need = |client: ClientID, clock: u32| {
        if clock > 0 {
            required.set_max(client, clock);
        }
    };
    for (client, coverage) in &covered {
        need(*client, coverage.requires());
    }
    for id in depends_on {
        let inside = covered.get(&id.client).is_some_and(|c| c.covers(id.clock));
        if !inside {
            need(id.client, id.clock.saturating_add(1));
        }
    }
    for (client, ranges) in deletes.iter() {
        let brought = covered.get(client).map_or(0, Coverage::end);
        for range in ranges.iter() {
            if range.end > brought {
                need(*client, range.end);
            }
        }
    }
    Ok(required)
}

/// One block as far as its needs go.
struct BlockShape {
    /// Length in clocks.
    len: u32,
    /// A skip: a hole the update leaves open.
    skip: bool,
    /// What it points at: left origin, right origin, parent item.
    refs: [Option<ID>; 3],
}

/// Reads one block the way `yrs` does (`Update::decode_block`).
fn read_block(decoder: &mut DecoderV1<'_>, id: ID) -> Result<BlockShape, ShapeError> {
    let info = decoder.read_info().map_err(decode_error)?;
    let range = |len, skip| BlockShape {
        len,
        skip,
        refs: [None; 3],
    };
    match info {
        BLOCK_SKIP_REF_NUMBER => Ok(range(decoder.read_var().map_err(decode_error)?, true)),
        BLOCK_GC_REF_NUMBER => Ok(range(decoder.read_len().map_err(decode_error)?, false)),
        info => {
            let mut refs = [None, None, None];
            if info & HAS_ORIGIN != 0 {
                refs[0] = Some(decoder.read_left_id().map_err(decode_error)?);
            }
            if info & HAS_RIGHT_ORIGIN != 0 {
                refs[1] = Some(decoder.read_right_id().map_err(decode_error)?);
            }
            // Without neighbours the block names its parent: a root by name, or a nested type
            // by the ID of the item that holds it.
            if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
                if decoder.read_parent_info().map_err(decode_error)? {
                    decoder.read_string().map_err(decode_error)?;
                } else {
                    refs[2] = Some(decoder.read_left_id().map_err(decode_error)?);
                }
                if info & HAS_PARENT_SUB != 0 {
                    decoder.read_string().map_err(decode_error)?;
                }
            }
            for target in refs.iter().flatten() {
                if target.client == id.client && target.clock >= id.clock {
                    return Err(ShapeError::DependsOnItself {
                        client: id.client.get(),
                        clock: id.clock,
                    });
                }
            }
            // `ItemContent::decode` picks the content kind from the low four bits.
            let (client, clock) = (id.client.get(), id.clock);
            match info & 0b1111 {
                BLOCK_ITEM_JSON_REF_NUMBER => return Err(ShapeError::LegacyJson { client, clock }),
                BLOCK_ITEM_DOC_REF_NUMBER => return Err(ShapeError::Subdocument { client, clock }),
                _ => {}
            }
            // Text and deletions, nearly every block of a real document, are measured without
            // building their content (the same reads `ItemContent::decode` makes, no copies).
            let len = match info & 0b1111 {
                BLOCK_ITEM_STRING_REF_NUMBER => {
                    let text = decoder.read_string().map_err(decode_error)?;
                    u32::try_from(text.encode_utf16().count())
                        .map_err(|_| ShapeError::Decode("string too long".into()))?
                }
                BLOCK_ITEM_DELETED_REF_NUMBER => decoder.read_len().map_err(decode_error)?,
                _ => ItemContent::decode(decoder, info)
                    .map_err(decode_error)?
                    .len_utf16(),
            };
            Ok(BlockShape {
                len,
                skip: false,
                refs,
            })
        }
    }
}

fn decode_error(e: impl std::fmt::Display) -> ShapeError {
    ShapeError::Decode(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Array, Doc, GetString, Map, ReadTxn, Text, Transact, Update};

    fn state(doc: &Doc) -> Vec<u8> {
        doc.transact()
            .encode_state_as_update_v1(&StateVector::default())
    }

    fn sv(pairs: &[(u64, u32)]) -> StateVector {
        let mut sv = StateVector::default();
        for &(client, clock) in pairs {
            sv.set_max(ClientID::new(client), clock);
        }
        sv
    }

    /// Applies `update` to a copy of `base` and reports whether `yrs` kept anything pending.
    fn leaves_pending(base: &[u8], update: &[u8]) -> bool {
        let doc = Doc::new();
        let mut txn = doc.transact_mut();
        txn.apply_update(Update::decode_v1(base).expect("base decodes"))
            .expect("base applies");
        txn.apply_update(Update::decode_v1(update).expect("update decodes"))
            .expect("update applies");
        txn.has_missing_updates()
    }

    #[test]
    fn a_full_state_requires_nothing() {
        // Goal: what a client sends on first sync (its whole state) fits into an empty document.
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "hello");
        text.insert(&mut doc.transact_mut(), 5, " world");
        doc.get_or_insert_map("m")
            .insert(&mut doc.transact_mut(), "k", "v");
        text.remove_range(&mut doc.transact_mut(), 0, 2);
        assert_eq!(required_state(&state(&doc)), Ok(StateVector::default()));
    }

    #[test]
    fn an_edit_requires_what_its_author_saw() {
        // Goal: an edit requires its origin and the earlier clocks of its own client; a document
        // short of either would keep it pending.
        let a = Doc::with_client_id(1);
        a.get_or_insert_text("t")
            .insert(&mut a.transact_mut(), 0, "abc");
        let b = Doc::with_client_id(2);
        b.transact_mut()
            .apply_update(Update::decode_v1(&state(&a)).expect("decodes"))
            .expect("applies");
        let text = b.get_or_insert_text("t");
        text.insert(&mut b.transact_mut(), 3, "d");
        let before = b.transact().state_vector();
        text.insert(&mut b.transact_mut(), 4, "e");
        let edit = b.transact().encode_state_as_update_v1(&before);

        // "e" has "d" (b's first edit) as its left origin, and follows it in b's clocks.
        assert_eq!(required_state(&edit), Ok(sv(&[(2, 1)])));
        assert!(
            leaves_pending(&state(&a), &edit),
            "b's first edit is missing"
        );
    }

    #[test]
    fn a_delete_requires_what_it_deletes() {
        let a = Doc::with_client_id(1);
        let text = a.get_or_insert_text("t");
        text.insert(&mut a.transact_mut(), 0, "abcdef");
        let before = a.transact().state_vector();
        text.remove_range(&mut a.transact_mut(), 1, 3);
        let delete = a.transact().encode_state_as_update_v1(&before);
        assert_eq!(required_state(&delete), Ok(sv(&[(1, 4)])));
        assert_eq!(text.get_string(&a.transact()), "aef");
    }

    #[test]
    fn nested_types_require_their_parent() {
        // Goal: content inserted into a nested type points at the item that holds that type.
        let a = Doc::with_client_id(1);
        let list = a.get_or_insert_array("a");
        let map = list.insert(&mut a.transact_mut(), 0, yrs::MapPrelim::default());
        let before = a.transact().state_vector();
        map.insert(&mut a.transact_mut(), "x", 1);
        let edit = a.transact().encode_state_as_update_v1(&before);
        assert_eq!(required_state(&edit), Ok(sv(&[(1, 1)])));
    }

    #[test]
    fn a_merged_update_with_a_hole_requires_the_hole() {
        // Goal: Y.mergeUpdates writes a skip for clocks it lacks; a document that lacks them too
        // would get a hole in its own block store.
        let a = Doc::with_client_id(1);
        let text = a.get_or_insert_text("t");
        let mut updates = Vec::new();
        for (i, s) in ["ab", "cd", "ef"].into_iter().enumerate() {
            let before = a.transact().state_vector();
            text.insert(
                &mut a.transact_mut(),
                u32::try_from(i * 2).expect("small"),
                s,
            );
            updates.push(a.transact().encode_state_as_update_v1(&before));
        }
        let merged = yrs::merge_updates_v1([&updates[0][..], &updates[2][..]]).expect("merges");
        assert_eq!(required_state(&merged), Ok(sv(&[(1, 4)])));
    }

    #[test]
    fn the_known_crasher_is_refused() {
        // Goal: the fuzzing find `fuzz/corpus/apply_update/regression-self-parent`
        // names as its parent a later clock of its own client (0#199), which no Yjs client can.
        let crasher = include_bytes!("../../fuzz/corpus/apply_update/regression-self-parent");
        assert_eq!(
            required_state(crasher),
            Err(ShapeError::DependsOnItself {
                client: 0,
                clock: 0
            })
        );
    }

    #[test]
    fn a_parent_nobody_sent_is_required() {
        // Goal: a block whose parent is another client's item the update does not bring (8#0)
        // needs the document to have it first; yrs would keep it pending.
        let orphan = [
            0x01, 0x01, 0x00, 0x00, 0x04, 0x00, 0x08, 0x00, 0x01, b'x', 0x00,
        ];
        assert_eq!(required_state(&orphan), Ok(sv(&[(8, 1)])));
        assert!(leaves_pending(&state(&Doc::new()), &orphan));
    }

    #[test]
    fn legacy_json_content_is_refused() {
        // Goal: the fuzzing find `fuzz/corpus/apply_update/regression-legacy-json` (a JSON block
        // in a new root, plus a delete) passed every other check but left a document whose state
        // no longer decodes, because yrs writes JSON content one string shorter than it reads.
        let crasher = include_bytes!("../../fuzz/corpus/apply_update/regression-legacy-json");
        assert_eq!(
            required_state(crasher),
            Err(ShapeError::LegacyJson {
                client: 4,
                clock: 0
            })
        );
    }

    #[test]
    fn subdocuments_are_refused() {
        // Goal: the fuzzing find `fuzz/corpus/apply_update/regression-subdocument-leak` (yrs
        // leaks an integrated subdocument's store) and a subdocument as Yjs writes it are refused.
        let crasher = include_bytes!("../../fuzz/corpus/apply_update/regression-subdocument-leak");
        assert_eq!(
            required_state(crasher),
            Err(ShapeError::Subdocument {
                client: 0,
                clock: 0
            })
        );
        let doc = Doc::with_client_id(3);
        doc.get_or_insert_map("m")
            .insert(&mut doc.transact_mut(), "sub", Doc::with_client_id(4));
        assert_eq!(
            required_state(&state(&doc)),
            Err(ShapeError::Subdocument {
                client: 3,
                clock: 0
            })
        );
    }

    #[test]
    fn self_references_and_disorder_are_refused() {
        // An item whose origin is its own ID; then two sections of one client going backwards.
        let self_origin = [0x01, 0x01, 0x05, 0x00, 0x84, 0x05, 0x00, 0x01, b'x', 0x00];
        assert_eq!(
            required_state(&self_origin),
            Err(ShapeError::DependsOnItself {
                client: 5,
                clock: 0
            })
        );
        let twice = [1u8, 1, 1, 0, 4, 1, 1, b't', 2, b'a', b'b'];
        let mut backwards = vec![2u8];
        backwards.extend_from_slice(&twice[1..]);
        backwards.extend_from_slice(&twice[1..]);
        backwards.push(0);
        assert_eq!(
            required_state(&backwards),
            Err(ShapeError::OutOfOrder {
                client: 1,
                clock: 0
            })
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[][..],
            &[0xff; 12],
            &[1, 0xff, 0xff, 0xff, 0xff, 0x0f],
            &[1, 1, 1],
        ] {
            assert!(required_state(bytes).is_err(), "{bytes:?}");
        }
    }
}
