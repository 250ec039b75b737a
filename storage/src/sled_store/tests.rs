//! The sled store's contract: round trips, listings, compaction racing appends, history,
//! deletes, corruption, faults.

use super::*;
use crate::inbox::{Inbox, InboxQuery, InboxRange, MarkRead, NewNotification};
use crate::{fault, memory};
use yrs::updates::decoder::Decode;
use yrs::{Array, Doc, GetString, ReadTxn, StateVector, Text, Transact, Update};

fn store_with(config: StoreConfig) -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(&dir.path().join("db"), config).expect("opens");
    (dir, store)
}

fn store() -> (tempfile::TempDir, SledStore) {
    store_with(StoreConfig::default())
}

/// An update inserting `s` at the start of text `t`, from its own client.
fn insert(client: u64, s: &str) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    doc.get_or_insert_text("t")
        .insert(&mut doc.transact_mut(), 0, s);
    let u = doc
        .transact()
        .encode_state_as_update_v1(&StateVector::default());
    u
}

fn text_of(updates: impl Iterator<Item = Vec<u8>>) -> String {
    let doc = Doc::new();
    for u in updates {
        doc.transact_mut()
            .apply_update(Update::decode_v1(&u).expect("decodes"))
            .expect("applies");
    }
    let t = doc.get_or_insert_text("t");
    let s = t.get_string(&doc.transact());
    s
}

fn loaded_text(store: &SledStore, doc: &str) -> String {
    let stored = store.load(doc).expect("loads").unwrap_or_default();
    text_of(stored.updates().map(<[u8]>::to_vec))
}

// Appends come back in order with their author and time; unknown documents are None.
#[test]
fn append_load_round_trip() {
    let (_dir, s) = store();
    assert!(s.load("nope").expect("loads").is_none());
    let a = s.append("d", "ada", 10, &insert(1, "a")).expect("appends");
    let b = s.append("d", "bob", 20, &insert(2, "b")).expect("appends");
    assert!(b > a);
    let stored = s.load("d").expect("loads").expect("exists");
    assert_eq!(stored.tail.len(), 2);
    assert_eq!(
        (stored.tail[0].author.as_str(), stored.tail[0].time_ms),
        ("ada", 10)
    );
    assert_eq!(
        (stored.tail[1].author.as_str(), stored.tail[1].seq),
        ("bob", b)
    );
    assert_eq!(loaded_text(&s, "d").len(), 2);
}

// A listing page is the names under a prefix after a cursor, in order; the sled range scan
// and the trait's default (used by the other stores) agree.
#[test]
fn list_page_by_prefix_and_cursor() {
    let (_dir, s) = store();
    let mem = memory::MemStore::new(StoreConfig::default());
    for name in [
        "issues/1",
        "notes/b",
        "notes/a",
        "notes/c",
        "notesx",
        "private/ada/notes/z",
    ] {
        s.append(name, "ada", 1, &insert(1, "x")).expect("appends");
        mem.append(name, "ada", 1, &insert(1, "x"))
            .expect("appends");
    }
    let names = |page: Vec<DocInfo>| page.into_iter().map(|d| d.name).collect::<Vec<_>>();
    for store in [&s as &dyn DocStore, &mem] {
        assert_eq!(
            names(store.list_page("notes/", "", 2).expect("lists")),
            ["notes/a", "notes/b"]
        );
        assert_eq!(
            names(store.list_page("notes/", "notes/b", 10).expect("lists")),
            ["notes/c"]
        );
        assert_eq!(
            names(store.list_page("notes/", "a", 1).expect("lists")),
            ["notes/a"]
        );
        assert!(store
            .list_page("notes/", "notes/c", 10)
            .expect("lists")
            .is_empty());
        assert!(store
            .list_page("nothing/", "", 10)
            .expect("lists")
            .is_empty());
    }
}

