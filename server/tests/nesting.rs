//! Nesting is bounded before any recursive code sees it: values (arrays and maps inside each
//! other) and shared types (types inside types) deeper than `nesting_depth_max` are refused,
//! from a reader or a writer, over a socket or HTTP sync, and the server goes on serving. Before
//! this bound, one 20 KB frame with an array nested 10,000 deep from a read-only token aborted
//! the whole process with a stack overflow.

mod common;

use common::*;
use tandem::auth::Role;
use tandem_crdt_model::protocol;
use yrs::encoding::write::Write;
use yrs::updates::decoder::Decode;
use yrs::{Array, ArrayPrelim, Doc, StateVector, Transact, Update};

/// An update putting, under key `k` of root map `m`, arrays nested `depth` deep around a null,
/// written by hand as an attacker would (client 9, clock 0).
fn nested_value(client: u8, depth: usize) -> Vec<u8> {
    let mut update = vec![1u8, 1, client, 0, 0x08 | 0x20, 1];
    update.write_string("m");
    update.write_string("k");
    update.push(1);
    for _ in 0..depth {
        update.extend_from_slice(&[117, 1]);
    }
    update.extend_from_slice(&[126, 0]);
    update
}

fn frame(update: &[u8]) -> Vec<u8> {
    protocol::encode_update(update)
}

/// The body of an HTTP sync: an empty state vector, then the update.
fn sync_body(update: &[u8]) -> Vec<u8> {
    let mut body = protocol::encode_sync_step1(&StateVector::default());
    body.extend_from_slice(&protocol::encode_update(update));
    body
}

#[tokio::test]
async fn a_deeply_nested_value_is_refused_from_readers_and_writers() {
    // Goal: the reported crash. A read-only socket sends the 20 KB frame (10,000 deep), then the
    // 59 KiB one (30,000 deep); a writer sends it too; each is closed with 1007 and the room
    // still syncs for a well-behaved writer. The same bodies over HTTP sync get 400.
    let running = start(with_auth).await;
    let addr = running.addr();
    let reader = token("rita", &[("notes/*", Role::Read)], 600);
    let writer = token("will", &[("notes/*", Role::Write)], 600);
    for (who, depth) in [(&reader, 10_000), (&reader, 30_000), (&writer, 10_000)] {
        let mut ws = connect_ok(addr, &format!("notes/deep?token={who}")).await;
        send(&mut ws, frame(&nested_value(9, depth))).await;
        assert_eq!(close_code(&mut ws).await, 1007, "depth {depth}");
    }
    let mut honest = connect_ok(addr, &format!("notes/deep?token={writer}")).await;
    still_syncs(&mut honest, 5).await;

    for who in [&reader, &writer] {
        let (status, _, body) = http(
            addr,
            "POST",
            "/api/docs/notes/deep/sync",
            &[
                ("authorization", &format!("Bearer {who}")),
                ("content-type", "application/octet-stream"),
            ],
            &sync_body(&nested_value(9, 10_000)),
        )
        .await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    }
    still_syncs(&mut honest, 5).await;
}

#[tokio::test]
async fn values_nest_up_to_the_bound() {
    // Goal: the limit at its edge: a value exactly `nesting_depth_max` deep is stored and
    // echoed; one level deeper closes the sender with 1007.
    let running = start(|c| c.limits.nesting_depth_max = 40).await;
    let addr = running.addr();
    let mut ws = connect_ok(addr, "notes/edge").await;
    let at_bound = frame(&nested_value(3, 40));
    send(&mut ws, at_bound.clone()).await;
    assert_eq!(recv_with(&mut ws, &[0, 2]).await, at_bound);
    send(&mut ws, frame(&nested_value(4, 41))).await;
    assert_eq!(close_code(&mut ws).await, 1007);
}

/// A writer that nests arrays one level per update, as a client building depth slowly would.
struct Nester {
    doc: Doc,
    innermost: yrs::ArrayRef,
}

impl Nester {
    fn new(client: u64) -> Self {
        let doc = Doc::with_client_id(client);
        let innermost = doc.get_or_insert_array("a");
        Nester { doc, innermost }
    }

