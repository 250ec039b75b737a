//! The store's append and load paths. `cargo bench -p tandem-storage`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use tandem_storage::{DocStore, Inbox, NewNotification, SledStore, StoreConfig};
use yrs::{Doc, Text, Transact};

fn keystrokes(n: u32) -> Vec<Vec<u8>> {
    let doc = Doc::with_client_id(3);
    let text = doc.get_or_insert_text("t");
    (0..n)
        .map(|i| {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, i, "x");
            txn.encode_update_v1()
        })
        .collect()
}

fn store(c: &mut Criterion) {
    let no_compaction = StoreConfig {
        compact_after_updates: u64::MAX,
        compact_after_bytes: u64::MAX,
        ..StoreConfig::default()
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let s = SledStore::open(dir.path(), no_compaction.clone()).expect("opens");
    let updates = keystrokes(10_000);
    let mut i = 0usize;
    c.bench_function("store/append", |b| {
        b.iter(|| {
            s.append("bench/append", "ada", 1, &updates[i % updates.len()])
                .expect("appends");
            i += 1;
        });
    });
    c.bench_function("store/append_flush_batch_32", |b| {
        b.iter(|| {
            for u in &updates[..32] {
                s.append("bench/flush", "ada", 1, u).expect("appends");
            }
            s.flush().expect("flushes");
        });
    });
    // What a notification adds to a durable batch: one update with and without one notification,
    // each batch flushed (the group commit's unit).
    c.bench_function("store/append_flush_1", |b| {
        b.iter(|| {
            s.append("bench/notify", "ada", 1, &updates[i % updates.len()])
                .expect("appends");
            i += 1;
            s.flush().expect("flushes");
        });
    });
    let notification = |n: usize| NewNotification {
        recipient: format!("person-{}", n % 50),
        kind: "assigned".into(),
        doc: "issues/bench".into(),
        item: None,
        by: "ada".into(),
        at_ms: 1_700_000_000_000,
        title: "Crash on save".into(),
        status: None,
    };
    c.bench_function("store/append_deliver_flush_1", |b| {
        b.iter(|| {
            s.append("bench/notify", "ada", 1, &updates[i % updates.len()])
                .expect("appends");
            s.deliver(&[notification(i)]).expect("delivers");
            i += 1;
            s.flush().expect("flushes");
        });
    });
    for u in &updates {
        s.append("bench/load", "ada", 1, u).expect("appends");
    }
    c.bench_function("store/load_10k_updates", |b| {
        b.iter(|| s.load("bench/load").expect("loads"));
    });
    s.compact("bench/load").expect("compacts");
    c.bench_function("store/load_compacted", |b| {
        b.iter_batched(
            || (),
            |()| s.load("bench/load").expect("loads"),
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, store);
criterion_main!(benches);