// Compaction merges into a snapshot that loads to the same content, and counters reset.
#[test]
fn compaction_preserves_content() {
    let (_dir, s) = store_with(StoreConfig {
        compact_after_updates: 3,
        compact_after_bytes: u64::MAX,
        history_keep_updates: 0,
        ..StoreConfig::default()
    });
    for i in 0..5u64 {
        s.append("d", "a", i, &insert(i + 1, &format!("{i}")))
            .expect("appends");
    }
    let before = loaded_text(&s, "d");
    assert!(s.needs_compaction("d").expect("counts"));
    let report = s.compact("d").expect("compacts");
    assert_eq!(report.merged_updates, 5);
    assert_eq!(report.removed_log_entries, 5);
    assert!(!s.needs_compaction("d").expect("counts"));
    let stored = s.load("d").expect("loads").expect("exists");
    assert!(stored.snapshot.is_some() && stored.tail.is_empty());
    assert_eq!(loaded_text(&s, "d"), before);
    s.append("d", "a", 9, &insert(9, "z")).expect("appends");
    assert_eq!(s.load("d").expect("loads").expect("exists").tail.len(), 1);
}

// One thread appends distinct inserts while another compacts over and over: nothing is lost.
#[test]
fn compaction_racing_appends_loses_nothing() {
    let (_dir, s) = store_with(StoreConfig {
        compact_after_updates: 1,
        compact_after_bytes: 1,
        history_keep_updates: 10,
        ..StoreConfig::default()
    });
    let s = std::sync::Arc::new(s);
    let n = 400u64;
    let writer = {
        let s = std::sync::Arc::clone(&s);
        std::thread::spawn(move || {
            for i in 0..n {
                let doc = Doc::with_client_id(1000 + i);
                doc.get_or_insert_array("a")
                    .push_back(&mut doc.transact_mut(), i64::try_from(i).unwrap_or(0));
                let u = doc
                    .transact()
                    .encode_state_as_update_v1(&StateVector::default());
                s.append("d", "w", i, &u).expect("appends");
            }
        })
    };
    let mut compactions = 0;
    while !writer.is_finished() {
        s.compact("d").expect("compacts");
        compactions += 1;
    }
    writer.join().expect("writer");
    s.compact("d").expect("compacts");
    let stored = s.load("d").expect("loads").expect("exists");
    let doc = Doc::new();
    for u in stored.updates() {
        doc.transact_mut()
            .apply_update(Update::decode_v1(u).expect("decodes"))
            .expect("applies");
    }
    let arr = doc.get_or_insert_array("a");
    assert_eq!(
        u64::from(arr.len(&doc.transact())),
        n,
        "after {compactions} compactions"
    );
}

// History lists every update with author and time, paginated by seq.
#[test]
fn history_pagination() {
    let (_dir, s) = store();
    let seqs: Vec<u64> = (0..7u64)
        .map(|i| {
            s.append("d", &format!("u{i}"), i, &insert(i + 1, "x"))
                .expect("appends")
        })
        .collect();
    let page1 = s.history("d", 0, 3).expect("lists");
    assert_eq!(page1.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[..3]);
    let page2 = s.history("d", page1[2].seq, 3).expect("lists");
    assert_eq!(page2.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs[3..6]);
    assert_eq!(page2[0].author, "u3");
    assert_eq!(s.history("d", seqs[6], 3).expect("lists").len(), 0);
}

// A past state is exact before and after compaction while its history is kept, and None
// once it was folded into the base.
#[test]
fn state_at_across_compaction() {
    let (_dir, s) = store_with(StoreConfig {
        compact_after_updates: 1,
        compact_after_bytes: 1,
        history_keep_updates: 3,
        ..StoreConfig::default()
    });
    let seqs: Vec<u64> = ["a", "b", "c", "d", "e"]
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let doc = Doc::with_client_id(7);
            // One client appending at the end: version k holds the first k+1 letters.
            let text = doc.get_or_insert_text("t");
            text.insert(&mut doc.transact_mut(), 0, &"abcde"[..i]);
            let sv = doc.transact().state_vector();
            text.insert(&mut doc.transact_mut(), u32::try_from(i).unwrap_or(0), t);
            let u = doc.transact().encode_state_as_update_v1(&sv);
            s.append("d", "a", 0, &u).expect("appends")
        })
        .collect();
    let at = |seq| {
        s.state_at("d", seq)
            .expect("reads")
            .map(|u| text_of(std::iter::once(u)))
    };
    assert_eq!(at(seqs[1]).as_deref(), Some("ab"));
    s.compact("d").expect("compacts");
    assert_eq!(at(seqs[4]).as_deref(), Some("abcde"));
    assert_eq!(at(seqs[2]).as_deref(), Some("abc"));
    assert_eq!(
        at(seqs[1]).as_deref(),
        Some("ab"),
        "the base covers exactly the dropped entries"
    );
    assert_eq!(at(seqs[0]), None, "folded into the base");
    assert_eq!(loaded_text(&s, "d"), "abcde");
}

