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

use yrs::block::{
    BLOCK_GC_REF_NUMBER, BLOCK_ITEM_ANY_REF_NUMBER, BLOCK_ITEM_BINARY_REF_NUMBER,
    BLOCK_ITEM_DELETED_REF_NUMBER, BLOCK_ITEM_DOC_REF_NUMBER, BLOCK_ITEM_EMBED_REF_NUMBER,
    BLOCK_ITEM_FORMAT_REF_NUMBER, BLOCK_ITEM_JSON_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER,
    BLOCK_ITEM_TYPE_REF_NUMBER, BLOCK_SKIP_REF_NUMBER, HAS_ORIGIN, HAS_PARENT_SUB,
    HAS_RIGHT_ORIGIN,
};
use yrs::encoding::read::Read;
use yrs::types::{
    TYPE_REFS_ARRAY, TYPE_REFS_DOC, TYPE_REFS_MAP, TYPE_REFS_TEXT, TYPE_REFS_XML_ELEMENT,
    TYPE_REFS_XML_FRAGMENT, TYPE_REFS_XML_TEXT,
};
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
                    (Some(mine), Some(known)) => mine.subset_of(known),
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

/// How deep the shared types an update brings nest inside each other, counted from whatever
/// type outside the update (or root) they are written into.
struct TypeNesting<'a> {
    placed: &'a HashMap<ClientID, Vec<Placed>>,
    /// Per block: `None` not yet known, `Some(None)` being worked out, `Some(Some(d))` the depth
    /// of the type the block sits in.
    memo: HashMap<(ClientID, usize), Option<u32>>,
}

/// What a block's container depth follows from.
enum Step {
    Known(u32),
    /// The container depth of that block, plus this.
    Via((ClientID, usize), u32),
}

impl<'a> TypeNesting<'a> {
    fn new(placed: &'a HashMap<ClientID, Vec<Placed>>) -> Self {
        TypeNesting {
            placed,
            memo: HashMap::new(),
        }
    }

    /// The block holding clock `id.clock` of `id.client`, if the update brings it.
    fn find(&self, id: &ID) -> Option<(ClientID, usize)> {
        let blocks = self.placed.get(&id.client)?;
        let i = blocks.partition_point(|b| b.end <= id.clock);
        let block = blocks.get(i)?;
        (block.start <= id.clock).then_some((id.client, i))
    }

    fn block(&self, (client, i): (ClientID, usize)) -> &Placed {
        &self.placed[&client][i]
    }

    fn step(&self, at: (ClientID, usize)) -> Step {
        match self.block(at).place {
            Place::Root => Step::Known(0),
            Place::In(id) => match self.find(&id) {
                Some(parent) if self.block(parent).is_type => Step::Via(parent, 1),
                // A container outside the update (its depth is the room's business), or an item
                // that holds no type (`yrs` keeps such a block pending; the room refuses it).
                _ => Step::Known(0),
            },
            Place::Beside(id) => match self.find(&id) {
                Some(neighbour) => Step::Via(neighbour, 0),
                None => Step::Known(0),
            },
        }
    }

    /// The deepest shared type the update brings, counted in levels below the type it writes
    /// into. Works without recursion: chains of neighbours can be as long as the update.
    fn depth(mut self, nesting_max: u32) -> Result<u32, ShapeError> {
        let placed = self.placed;
        let mut deepest = 0;
        for (client, blocks) in placed {
            for (i, block) in blocks.iter().enumerate() {
                if !block.is_type {
                    continue;
                }
                let depth = self.container_depth((*client, i))? + 1;
                if depth > nesting_max {
                    return Err(ShapeError::TooDeep {
                        client: client.get(),
                        clock: block.start,
                        max: nesting_max,
                    });
                }
                deepest = deepest.max(depth);
            }
        }
        Ok(deepest)
    }

    fn container_depth(&mut self, start: (ClientID, usize)) -> Result<u32, ShapeError> {
        let mut stack = vec![start];
        while let Some(&at) = stack.last() {
            if let Some(Some(_)) = self.memo.get(&at) {
                stack.pop();
                continue;
            }
            self.memo.insert(at, None);
            match self.step(at) {
                Step::Known(depth) => {
                    self.memo.insert(at, Some(depth));
                    stack.pop();
                }
                Step::Via(next, add) => match self.memo.get(&next) {
                    Some(Some(depth)) => {
                        self.memo.insert(at, Some(depth.saturating_add(add)));
                        stack.pop();
                    }
                    Some(None) => {
                        let (client, i) = next;
                        return Err(ShapeError::Cycle {
                            client: client.get(),
                            clock: self.block((client, i)).start,
                        });
                    }
                    None => stack.push(next),
                },
            }
        }
        Ok(self.memo.get(&start).copied().flatten().unwrap_or(0))
    }
}

