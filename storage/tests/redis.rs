//! `RedisStore` against real `redis-server`s (Debian's) on free loopback ports: every case runs
//! on one server and on a 3-shard Redis Cluster (`Deployment::ALL`).

use redis::Commands;
use std::time::Duration;
use tandem_storage::redis_store::RedisStore;
use tandem_storage::redis_testing::{Deployment, TestRedis};
use tandem_storage::{
    Authorship, DocStore, Inbox, InboxQuery, InboxRange, MarkRead, NewHookEvent, NewNotification,
    Outbox, OutboxCounts, StoreConfig, StoreError,
};

use yrs::updates::decoder::Decode;
use yrs::{Doc, GetString, Text, Transact, Update};

fn insert(client: u64, text: &str) -> Vec<u8> {
    let doc = Doc::with_client_id(client);
    let t = doc.get_or_insert_text("t");
    let mut txn = doc.transact_mut();
    t.insert(&mut txn, 0, text);
    txn.encode_update_v1()
}

fn creator(store: &RedisStore, name: &str) -> Option<String> {
    store.authorship(name).expect("reads").creator
}

fn text_of(store: &RedisStore, name: &str) -> String {
    let stored = store.load(name).expect("loads").expect("exists");
    let doc = Doc::new();
    for u in stored.updates() {
        doc.transact_mut()
            .apply_update(Update::decode_v1(u).expect("decodes"))
            .expect("applies");
    }
    let t = doc.get_or_insert_text("t");
    let s = t.get_string(&doc.transact());
    s
}

// Appends from two nodes share one seq order; compaction merges into a snapshot while appends
// made during it stay in the stream; history keeps authors; a fresh store reads it all back.
#[test]
fn append_compact_load_across_nodes() {
    for deployment in Deployment::ALL {
        append_compact_load_across_nodes_on(&deployment.start());
    }
}

fn append_compact_load_across_nodes_on(r: &TestRedis) {
    let config = StoreConfig {
        compact_after_updates: 3,
        history_keep_updates: 2,
        ..StoreConfig::default()
    };
    let a = RedisStore::open_target(r.target(), "node-a", config.clone()).expect("connects");
    let b = RedisStore::open_target(r.target(), "node-b", config).expect("connects");
    assert!(a.load("d").expect("loads").is_none());
    let s1 = a.append("d", "ada", 1, &insert(1, "a")).expect("appends");
    let s2 = b.append("d", "bob", 2, &insert(2, "b")).expect("appends");
    let s3 = a.append("d", "ada", 3, &insert(3, "c")).expect("appends");
    assert_eq!((s1, s2, s3), (1, 2, 3));
    assert!(b.needs_compaction("d").expect("counts"));
    let report = b.compact("d").expect("compacts");
    assert_eq!((report.merged_updates, report.snapshot_seq), (3, 3));
    b.append("d", "bob", 4, &insert(4, "d")).expect("appends");
    let loaded = a.load("d").expect("loads").expect("exists");
    assert_eq!(loaded.snapshot_seq, 3);
    assert_eq!(loaded.tail.len(), 1, "only what came after the snapshot");
    assert_eq!(text_of(&a, "d").len(), 4);
    let history = a.history("d", 0, 10).expect("history");
    let authors: Vec<&str> = history.iter().map(|h| h.author.as_str()).collect();
    assert_eq!(
        authors,
        ["bob", "ada", "bob"],
        "two kept before the snapshot, one after"
    );
    assert!(a.state_at("d", 4).expect("reads").is_some());
    assert!(
        a.state_at("d", 1).expect("reads").is_none(),
        "before the snapshot"
    );
    assert_eq!(a.list().expect("lists").len(), 1);
    assert!(a.delete("d").expect("deletes"));
    assert!(b.load("d").expect("loads").is_none());
}

// A stored record whose checksum does not match fails the load with the document named.
#[test]
fn corrupt_record_fails_loudly() {
    for deployment in Deployment::ALL {
        corrupt_record_fails_loudly_on(&deployment.start());
    }
}

