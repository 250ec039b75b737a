//! The webhook outbox contract every store keeps (sled and memory in their unit tests, Redis in
//! `tests/redis.rs`). The store must be configured with `outbox_len_max` = [`LEN_MAX`].
#![allow(dead_code)] // a test file includes this without calling everything

use super::{DocStore, NewHookEvent, OutboxCounts};

pub const LEN_MAX: u64 = 3;

fn event(endpoint: &str, n: u64) -> NewHookEvent {
    NewHookEvent {
        endpoint: endpoint.into(),
        event: format!("note.n{n}"),
        time_ms: n,
        body: format!("{{\"n\":{n}}}").into_bytes(),
    }
}

fn times(store: &dyn DocStore, endpoint: &str, dead: bool) -> Vec<u64> {
    let events = match dead {
        false => store.pending(endpoint, 100),
        true => store.dead(endpoint, 100),
    };
    events.expect("reads").iter().map(|e| e.time_ms).collect()
}

fn counts(pending: u64, dead: u64) -> OutboxCounts {
    OutboxCounts { pending, dead }
}

/// Order, the bound at its edge (the oldest parked, the oldest dead dropped), parking,
/// removal, a re-queue that fills only the room left and puts events back in their place,
/// isolation between endpoints, the lease of a lone node.
pub fn check(store: &dyn DocStore, endpoint: &str) {
    let other = format!("{endpoint}-other");
    assert_eq!(store.outbox_counts(endpoint).expect("counts"), counts(0, 0));
    let enqueue = |events: &[NewHookEvent]| store.enqueue(events).expect("enqueues");
    let at_bound: Vec<NewHookEvent> = (1..=3).map(|n| event(endpoint, n)).collect();
    assert!(
        enqueue(&at_bound).is_empty(),
        "at the bound nothing is parked"
    );
    assert!(enqueue(&[event(&other, 100)]).is_empty());
    let pending = store.pending(endpoint, 100).expect("reads");
    assert_eq!(
        pending.iter().map(|e| e.time_ms).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(pending.windows(2).all(|w| w[0].id < w[1].id), "ids grow");
    assert_eq!(pending[0].event, "note.n1");
    assert_eq!(pending[0].body, b"{\"n\":1}");
    assert_eq!(pending[0].error, "");

    assert_eq!(
        enqueue(&[event(endpoint, 4)]),
        [endpoint.to_string()],
        "one past it"
    );
    assert_eq!(times(store, endpoint, false), [2, 3, 4]);
    let dead = store.dead(endpoint, 100).expect("reads");
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].time_ms, dead[0].id), (1, pending[0].id));
    assert!(dead[0].error.contains("outbox full"), "{}", dead[0].error);
    assert_eq!(
        times(store, &other, false),
        [100],
        "another endpoint is untouched"
    );
    assert_eq!(
        store.pending(endpoint, 2).expect("reads").len(),
        2,
        "the limit"
    );

    let ids: Vec<u64> = store
        .pending(endpoint, 100)
        .expect("reads")
        .iter()
        .map(|e| e.id)
        .collect();
    assert!(store.park(endpoint, ids[0], "HTTP 500").expect("parks"));
    assert!(!store
        .park(endpoint, ids[0], "again")
        .expect("a parked event stays as it was"));
    store.remove_delivered(endpoint, ids[1]).expect("removes");
    store
        .remove_delivered(endpoint, ids[1])
        .expect("a second removal is a no-op");
    assert_eq!(times(store, endpoint, false), [4]);
    assert_eq!(times(store, endpoint, true), [1, 2]);
    assert_eq!(
        store.dead(endpoint, 100).expect("reads")[1].error,
        "HTTP 500"
    );
    assert_eq!(store.outbox_counts(endpoint).expect("counts"), counts(1, 2));

    assert_eq!(store.requeue_dead(endpoint).expect("requeues"), 2);
    assert_eq!(
        times(store, endpoint, false),
        [1, 2, 4],
        "back in their places"
    );
    assert!(store
        .pending(endpoint, 100)
        .expect("reads")
        .iter()
        .all(|e| e.error.is_empty()));
    assert_eq!(
        store.requeue_dead(endpoint).expect("requeues"),
        0,
        "nothing dead"
    );

    // Four more: each parks the oldest waiting one; the dead keep the newest three.
    for n in 5..=8 {
        assert_eq!(enqueue(&[event(endpoint, n)]).len(), 1);
    }
    assert_eq!(times(store, endpoint, false), [6, 7, 8]);
    assert_eq!(times(store, endpoint, true), [2, 4, 5]);
    assert_eq!(store.outbox_counts(endpoint).expect("counts"), counts(3, 3));
    assert_eq!(
        store.requeue_dead(endpoint).expect("requeues"),
        0,
        "no room"
    );
    // The bound parked 2 while it was being sent, and then it was delivered: it leaves the dead
    // too, so no retry sends it again.
    let parked_in_flight = store.dead(endpoint, 1).expect("reads")[0].id;
    store
        .remove_delivered(endpoint, parked_in_flight)
        .expect("removes");
    assert_eq!(times(store, endpoint, true), [4, 5]);
    assert_eq!(store.outbox_counts(endpoint).expect("counts"), counts(3, 2));
    assert!(store.outbox_lease(endpoint, 1_000).expect("leases"));
    assert!(store.outbox_lease(endpoint, 1_000).expect("renews"));
}