/// One block as far as its needs go.
struct BlockShape {
    /// Length in clocks.
    len: u32,
    /// A skip: a hole the update leaves open.
    skip: bool,
    /// What it points at: left origin, right origin, parent item.
    refs: [Option<ID>; 3],
    /// Where it sits (items only; skips and garbage-collected ranges sit nowhere).
    place: Option<Place>,
    /// Whether it is a shared type.
    is_type: bool,
}

/// Reads one block the way `yrs` does (`Update::decode_block`), without recursion.
fn read_block(
    decoder: &mut DecoderV1<'_>,
    id: ID,
    nesting_max: u32,
) -> Result<BlockShape, ShapeError> {
    let info = decoder.read_info().map_err(decode_error)?;
    let range = |len, skip| BlockShape {
        len,
        skip,
        refs: [None; 3],
        place: None,
        is_type: false,
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
            let place = match refs {
                [Some(origin), _, _] | [None, Some(origin), _] => Place::Beside(origin),
                _ => {
                    let place = if decoder.read_parent_info().map_err(decode_error)? {
                        decoder.read_string().map_err(decode_error)?;
                        Place::Root
                    } else {
                        let parent = decoder.read_left_id().map_err(decode_error)?;
                        refs[2] = Some(parent);
                        Place::In(parent)
                    };
                    if info & HAS_PARENT_SUB != 0 {
                        decoder.read_string().map_err(decode_error)?;
                    }
                    place
                }
            };
            for target in refs.iter().flatten() {
                if target.client == id.client && target.clock >= id.clock {
                    return Err(ShapeError::DependsOnItself {
                        client: id.client.get(),
                        clock: id.clock,
                    });
                }
            }
            let content = read_content(decoder, info, nesting_max).map_err(|e| e.at(id))?;
            Ok(BlockShape {
                len: content.len,
                skip: false,
                refs,
                place: Some(place),
                is_type: content.is_type,
            })
        }
    }
}

/// An item's content as far as its shape goes.
struct Content {
    len: u32,
    is_type: bool,
}

/// Why an item's content was refused, before the item's ID is attached.
enum ContentError {
    Decode(String),
    LegacyJson,
    Subdocument,
    UnsupportedType(u8),
    TooDeep(u32),
}

impl ContentError {
    fn at(self, id: ID) -> ShapeError {
        let (client, clock) = (id.client.get(), id.clock);
        match self {
            ContentError::Decode(e) => ShapeError::Decode(e),
            ContentError::LegacyJson => ShapeError::LegacyJson { client, clock },
            ContentError::Subdocument => ShapeError::Subdocument { client, clock },
            ContentError::UnsupportedType(kind) => ShapeError::UnsupportedType {
                client,
                clock,
                kind,
            },
            ContentError::TooDeep(max) => ShapeError::TooDeep { client, clock, max },
        }
    }
}

fn content_error(e: impl std::fmt::Display) -> ContentError {
    ContentError::Decode(e.to_string())
}

