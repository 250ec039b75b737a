//! The wire codec on the hot path: decoding a client's update frame (which validates the
//! update) and encoding the broadcast frame. `cargo bench -p tandem-crdt-model`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tandem_crdt_model::protocol;
use yrs::{Doc, Text, Transact};

/// A typical keystroke update, and a large paste.
fn updates() -> [(&'static str, Vec<u8>); 2] {
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
    [("keystroke", keystroke), ("paste_96k", paste)]
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (name, update) in updates() {
        let frame = protocol::encode_update(&update);
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(format!("decode_frame/{name}"), |b| {
            b.iter(|| protocol::decode_frame(&frame, 16 << 20).expect("decodes"));
        });
        group.bench_function(format!("encode_update/{name}"), |b| {
            b.iter(|| protocol::encode_update(&update));
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