// Deleting notes/1 leaves notes/10 alone.
#[test]
fn delete_is_isolated() {
    let (_dir, s) = store();
    s.append("notes/1", "a", 0, &insert(1, "one"))
        .expect("appends");
    s.append("notes/10", "a", 0, &insert(2, "ten"))
        .expect("appends");
    s.compact("notes/1").expect("compacts");
    assert!(s.delete("notes/1").expect("deletes"));
    assert!(!s.delete("notes/1").expect("deletes"));
    assert!(s.load("notes/1").expect("loads").is_none());
    assert_eq!(loaded_text(&s, "notes/10"), "ten");
    let names: Vec<_> = s
        .list()
        .expect("lists")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, vec!["notes/10".to_string()]);
}

// A flipped byte in a stored record is reported as corruption naming the document.
#[test]
fn corruption_is_loud() {
    let (_dir, s) = store();
    s.append("notes/7", "a", 0, &insert(1, "precious"))
        .expect("appends");
    let log = s.raw_db().open_tree("log").expect("tree");
    let (key, value) = log.iter().next().expect("entry").expect("reads");
    let mut bad = value.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x40;
    log.insert(key, bad).expect("writes");
    match s.load("notes/7") {
        Err(StoreError::Corrupt { doc, .. }) => assert_eq!(doc, "notes/7"),
        other => panic!("expected corruption, got {other:?}"),
    }
}

// Closing and reopening keeps everything that was flushed.
#[test]
fn reopen_preserves() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let s = SledStore::open(&dir.path().join("db"), StoreConfig::default()).expect("opens");
        s.append("d", "a", 0, &insert(1, "kept")).expect("appends");
        s.flush().expect("flushes");
        assert_eq!(s.flush_count(), 1);
    }
    let s = SledStore::open(&dir.path().join("db"), StoreConfig::default()).expect("reopens");
    assert_eq!(loaded_text(&s, "d"), "kept");
    assert_eq!(s.info("d").expect("info").expect("exists").log_len, 1);
}

// The fault wrapper fails exactly the k-th call and passes the others through.
#[test]
fn faulty_store_fails_the_kth_call() {
    let (_dir, s) = store();
    let f = fault::FaultyStore::new(s);
    f.fail_append_at(2);
    f.fail_flush_at(1);
    assert!(f.append("d", "a", 0, &insert(1, "a")).is_ok());
    assert!(matches!(
        f.append("d", "a", 0, &insert(2, "b")),
        Err(StoreError::Injected(_))
    ));
    assert!(f.append("d", "a", 0, &insert(3, "c")).is_ok());
    assert!(matches!(f.flush(), Err(StoreError::Injected(_))));
    assert!(f.flush().is_ok());
    assert_eq!(
        f.inner()
            .load("d")
            .expect("loads")
            .expect("exists")
            .tail
            .len(),
        2
    );
}

// A stored update that does not decode makes compaction fail with an error, not a panic.
#[test]
fn bad_update_fails_compaction_cleanly() {
    let (_dir, s) = store();
    s.append("d", "a", 0, &[0xff, 0xff, 0xff]).expect("appends");
    assert!(matches!(s.compact("d"), Err(StoreError::BadUpdate { .. })));
    assert!(s.load("d").expect("still loads").is_some());
}

#[path = "../../tests/contract/authorship.rs"]
mod authorship_contract;

#[test]
fn authorship_contract_sled_and_memory() {
    let (_dir, sled) = store();
    authorship_contract::check(&sled, "notes/authors");
    authorship_contract::check(
        &memory::MemStore::new(StoreConfig::default()),
        "notes/authors",
    );
}

#[test]
fn authorship_survives_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = SledStore::open(&dir.path().join("db"), StoreConfig::default()).expect("opens");
        store.append("d", "ada", 1, &[0, 0]).expect("appends");
        store.bind("d", 9, 0, "ada").expect("binds");
        store.flush().expect("flushes");
    }
    let store = SledStore::open(&dir.path().join("db"), StoreConfig::default()).expect("opens");
    let record = store.authorship("d").expect("reads");
    assert_eq!(record.creator.as_deref(), Some("ada"));
    assert_eq!(record.bindings.len(), 1);
    assert_eq!(store.bind("d", 9, 0, "eve").expect("binds"), "ada");
}

