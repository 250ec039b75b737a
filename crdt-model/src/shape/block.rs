//! One block of an update and its content, read the way `yrs` reads them but without recursion.

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
use yrs::updates::decoder::{Decoder, DecoderV1};
use yrs::ID;

use super::{decode_error, Place, ShapeError};

/// One block as far as its needs go.
pub(super) struct BlockShape {
    /// Length in clocks.
    pub(super) len: u32,
    /// A skip: a hole the update leaves open.
    pub(super) skip: bool,
    /// What it points at: left origin, right origin, parent item.
    pub(super) refs: [Option<ID>; 3],
    /// Where it sits (items only; skips and garbage-collected ranges sit nowhere).
    pub(super) place: Option<Place>,
    /// Whether it is a shared type.
    pub(super) is_type: bool,
}

/// Reads one block the way `yrs` does (`Update::decode_block`), without recursion.
pub(super) fn read_block(
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