    /// One more level, as an update.
    fn deeper(&mut self) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        self.innermost = self.innermost.insert(&mut txn, 0, ArrayPrelim::default());
        txn.encode_update_v1()
    }

    /// `levels` more levels in one update.
    fn deeper_at_once(&mut self, levels: usize) -> Vec<u8> {
        let mut txn = self.doc.transact_mut();
        for _ in 0..levels {
            self.innermost = self.innermost.insert(&mut txn, 0, ArrayPrelim::default());
        }
        txn.encode_update_v1()
    }
}

#[tokio::test]
async fn shared_types_nest_up_to_the_bound_however_they_arrive() {
    // Goal: shared types built one level per update stop at the bound (the document's depth is
    // measured as updates apply, since each update alone is shallow); a chain sent at once is
    // refused by the walk; and a document at the bound can be deleted from its top, which makes
    // yrs recurse through every level on a room's worker thread.
    const MAX: u32 = 128;
    let running = start(|c| c.limits.nesting_depth_max = MAX).await;
    let addr = running.addr();
    let mut ws = connect_ok(addr, "notes/types").await;
    let mut nester = Nester::new(11);
    for _ in 0..MAX {
        let update = frame(&nester.deeper());
        send(&mut ws, update.clone()).await;
        assert_eq!(recv_with(&mut ws, &[0, 2]).await, update);
    }
    send(&mut ws, frame(&nester.deeper())).await;
    assert_eq!(close_code(&mut ws).await, 1007, "one level past the bound");

    let mut ws = connect_ok(addr, "notes/types").await;
    let mut chain = Nester::new(12);
    send(&mut ws, frame(&chain.deeper_at_once(129))).await;
    assert_eq!(
        close_code(&mut ws).await,
        1007,
        "a chain past the bound at once"
    );

    // The document holds 128 levels; deleting the outermost one reaches all of them.
    let mut ws = connect_ok(addr, "notes/types").await;
    let server = Doc::with_client_id(13);
    let (status, _, body) = http(
        addr,
        "POST",
        "/api/docs/notes/types/sync",
        &[("content-type", "application/octet-stream")],
        &protocol::encode_sync_step1(&StateVector::default()),
    )
    .await;
    assert_eq!(status, 200);
    let Some(protocol::Inbound::Update(state)) =
        protocol::decode_frame(&body, &protocol::Decoding::writer(1 << 24))
            .expect("valid answer")
            .into_iter()
            .next()
    else {
        panic!("no SyncStep2");
    };
    server
        .transact_mut()
        .apply_update(Update::decode_v1(&state.bytes).expect("decodes"))
        .expect("applies");
    let delete = {
        let root = server.get_or_insert_array("a");
        let mut txn = server.transact_mut();
        root.remove(&mut txn, 0);
        txn.encode_update_v1()
    };
    send(&mut ws, frame(&delete)).await;
    assert_eq!(recv_with(&mut ws, &[0, 2]).await, frame(&delete));
    still_syncs(&mut ws, 14).await;
}

#[tokio::test]
async fn the_deepest_recursion_an_update_can_cause_fits_a_worker() {
    // Goal: the worst case of recursion. A document at the bound (128 levels, one per update)
    // receives an update that builds the most one update may (128 more levels) under its
    // innermost type and deletes the outermost in the same breath. Nothing deep remains, so it is
    // accepted; applying it makes yrs recurse through 256 levels on a room's worker thread.
    const MAX: u32 = 128;
    let running = start(|c| c.limits.nesting_depth_max = MAX).await;
    let mut ws = connect_ok(running.addr(), "notes/worst").await;
    let mut nester = Nester::new(21);
    for _ in 0..MAX {
        let update = frame(&nester.deeper());
        send(&mut ws, update.clone()).await;
        assert_eq!(recv_with(&mut ws, &[0, 2]).await, update);
    }
    let root = nester.doc.get_or_insert_array("a");
    let worst = {
        let mut txn = nester.doc.transact_mut();
        for _ in 0..MAX {
            nester.innermost = nester.innermost.insert(&mut txn, 0, ArrayPrelim::default());
        }
        root.remove(&mut txn, 0);
        txn.encode_update_v1()
    };
    let worst = frame(&worst);
    send(&mut ws, worst.clone()).await;
    assert_eq!(recv_with(&mut ws, &[0, 2]).await, worst);
    still_syncs(&mut ws, 22).await;
}
