//! What a Yjs update is, read without integrating it: what it needs from a document, what it
//! brings, what it deletes, and how deep its values and shared types nest.
//!
//! `yrs` integrates an update's blocks only once everything they point at is in the document:
//! the left and right neighbours the author saw (origins), the parent type, the earlier clocks of
//! the block's own client, and the content its delete set removes. What is missing it keeps
//! *pending* inside the document, and fuzzing found crafted pending content that makes the whole
//! document encode to bytes that no longer decode, or read freed memory (`fuzz/README.md`).
//! `yrs` does not expose an update's blocks, so this module walks the encoding itself, with
//! `yrs`' own decoder, and sums the update up as an [`UpdateShape`]: the update integrates
//! completely into a document whose state vector reaches [`UpdateShape::requires`] for every
//! client, and may leave pending content in any other.
//!
//! The walk never recurses, so it is the first code that reads untrusted update bytes: `yrs`
//! decodes nested values (`Any`) recursively and deletes nested shared types recursively, and an
//! array nested 10,000 deep (20 KB) overflowed the stack and aborted the server. The walk
//! refuses values and shared types nesting deeper than a bound ([`ShapeError::TooDeep`]) before
//! any recursive code sees them, and block shapes no Yjs client writes or content kinds `yrs`
//! mishandles ([`ShapeError`]). A room checks the shape before it applies anything; it is
//! computed on the connection's task, so the room only compares state vectors.

use std::collections::HashMap;
use std::ops::Range;

use yrs::encoding::read::Read;
use yrs::updates::decoder::{Decode, Decoder, DecoderV1};
use yrs::{ClientID, IdSet, StateVector, ID};

/// The default bound on nesting (the server's `nesting_depth_max`, whose documentation says why).
pub const NESTING_MAX_DEFAULT: u32 = 128;

/// An update as far as a server needs to know before it lets `yrs` see it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateShape {
    /// The smallest state vector a document must have for the update to integrate completely:
    /// earlier clocks of each client, origins, parents and deleted content it does not bring.
    pub requires: StateVector,
    /// For every client whose blocks the update carries, the clock after its last block. A
    /// document whose state vector reaches this for every client already has all of it.
    pub brings: StateVector,
    /// What the update deletes.
    pub deletes: IdSet,
    /// How many levels of shared types the update nests inside whatever type it writes into
    /// (1 for a paragraph added to a document, 0 for text typed into an existing one).
    pub type_depth: u32,
}

impl UpdateShape {
    /// True when the update carries no blocks and deletes nothing (y-websocket's SyncStep2 from a
    /// client that has nothing new).
    pub fn is_empty(&self) -> bool {
        self.brings.is_empty() && self.deletes.is_empty()
    }

    /// True when a document with state vector `have` and delete set `deleted` already holds all
    /// of the update: applying it would change nothing. A read-only client's SyncStep2 always
    /// repeats its whole delete set, and must not count as an edit.
    pub fn is_known(&self, have: &StateVector, deleted: &IdSet) -> bool {
        self.brings
            .iter()
            .all(|(client, clock)| have.get(client) >= *clock)
            && self.deletes.client_ids().all(|client| {
                match (self.deletes.get(&client), deleted.get(&client)) {
                    (Some(mine), Some(known)) => {
                        covered(mine.iter().map(|(r, ())| r), known.iter().as_slice())
                    }
                    (Some(mine), None) => mine.is_empty(),
                    (None, _) => true,
                }
            })
    }

    /// The client IDs under which the update writes content.
    pub fn writers(&self) -> impl Iterator<Item = ClientID> + '_ {
        self.brings.iter().map(|(client, _)| *client)
    }
}