/// Reads an item's content the way `ItemContent::decode` does, measuring it without building
/// it: no copies, and nested values are skipped with an explicit stack under `nesting_max`.
fn read_content(
    decoder: &mut DecoderV1<'_>,
    info: u8,
    nesting_max: u32,
) -> Result<Content, ContentError> {
    let one = Content {
        len: 1,
        is_type: false,
    };
    match info & 0b1111 {
        BLOCK_ITEM_STRING_REF_NUMBER => {
            let text = decoder.read_string().map_err(content_error)?;
            let len = u32::try_from(text.encode_utf16().count())
                .map_err(|_| ContentError::Decode("string too long".into()))?;
            Ok(Content {
                len,
                is_type: false,
            })
        }
        BLOCK_ITEM_DELETED_REF_NUMBER => Ok(Content {
            len: decoder.read_len().map_err(content_error)?,
            is_type: false,
        }),
        BLOCK_ITEM_ANY_REF_NUMBER => {
            let len = decoder.read_len().map_err(content_error)?;
            for _ in 0..len {
                skip_any(decoder, nesting_max)?;
            }
            Ok(Content {
                len,
                is_type: false,
            })
        }
        BLOCK_ITEM_BINARY_REF_NUMBER => {
            decoder.read_buf().map_err(content_error)?;
            Ok(one)
        }
        BLOCK_ITEM_EMBED_REF_NUMBER => {
            check_json_depth(decoder.read_string().map_err(content_error)?, nesting_max)?;
            Ok(one)
        }
        BLOCK_ITEM_FORMAT_REF_NUMBER => {
            decoder.read_string().map_err(content_error)?;
            check_json_depth(decoder.read_string().map_err(content_error)?, nesting_max)?;
            Ok(one)
        }
        BLOCK_ITEM_TYPE_REF_NUMBER => {
            let kind = decoder.read_type_ref().map_err(content_error)?;
            match kind {
                TYPE_REFS_ARRAY
                | TYPE_REFS_MAP
                | TYPE_REFS_TEXT
                | TYPE_REFS_XML_FRAGMENT
                | TYPE_REFS_XML_TEXT => {}
                TYPE_REFS_XML_ELEMENT => {
                    decoder.read_string().map_err(content_error)?;
                }
                TYPE_REFS_DOC => return Err(ContentError::Subdocument),
                other => return Err(ContentError::UnsupportedType(other)),
            }
            Ok(Content {
                len: 1,
                is_type: true,
            })
        }
        BLOCK_ITEM_JSON_REF_NUMBER => Err(ContentError::LegacyJson),
        BLOCK_ITEM_DOC_REF_NUMBER => Err(ContentError::Subdocument),
        other => Err(ContentError::Decode(format!(
            "unknown content kind {other}"
        ))),
    }
}

/// Skips one lib0 `Any` value (the encoding `yrs`' `Any::decode` reads recursively) with an
/// explicit stack of open arrays and maps, refusing more than `nesting_max` open at once.
fn skip_any(decoder: &mut DecoderV1<'_>, nesting_max: u32) -> Result<(), ContentError> {
    // Per open container: the values still to read, and whether each comes after a key.
    let mut open: Vec<(u64, bool)> = Vec::new();
    loop {
        match decoder.read_u8().map_err(content_error)? {
            // undefined, null, false, true
            127 | 126 | 121 | 120 => {}
            125 => {
                decoder.read_var::<i64>().map_err(content_error)?;
            }
            124 => {
                decoder.read_f32().map_err(content_error)?;
            }
            123 => {
                decoder.read_f64().map_err(content_error)?;
            }
            122 => {
                decoder.read_i64().map_err(content_error)?;
            }
            119 => {
                decoder.read_string().map_err(content_error)?;
            }
            116 => {
                decoder.read_buf().map_err(content_error)?;
            }
            tag @ (118 | 117) => {
                if open.len() >= usize::try_from(nesting_max).unwrap_or(usize::MAX) {
                    return Err(ContentError::TooDeep(nesting_max));
                }
                let len: u64 = decoder.read_var().map_err(content_error)?;
                open.push((len, tag == 118));
            }
            other => return Err(ContentError::Decode(format!("unknown value tag {other}"))),
        }
        // Close what is complete; the next value of a map comes after its key.
        loop {
            match open.last_mut() {
                None => return Ok(()),
                Some((0, _)) => {
                    open.pop();
                }
                Some((remaining, keyed)) => {
                    *remaining -= 1;
                    if *keyed {
                        decoder.read_string().map_err(content_error)?;
                    }
                    break;
                }
            }
        }
    }
}

