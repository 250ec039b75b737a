//! The wire codec on the hot path: decoding a client's update frame (which validates the
//! update and walks its shape) and encoding the broadcast frame; the shape walk alone, to show its
//! share. `cargo bench -p tandem-crdt-model --bench codec`.
//!
//! With `../shared/data/b4-update.bin` present (the automerge-paper history as one 400 KB
//! update, what a client's first SyncStep2 of a long document looks like), it is measured too.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tandem_crdt_model::{protocol, shape};
use yrs::{Doc, Text, Transact};

/// A typical keystroke update, a large paste, and the whole-history update if present.
fn updates() -> Vec<(&'static str, Vec<u8>)> {
    let doc = Doc::with_client_id(7);
    let text = doc.get_or_insert_text("t");
    let keystroke = {
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 0, "a");
        txn.encode_update_v1()
    };
    let paste = {
        let mut txn = doc.transact_mut();
        text.insert(&mut txn, 1, &"lorem ipsum ".repeat(8_000));
        txn.encode_update_v1()
    };
    let mut updates = vec![("keystroke", keystroke), ("paste_96k", paste)];
    let b4 = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/b4-update.bin"
    );
    if let Ok(history) = std::fs::read(b4) {
        updates.push(("b4_history_400k", history));
    }
    updates
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (name, update) in updates() {
        let frame = protocol::encode_update(&update);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(format!("decode_frame/{name}"), |b| {
            b.iter(|| {
                protocol::decode_frame(&frame, &protocol::Decoding::writer(16 << 20))
                    .expect("decodes")
            });
        });
        group.bench_function(format!("shape/{name}"), |b| {
            b.iter(|| shape::shape(&update, shape::NESTING_MAX_DEFAULT).expect("well-formed"));
        });
        group.bench_function(format!("encode_update/{name}"), |b| {
            b.iter(|| protocol::encode_update(&update));
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