#[path = "../../tests/contract/inbox.rs"]
mod inbox_contract;

fn inbox_config() -> StoreConfig {
    StoreConfig {
        inbox_len_max: inbox_contract::LEN_MAX,
        ..StoreConfig::default()
    }
}

#[test]
fn inbox_contract_sled_and_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledStore::open(&dir.path().join("db"), inbox_config()).expect("opens");
    inbox_contract::check(&sled, "ada");
    inbox_contract::check(&sled, "auth0|42 ålice");
    inbox_contract::check(&memory::MemStore::new(inbox_config()), "ada");
}

#[test]
fn an_inbox_survives_reopening_and_its_ids_keep_growing() {
    use crate::inbox::{InboxQuery, InboxRange, NewNotification};
    let dir = tempfile::tempdir().expect("tempdir");
    let note = NewNotification {
        recipient: "bob".into(),
        kind: "mentioned".into(),
        doc: "notes/1".into(),
        item: Some("r1".into()),
        by: "ada".into(),
        at_ms: 5,
        title: "Plan".into(),
        status: None,
    };
    let all = InboxQuery {
        range: InboxRange::Older { before: None },
        unread_only: false,
        limit: 10,
    };
    let first = {
        let store = SledStore::open(&dir.path().join("db"), inbox_config()).expect("opens");
        let ids = store
            .deliver(std::slice::from_ref(&note))
            .expect("delivers");
        store.flush().expect("flushes");
        ids[0]
    };
    let store = SledStore::open(&dir.path().join("db"), inbox_config()).expect("reopens");
    let page = store.inbox("bob", &all).expect("reads");
    assert_eq!(page.unread, 1);
    assert_eq!(page.notifications[0].item.as_deref(), Some("r1"));
    let second = store.deliver(&[note]).expect("delivers")[0];
    assert!(second > first, "{second} > {first}");
}

#[path = "../../tests/contract/outbox.rs"]
mod outbox_contract;

use crate::{NewHookEvent, Outbox, OutboxCounts};

fn outbox_config() -> StoreConfig {
    StoreConfig {
        outbox_len_max: outbox_contract::LEN_MAX,
        ..StoreConfig::default()
    }
}

#[test]
fn outbox_contract_sled_and_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = SledStore::open(&dir.path().join("db"), outbox_config()).expect("opens");
    outbox_contract::check(&sled, "a1b2c3");
    outbox_contract::check(&memory::MemStore::new(outbox_config()), "a1b2c3");
}

/// Queued events are durable after a flush, counted right after reopening (the lengths are
/// counted again), and ids after a restart sort after the ones before it.
#[test]
fn an_outbox_survives_reopening_and_its_ids_keep_growing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let event = NewHookEvent {
        endpoint: "e1".into(),
        event: "note.created".into(),
        time_ms: 5,
        body: b"{}".to_vec(),
    };
    let first = {
        let store = SledStore::open(&dir.path().join("db"), outbox_config()).expect("opens");
        store
            .enqueue(&[event.clone(), event.clone()])
            .expect("enqueues");
        store.flush().expect("flushes");
        store.pending("e1", 10).expect("reads")[1].id
    };
    let store = SledStore::open(&dir.path().join("db"), outbox_config()).expect("reopens");
    assert_eq!(
        store.outbox_counts("e1").expect("counts"),
        OutboxCounts {
            pending: 2,
            dead: 0
        }
    );
    store.enqueue(&[event]).expect("enqueues");
    let pending = store.pending("e1", 10).expect("reads");
    assert_eq!(pending.len(), 3);
    assert!(pending[2].id > first, "{} > {first}", pending[2].id);
}

#[path = "../../tests/contract/directory.rs"]
mod directory_contract;

#[test]
fn directory_contract_sled_and_memory() {
    let (_dir, sled) = store();
    directory_contract::check(&sled);
    directory_contract::check(&memory::MemStore::new(StoreConfig::default()));
}

// A second opener of a store that is open is told it is held by another, not given sled's lock
// error; once the first lets go, it opens.
#[test]
fn a_second_opener_is_told_the_store_is_held() {
    let (dir, first) = store();
    let path = dir.path().join("db");
    match SledStore::open(&path, StoreConfig::default()) {
        Err(StoreError::Locked(held)) => assert_eq!(held, path),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("opened a held store"),
    }
    drop(first);
    SledStore::open(&path, StoreConfig::default()).expect("opens once released");
}
