use super::*;
use yrs::block::{
    BLOCK_ITEM_ANY_REF_NUMBER, BLOCK_ITEM_STRING_REF_NUMBER, BLOCK_ITEM_TYPE_REF_NUMBER,
    HAS_ORIGIN, HAS_PARENT_SUB,
};
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
    let crasher = include_bytes!("../../../fuzz/corpus/apply_update/regression-self-parent");
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
    let crasher = include_bytes!("../../../fuzz/corpus/apply_update/regression-legacy-json");
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
    let crasher = include_bytes!("../../../fuzz/corpus/apply_update/regression-subdocument-leak");
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
    with_type.extend_from_slice(&[1, 3, 0, BLOCK_ITEM_TYPE_REF_NUMBER | HAS_ORIGIN, 1, 0, 0, 0]);
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

/// The one-walk coverage check agrees with yrs' own `subset_of` (quadratic, but long trusted)
/// on sets of every shape: gaps, touching and overlapping ranges, ranges given out of order.
#[test]
fn covered_agrees_with_subset_of() {
    let mut seed = 0x2545_f491_u64;
    let mut next = move |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        u32::try_from(seed % u64::from(n)).unwrap_or(0)
    };
    let client = ClientID::new(7);
    let (mut agreed, mut covered_count) = (0, 0);
    for _ in 0..2_000 {
        let mut known = IdSet::new();
        for _ in 0..next(8) {
            known.insert(ID::new(client, next(60)), 1 + next(10));
        }
        let mut mine = IdSet::new();
        for _ in 0..next(4) {
            mine.insert(ID::new(client, next(60)), 1 + next(6));
        }
        let (Some(m), Some(k)) = (mine.get(&client), known.get(&client)) else {
            continue;
        };
        let expected = m.subset_of(k);
        let got = covered(m.iter().map(|(r, ())| r), k.iter().as_slice());
        assert_eq!(got, expected, "mine {mine:?} known {known:?}");
        agreed += 1;
        covered_count += usize::from(got);
    }
    // Both outcomes were exercised, many times.
    assert!(agreed > 1_000 && covered_count > 50 && agreed - covered_count > 50);
}

/// Ranges off the wire may overlap (yjs sends its delete sets merged, a hostile or buggy
/// client need not): a range inside one already covered is covered, even when the known ranges
/// that cover it were passed while covering the first.
#[test]
fn covered_with_overlapping_wanted_ranges() {
    let check = |mine: &[Range<u32>], known: &[Range<u32>]| {
        let known: Vec<(Range<u32>, ())> = known.iter().map(|r| (r.clone(), ())).collect();
        covered(mine.iter(), &known)
    };
    assert!(check(&[0..10, 2..5], &[0..5, 5..10]));
    assert!(check(&[2..5, 0..10], &[0..5, 5..10]), "given out of order");
    assert!(check(&[0..10, 3..12], &[0..6, 6..12]));
    assert!(!check(&[0..10, 3..13], &[0..6, 6..12]), "13 is not known");
    assert!(!check(&[0..10, 2..5], &[0..4, 5..10]), "4 is not known");
}