/// True when every clock range of `mine` lies within the ranges of `known`, a document's own
/// ranges of one client: sorted and disjoint, as yrs keeps every delete set it builds or merges.
/// Each range of `mine` is looked up by binary search, so the cost is the size of `mine` (off
/// the wire, in any order, possibly overlapping) times the logarithm of the document's
/// deletions: no copy of them, no walk. yrs' `subset_of` walked `known` from its start again for
/// every range of `mine`, and a reader's SyncStep2 repeats the document's whole delete set, so
/// that check was quadratic in the document's deletions (a 20 KB frame could hold the room for
/// seconds).
fn covered<'a>(mine: impl Iterator<Item = &'a Range<u32>>, known: &[(Range<u32>, ())]) -> bool {
    mine.filter(|want| !want.is_empty()).all(|want| {
        let mut from = want.start;
        while from < want.end {
            // The last known range starting at or before `from`: the only one that can hold it.
            let at = known.partition_point(|(r, ())| r.start <= from);
            match at.checked_sub(1).map(|i| &known[i].0) {
                Some(r) if r.end > from => from = r.end,
                _ => return false,
            }
        }
        true
    })
}

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
    /// Blocks of several clients that point at each other in a circle: none can integrate first.
    #[error("block {client}#{clock} depends on itself through other blocks")]
    Cycle { client: u64, clock: u32 },
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
    /// A shared type other than array, map, text and the XML types: `XmlHook` (which editors do
    /// not use) or `yrs`' internal "undefined". `yrs` reports no change events for them, and the
    /// room measures how deep a document nests through those events.
    #[error("block {client}#{clock} is a shared type of kind {kind}, which this server does not support")]
    UnsupportedType { client: u64, clock: u32, kind: u8 },
    /// A value or shared type nested deeper than the bound: `yrs` decodes values and deletes
    /// shared types recursively, so depth is stack.
    #[error("block {client}#{clock} nests deeper than {max} levels")]
    TooDeep { client: u64, clock: u32, max: u32 },
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

/// Where a block sits, as far as its encoding tells.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Directly in a root type.
    Root,
    /// In the shared type held by this item.
    In(ID),
    /// Beside this item (its left or right origin), so in the same type as it.
    Beside(ID),
}

/// An item block, for working out how deep the shared types it brings nest.
struct Placed {
    start: u32,
    end: u32,
    place: Place,
    is_type: bool,
}

/// Reads the shape of `update` (Yjs v1 encoding). `nesting_max` bounds how deep values and
/// shared types may nest; an error means the bytes are not a well-formed update or carry
/// something refused before decoding (see [`ShapeError`]).
pub fn shape(update: &[u8], nesting_max: u32) -> Result<UpdateShape, ShapeError> {
    let mut decoder = DecoderV1::from(update);
    let mut covered: HashMap<ClientID, Coverage> = HashMap::new();
    let mut placed: HashMap<ClientID, Vec<Placed>> = HashMap::new();
    let mut has_types = false;
    // Dependencies on other clients' (or this update's) content, resolved once every block is
    // known, since a block may point at one that comes later in the encoding.
    let mut depends_on: Vec<ID> = Vec::new();

    let sections: u32 = decoder.read_var().map_err(decode_error)?;
    for _ in 0..sections {
        let blocks: u32 = decoder.read_var().map_err(decode_error)?;
        let client = decoder.read_client().map_err(decode_error)?;
        let mut clock: u32 = decoder.read_var().map_err(decode_error)?;
        for _ in 0..blocks {
            let block = read_block(&mut decoder, ID::new(client, clock), nesting_max)?;
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
                if let Some(place) = block.place {
                    has_types |= block.is_type;
                    placed.entry(client).or_default().push(Placed {
                        start: clock,
                        end,
                        place,
                        is_type: block.is_type,
                    });
                }
            }
            clock = end;
        }
    }
    let deletes = IdSet::decode(&mut decoder).map_err(decode_error)?;

    let mut requires = StateVector::default();
    // Clients that need nothing stay out of the result.
    let mut need = |client: ClientID, clock: u32| {
        if clock > 0 {
            requires.set_max(client, clock);
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
    let mut brings = StateVector::default();
    for (client, coverage) in &covered {
        brings.set_max(*client, coverage.end());
    }
    let type_depth = if has_types {
        TypeNesting::new(&placed).depth(nesting_max)?
    } else {
        0
    };
    Ok(UpdateShape {
        requires,
        brings,
        deletes,
        type_depth,
    })
}

fn decode_error(e: impl std::fmt::Display) -> ShapeError {
    ShapeError::Decode(e.to_string())
}

mod block;
use block::read_block;
mod nesting;
use nesting::TypeNesting;
#[cfg(test)]
mod tests;