/// Refuses JSON (embeds and formatting attributes) nested deeper than `nesting_max`, counted
/// without parsing; `yrs` parses it afterwards, with `serde_json`'s own depth limit.
fn check_json_depth(json: &str, nesting_max: u32) -> Result<(), ContentError> {
    let (mut depth, mut in_string, mut escaped) = (0u32, false, false);
    for byte in json.bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > nesting_max {
                    return Err(ContentError::TooDeep(nesting_max));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn decode_error(e: impl std::fmt::Display) -> ShapeError {
    ShapeError::Decode(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::{Array, Doc, GetString, Map, ReadTxn, Text, Transact, Update, XmlFragment};

    /// What the older tests check: the state an update requires.
    fn required_state(update: &[u8]) -> Result<StateVector, ShapeError> {
        shape(update, 128).map(|s| s.requires)
    }

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

    /// An update putting, under key `k` of root map `m`, arrays nested `depth` deep around a
    /// null: written by hand, as an attacker would, because building it with `yrs` recurses.
    fn nested_value(depth: usize) -> Vec<u8> {
        use yrs::encoding::write::Write;
        let mut update = vec![1u8, 1, 1, 0, BLOCK_ITEM_ANY_REF_NUMBER | HAS_PARENT_SUB, 1];
        update.write_string("m");
        update.write_string("k");
        update.push(1); // one value
        for _ in 0..depth {
            update.extend_from_slice(&[117, 1]); // an array of one
        }
        update.push(126); // null
        update.push(0); // no deletes
        update
    }

    #[test]
    fn the_hand_written_nested_value_is_what_yrs_writes() {
        // Goal: pin `nested_value` to the real encoding, so the depth tests test real updates.
        let doc = Doc::with_client_id(1);
        let value = yrs::Any::Array(vec![yrs::Any::Array(vec![yrs::Any::Null].into())].into());
        doc.get_or_insert_map("m")
            .insert(&mut doc.transact_mut(), "k", value);
        assert_eq!(state(&doc), nested_value(2));
    }

    #[test]
    fn values_nested_past_the_bound_are_refused_without_recursion() {
        // Goal: the 20 KB update that overflowed the stack (an array nested 10,000 deep in a map
        // value; 30,000 deep is the 59 KiB frame of the report) is refused by a walk that does
        // not recurse, on a thread with a small stack; at the bound itself it is accepted and
        // yrs decodes it.
        let refused = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| [10_000, 30_000, 129].map(|depth| shape(&nested_value(depth), 128)))
            .expect("spawns")
            .join()
            .expect("no overflow");
        for result in refused {
            assert_eq!(
                result,
                Err(ShapeError::TooDeep {
                    client: 1,
                    clock: 0,
                    max: 128
                })
            );
        }
        let at_bound = nested_value(128);
        assert!(shape(&at_bound, 128).is_ok());
        assert!(Update::decode_v1(&at_bound).is_ok());
    }

    #[test]
    fn json_nested_past_the_bound_is_refused() {
        // Goal: embeds and formatting attributes carry JSON that yrs parses; its depth counts too.
        let doc = Doc::with_client_id(2);
        let text = doc.get_or_insert_text("t");
        let deep = |n: usize| yrs::Any::from_json(&format!("{}{}", "[".repeat(n), "]".repeat(n)));
        text.insert_embed(&mut doc.transact_mut(), 0, deep(5).expect("json"));
        assert_eq!(shape(&state(&doc), 5).map(|s| s.type_depth), Ok(0));
        assert_eq!(
            shape(&state(&doc), 4),
            Err(ShapeError::TooDeep {
                client: 2,
                clock: 0,
                max: 4
            })
        );
    }

    /// `levels` arrays, each inside the one before, in root array `a`, made by one transaction.
    fn nested_types(levels: usize) -> Vec<u8> {
        let doc = Doc::with_client_id(3);
        let mut array = doc.get_or_insert_array("a");
        let mut txn = doc.transact_mut();
        for _ in 0..levels {
            array = array.insert(&mut txn, 0, yrs::ArrayPrelim::default());
        }
        txn.encode_update_v1()
    }

    #[test]
    fn shared_types_nested_past_the_bound_are_refused() {
        // Goal: yrs deletes nested types recursively, so their nesting inside one update is
        // bounded too; the depth counts levels below the type the update writes into.
        assert_eq!(shape(&nested_types(3), 3).map(|s| s.type_depth), Ok(3));
        assert_eq!(
            shape(&nested_types(4), 3),
            Err(ShapeError::TooDeep {
                client: 3,
                clock: 3,
                max: 3
            })
        );
        let refused = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| shape(&nested_types(10_000), 128).is_err())
            .expect("spawns")
            .join()
            .expect("no overflow");
        assert!(refused);
    }

    #[test]
    fn types_beside_others_nest_in_the_same_container() {
        // Goal: a paragraph added after another one (placed by its neighbour, not its parent)
        // sits at the same depth, and text typed into an existing type adds no depth.
        let doc = Doc::with_client_id(4);
        let fragment = doc.get_or_insert_xml_fragment("default");
        let mut txn = doc.transact_mut();
        let first = fragment.push_back(&mut txn, yrs::XmlElementPrelim::empty("p"));
        fragment.push_back(&mut txn, yrs::XmlElementPrelim::empty("p"));
        let text = first.push_back(&mut txn, yrs::XmlTextPrelim::new(""));
        let update = txn.encode_update_v1();
        drop(txn);
        assert_eq!(shape(&update, 128).map(|s| s.type_depth), Ok(2));
        let before = doc.transact().state_vector();
        text.insert(&mut doc.transact_mut(), 0, "typed");
        let typing = doc.transact().encode_state_as_update_v1(&before);
        assert_eq!(shape(&typing, 128).map(|s| s.type_depth), Ok(0));
    }

    #[test]
    fn xml_hooks_are_refused() {
        // Goal: a hook is a type yrs reports no change events for, so the room could not measure
        // what nests inside it; editors do not use it.
        let mut hook = vec![1u8, 1, 6, 0, BLOCK_ITEM_TYPE_REF_NUMBER, 1];
        yrs::encoding::write::Write::write_string(&mut hook, "r");
        hook.extend_from_slice(&[5, 0]);
        assert_eq!(
            shape(&hook, 128),
            Err(ShapeError::UnsupportedType {
                client: 6,
                clock: 0,
                kind: 5
            })
        );
    }

    #[test]
    fn a_read_only_clients_sync_step_2_is_known() {
        // Goal: a client that holds everything the document holds answers our SyncStep1 with no
        // blocks but its whole delete set; that changes nothing and is not an edit. Anything new,
        // content or deletion, is.
        let doc = Doc::with_client_id(5);
        let text = doc.get_or_insert_text("t");
        text.insert(&mut doc.transact_mut(), 0, "hello world");
        text.remove_range(&mut doc.transact_mut(), 0, 6);
        let snapshot = doc.transact().snapshot();
        let sv = snapshot.state_map.clone();
        let step2 = doc.transact().encode_state_as_update_v1(&sv);
        let seen = shape(&step2, 128).expect("well-formed");
        assert!(!seen.deletes.is_empty() && seen.brings.is_empty());
        assert!(seen.is_known(&snapshot.state_map, &snapshot.delete_set));

        let reader = Doc::with_client_id(6);
        reader
            .transact_mut()
            .apply_update(Update::decode_v1(&state(&doc)).expect("decodes"))
            .expect("applies");
        let reader_text = reader.get_or_insert_text("t");
        let typed = {
            let mut txn = reader.transact_mut();
            reader_text.insert(&mut txn, 0, "!");
            txn.encode_update_v1()
        };
        let deleting = {
            let before = reader.transact().state_vector();
            reader_text.remove_range(&mut reader.transact_mut(), 0, 2);
            reader.transact().encode_state_as_update_v1(&before)
        };
        for edit in [typed, deleting] {
            let seen = shape(&edit, 128).expect("well-formed");
            assert!(!seen.is_empty());
            assert!(!seen.is_known(&snapshot.state_map, &snapshot.delete_set));
        }
        assert_eq!(
            shape(&[0, 0], 128).map(|s| s.is_empty()),
            Ok(true),
            "y-websocket's empty SyncStep2"
        );
    }

    #[test]
    fn blocks_pointing_at_each_other_are_refused() {
        // Goal: two clients' blocks whose origins point at each other can never integrate.
        // Client 1's item has origin 2#0 and client 2's item origin 1#0, both in root map... as
        // text items in root text "t" placed beside each other.
        let mut update = vec![2u8];
        for (client, other) in [(1u8, 2u8), (2, 1)] {
            // one block, client, clock 0, info: string with a left origin, origin other#0, "x"
            update.extend_from_slice(&[1, client, 0, BLOCK_ITEM_STRING_REF_NUMBER | HAS_ORIGIN]);
            update.extend_from_slice(&[other, 0, 1, b'x']);
        }
        update.push(0);
        // A type block in the update makes the walk resolve containers.
        let mut with_type = update.clone();
        with_type[0] = 3;
        with_type.pop();
        with_type.extend_from_slice(&[
            1,
            3,
            0,
            BLOCK_ITEM_TYPE_REF_NUMBER | HAS_ORIGIN,
            1,
            0,
            0,
            0,
        ]);
        assert!(matches!(
            shape(&with_type, 128),
            Err(ShapeError::Cycle { .. })
        ));
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