fn corrupt_record_fails_loudly_on(r: &TestRedis) {
    let store =
        RedisStore::open_target(r.target(), "node-a", StoreConfig::default()).expect("connects");
    store
        .append("notes/x", "ada", 1, &insert(1, "hello"))
        .expect("appends");
    let mut conn = r.connect();
    let _: String = redis::cmd("XADD")
        .arg("tandem:{notes/x}:log")
        .arg("2-0")
        .arg("a")
        .arg("mallory")
        .arg("t")
        .arg(2)
        .arg("n")
        .arg("x")
        .arg("u")
        .arg(&insert(2, "evil")[..])
        .arg("c")
        .arg(12345)
        .query(&mut conn)
        .expect("writes");
    let _: () = conn.set("tandem:{notes/x}:seq", 2).expect("writes");
    match store.load("notes/x") {
        Err(StoreError::Corrupt { doc, detail }) => {
            assert_eq!(doc, "notes/x");
            assert!(detail.contains("checksum"), "{detail}");
        }
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[path = "contract/authorship.rs"]
mod authorship_contract;

#[test]
fn authorship_contract() {
    for deployment in Deployment::ALL {
        authorship_contract_on(&deployment.start());
    }
}

fn authorship_contract_on(r: &TestRedis) {
    let store =
        RedisStore::open_target(r.target(), "node-a", StoreConfig::default()).expect("opens");
    authorship_contract::check(&store, "notes/authors");
}

#[path = "contract/inbox.rs"]
mod inbox_contract;

#[test]
fn inbox_contract() {
    for deployment in Deployment::ALL {
        inbox_contract_on(&deployment.start());
    }
}

fn inbox_contract_on(r: &TestRedis) {
    let config = StoreConfig {
        inbox_len_max: inbox_contract::LEN_MAX,
        ..StoreConfig::default()
    };
    let store = RedisStore::open_target(r.target(), "node-a", config).expect("opens");
    inbox_contract::check(&store, "ada");
    inbox_contract::check(&store, "auth0|42 {ålice}");
}

#[path = "contract/directory.rs"]
mod directory_contract;

#[test]
fn directory_contract() {
    for deployment in Deployment::ALL {
        directory_contract_on(&deployment.start());
    }
}

fn directory_contract_on(r: &TestRedis) {
    let store =
        RedisStore::open_target(r.target(), "node-a", StoreConfig::default()).expect("opens");
    directory_contract::check(&store);
}

#[path = "contract/outbox.rs"]
mod outbox_contract;

/// The outbox contract, shared by two nodes: what one queues the other reads, and the delivery
/// lease is one node's at a time until it expires.
#[test]
fn outbox_contract_and_one_lease_across_nodes() {
    for deployment in Deployment::ALL {
        outbox_contract_and_one_lease_across_nodes_on(&deployment.start());
    }
}

fn outbox_contract_and_one_lease_across_nodes_on(r: &TestRedis) {
    let config = StoreConfig {
        outbox_len_max: outbox_contract::LEN_MAX,
        ..StoreConfig::default()
    };
    let a = RedisStore::open_target(r.target(), "node-a", config.clone()).expect("opens");
    let b = RedisStore::open_target(r.target(), "node-b", config).expect("opens");
    outbox_contract::check(&a, "e0f1a2");
    let queued = NewHookEvent {
        endpoint: "shared".into(),
        event: "note.created".into(),
        time_ms: 1,
        body: b"{}".to_vec(),
    };
    a.enqueue(&[queued]).expect("enqueues");
    assert_eq!(
        b.pending("shared", 10).expect("reads")[0].event,
        "note.created"
    );
    assert_eq!(
        b.outbox_counts("shared").expect("counts"),
        OutboxCounts {
            pending: 1,
            dead: 0
        }
    );
    assert!(a.outbox_lease("shared", 300).expect("leases"));
    assert!(!b.outbox_lease("shared", 300).expect("asks"), "a holds it");
    assert!(a.outbox_lease("shared", 300).expect("renews"));
    std::thread::sleep(Duration::from_millis(400));
    assert!(
        b.outbox_lease("shared", 300).expect("leases"),
        "expired: b takes it"
    );
    assert!(!a.outbox_lease("shared", 300).expect("asks"));
}

// Two nodes adding to one person's inbox and to one webhook endpoint at once: a reader never
// sees an id that a smaller one, landing later, would precede (a stream that has sent an id
// must never owe an older one), and ids keep growing past those of the store-wide counter
// earlier versions used.
#[test]
fn queue_ids_grow_in_the_order_entries_land() {
    for deployment in Deployment::ALL {
        queue_ids_grow_in_the_order_entries_land_on(&deployment.start());
    }
}

fn queue_ids_grow_in_the_order_entries_land_on(r: &TestRedis) {
    const EACH: usize = 150;
    let config = StoreConfig {
        inbox_len_max: 10_000,
        outbox_len_max: 10_000,
        ..StoreConfig::default()
    };
    let mut legacy = r.connect();
    let _: () = legacy.set("tandem:inbox:next", 1_000).expect("sets");
    let _: () = legacy.set("tandem:hook:next", 2_000).expect("sets");
    let nodes: Vec<RedisStore> = ["node-a", "node-b"]
        .iter()
        .map(|n| RedisStore::open_target(r.target(), n, config.clone()).expect("opens"))
        .collect();
    let reader = RedisStore::open_target(r.target(), "node-c", config).expect("opens");
    let notification = |i: usize| NewNotification {
        recipient: "ada".into(),
        kind: "mentioned".into(),
        doc: "notes/1".into(),
        item: None,
        by: format!("n{i}"),
        at_ms: 1,
        title: String::new(),
        status: None,
    };
    let event = |i: usize| NewHookEvent {
        endpoint: "e1".into(),
        event: format!("e{i}"),
        time_ms: 1,
        body: b"{}".to_vec(),
    };
    let all = InboxQuery {
        range: InboxRange::Newer { after: 0 },
        unread_only: false,
        limit: 100_000,
    };
    let done = std::sync::atomic::AtomicUsize::new(0);
    let (seen_inbox, seen_hooks) = std::thread::scope(|scope| {
        for node in &nodes {
            let done = &done;
            scope.spawn(move || {
                for i in 0..EACH {
                    node.deliver(&[notification(i)]).expect("delivers");
                    node.enqueue(&[event(i)]).expect("enqueues");
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        let (mut inbox_reads, mut hook_reads) = (Vec::new(), Vec::new());
        while done.load(std::sync::atomic::Ordering::SeqCst) < nodes.len() {
            let page = reader.inbox("ada", &all).expect("reads");
            inbox_reads.push(page.notifications.iter().map(|n| n.id).collect::<Vec<_>>());
            let pending = reader.pending("e1", 100_000).expect("reads");
            hook_reads.push(pending.iter().map(|e| e.id).collect::<Vec<_>>());
        }
        (inbox_reads, hook_reads)
    });
    let inbox: Vec<u64> = reader
        .inbox("ada", &all)
        .expect("reads")
        .notifications
        .iter()
        .map(|n| n.id)
        .collect();
    let hooks: Vec<u64> = reader
        .pending("e1", 100_000)
        .expect("reads")
        .iter()
        .map(|e| e.id)
        .collect();
    for (what, last, reads, floor) in [
        ("inbox", &inbox, &seen_inbox, 1_000),
        ("outbox", &hooks, &seen_hooks, 2_000),
    ] {
        assert_eq!(last.len(), 2 * EACH, "{what}: every entry");
        assert!(last.windows(2).all(|w| w[0] < w[1]), "{what}: ids grow");
        assert!(last[0] > floor, "{what}: above the old counter");
        for read in reads {
            assert_eq!(
                read[..],
                last[..read.len()],
                "{what}: a read is a prefix of the end"
            );
        }
    }
}

// One blocking read of the change stream names every append of every node, whatever shard
// each document lives on (many names spread over the slots), in append order per document; a
// reader starting at the head sees only what came after it, and each document's stream reads
// back from a seq.
#[test]
fn change_stream_spans_every_shard() {
    for deployment in Deployment::ALL {
        change_stream_spans_every_shard_on(&deployment.start());
    }
}

fn change_stream_spans_every_shard_on(r: &TestRedis) {
    let a = RedisStore::open_target(r.target(), "node-a", StoreConfig::default()).expect("opens");
    let b = RedisStore::open_target(r.target(), "node-b", StoreConfig::default()).expect("opens");
    a.append("before", "ada", 1, &insert(1, "x"))
        .expect("appends");
    let head = b.changes_head().expect("head");
    let docs: Vec<String> = (0..20).map(|i| format!("notes/{i}")).collect();
    for (i, doc) in docs.iter().enumerate() {
        let (store, client) = if i % 2 == 0 { (&a, 10) } else { (&b, 20) };
        store
            .append(doc, "ada", 1, &insert(client, "a"))
            .expect("appends");
        store
            .append(doc, "ada", 2, &insert(client + 1, "b"))
            .expect("appends");
    }
    let mut conn = b.connection().expect("connects");
    let (changes, next) =
        RedisStore::changes_after(&mut conn, &head, Duration::from_millis(100), 1000)
            .expect("reads");
    assert_eq!(
        changes.len(),
        40,
        "two per document, none from before the head"
    );
    for (i, doc) in docs.iter().enumerate() {
        let seqs: Vec<u64> = changes
            .iter()
            .filter(|c| &c.doc == doc)
            .map(|c| c.seq)
            .collect();
        assert_eq!(seqs, [1, 2], "{doc}");
        let node = if i % 2 == 0 { "node-a" } else { "node-b" };
        assert!(changes
            .iter()
            .filter(|c| &c.doc == doc)
            .all(|c| c.node == node));
    }
    let (none, same) = RedisStore::changes_after(&mut conn, &next, Duration::from_millis(50), 1000)
        .expect("reads");
    assert!(none.is_empty(), "nothing after the last read");
    assert_eq!(same, next);
    let tail = a.entries_after("notes/3", 1, 10).expect("reads");
    assert_eq!(tail.len(), 1);
    assert_eq!((tail[0].record.seq, tail[0].node.as_str()), (2, "node-b"));
}

// The two cluster-wide streams keep exactly their bound: the newest `changes_len_max` pointers
// and the newest `len_max` events, on both deployments.
#[test]
fn cluster_streams_keep_their_bounds() {
    for deployment in Deployment::ALL {
        cluster_streams_keep_their_bounds_on(&deployment.start());
    }
}

fn cluster_streams_keep_their_bounds_on(r: &TestRedis) {
    let config = StoreConfig {
        changes_len_max: 5,
        ..StoreConfig::default()
    };
    let store = RedisStore::open_target(r.target(), "node-a", config).expect("opens");
    for i in 0..8 {
        store
            .append("bounded", "ada", 1, &insert(1 + i, "x"))
            .expect("appends");
    }
    let mut conn = store.connection().expect("connects");
    let (changes, _) =
        RedisStore::changes_after(&mut conn, "0-0", Duration::from_millis(50), 100).expect("reads");
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert_eq!(seqs, [4, 5, 6, 7, 8], "the newest five pointers");
    for i in 0..4u8 {
        store.add_event(&[i], 3).expect("adds");
    }
    let events = store.newest_events(10).expect("reads");
    let payloads: Vec<Vec<u8>> = events.into_iter().map(|(_, p)| p).collect();
    assert_eq!(
        payloads,
        [vec![1], vec![2], vec![3]],
        "the newest three events"
    );
}

// What an append does after its entry is durable may fail on its own (on a Redis Cluster
// `tandem:docs` and `tandem:{changes}` live on other shards than the document): a lost pointer
// does not fail the append (a retry would only append the update again), and a registration
// that failed is made by the next append, so a new document is never left out of listings or
// without its creator. Each failure is made real by giving the key the wrong type.
#[test]
fn a_failure_after_the_entry_neither_fails_the_append_nor_skips_registration() {
    for deployment in Deployment::ALL {
        a_failure_after_the_entry_neither_fails_the_append_nor_skips_registration_on(
            &deployment.start(),
        );
    }
}

fn a_failure_after_the_entry_neither_fails_the_append_nor_skips_registration_on(r: &TestRedis) {
    let store =
        RedisStore::open_target(r.target(), "node-a", StoreConfig::default()).expect("opens");
    let mut conn = r.connect();
    let listed = |store: &RedisStore| -> Vec<String> {
        let mut names: Vec<String> = store
            .list()
            .expect("lists")
            .into_iter()
            .map(|d| d.name)
            .collect();
        names.sort();
        names
    };

    // The pointer cannot be written: the append stands, registered, with its creator.
    let _: () = conn
        .set("tandem:{changes}", "not a stream")
        .expect("writes");
    let seq = store
        .append("notes/p", "ada", 1, &insert(1, "a"))
        .expect("a lost pointer does not fail the append");
    assert_eq!(seq, 1);
    assert_eq!(listed(&store), ["notes/p"]);
    assert_eq!(
        store
            .authorship("notes/p")
            .expect("reads")
            .creator
            .as_deref(),
        Some("ada")
    );
    let _: () = conn.del("tandem:{changes}").expect("writes");

    // The registration cannot be made: that append fails, and the room's retry (seq 2)
    // registers the document and names its creator.
    let _: () = conn.set("tandem:docs", "not a set").expect("writes");
    assert!(store.append("notes/r", "bob", 1, &insert(2, "b")).is_err());
    let _: () = conn.del("tandem:docs").expect("writes");
    let seq = store
        .append("notes/r", "bob", 1, &insert(2, "b"))
        .expect("appends");
    assert_eq!(seq, 2, "the failed attempt's entry is durable");
    assert_eq!(
        listed(&store),
        ["notes/r"],
        "notes/p's entry was deleted with the set"
    );
    assert_eq!(creator(&store, "notes/r").as_deref(), Some("bob"));
    assert_eq!(
        text_of(&store, "notes/r"),
        "b",
        "appended twice, applied once"
    );
    // A later append leaves the registration alone.
    store
        .append("notes/r", "cy", 3, &insert(3, "c"))
        .expect("appends");
    assert_eq!(creator(&store, "notes/r").as_deref(), Some("bob"));
}
