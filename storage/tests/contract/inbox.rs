//! The inbox contract every store keeps (sled and memory in their unit tests, Redis in
//! `tests/redis.rs`). The store must be configured with `inbox_len_max` = [`LEN_MAX`].
#![allow(dead_code)] // a test file includes this without calling everything

use super::{DocStore, InboxQuery, InboxRange, MarkRead, NewNotification};

pub const LEN_MAX: u64 = 5;

fn notification(recipient: &str, title: &str) -> NewNotification {
    NewNotification {
        recipient: recipient.into(),
        kind: "assigned".into(),
        doc: "issues/1".into(),
        item: None,
        by: "ada".into(),
        at_ms: 1_700_000_000_000,
        title: title.into(),
        status: None,
    }
}

fn titles(store: &dyn DocStore, who: &str, query: InboxQuery) -> Vec<String> {
    let page = store.inbox(who, &query).expect("reads");
    page.notifications.into_iter().map(|n| n.title).collect()
}

const ALL: InboxQuery = InboxQuery {
    range: InboxRange::Older { before: None },
    unread_only: false,
    limit: 100,
};

/// Ids grow within each inbox; pages are newest first; each person sees only their own; the bound drops the
/// oldest; read flags and counts; the stream range resumes oldest first; it all survives a flush.
pub fn check(store: &dyn DocStore, who: &str) {
    let other = format!("{who}-other");
    let (mut mine, mut others) = (Vec::new(), Vec::new());
    for i in 0..LEN_MAX + 2 {
        let batch = [
            notification(who, &format!("t{i}")),
            notification(&other, "x"),
        ];
        let ids = store.deliver(&batch).expect("delivers");
        mine.push(ids[0]);
        others.push(ids[1]);
    }
    store.flush().expect("flushes");
    for ids in [&mine, &others] {
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids grow: {ids:?}");
    }

    // The bound: the two oldest are gone, newest first.
    assert_eq!(titles(store, who, ALL), ["t6", "t5", "t4", "t3", "t2"]);
    let page = store.inbox(who, &ALL).expect("reads");
    assert_eq!(page.unread, LEN_MAX);
    let first = &page.notifications[0];
    assert_eq!(
        (
            first.kind.as_str(),
            first.doc.as_str(),
            first.by.as_str(),
            first.read
        ),
        ("assigned", "issues/1", "ada", false)
    );
    assert_eq!(first.at_ms, 1_700_000_000_000);

    // Paging: two at a time, below an id.
    let two = InboxQuery { limit: 2, ..ALL };
    assert_eq!(titles(store, who, two), ["t6", "t5"]);
    let below_t5 = page.notifications[1].id;
    let next = InboxQuery {
        range: InboxRange::Older {
            before: Some(below_t5),
        },
        ..two
    };
    assert_eq!(titles(store, who, next), ["t4", "t3"]);

    // Reading some: ids name notifications of the reader's own inbox (another's stay unread),
    // the count follows.
    let t6 = page.notifications[0].id;
    let others_id = store.inbox(&other, &ALL).expect("reads").notifications[0].id;
    let unread = store
        .mark_read(who, &MarkRead::Ids(vec![t6, others_id]))
        .expect("marks");
    assert_eq!(unread, LEN_MAX - 1);
    assert_eq!(store.inbox(&other, &ALL).expect("reads").unread, LEN_MAX);
    let unread_only = InboxQuery {
        unread_only: true,
        ..ALL
    };
    assert_eq!(titles(store, who, unread_only), ["t5", "t4", "t3", "t2"]);
    assert!(store.inbox(who, &ALL).expect("reads").notifications[0].read);

    // A stream resumes after an id, oldest first.
    let after_t4 = InboxQuery {
        range: InboxRange::Newer {
            after: page.notifications[2].id,
        },
        ..ALL
    };
    assert_eq!(titles(store, who, after_t4), ["t5", "t6"]);

    assert_eq!(store.mark_read(who, &MarkRead::All).expect("marks"), 0);
    assert!(titles(store, who, unread_only).is_empty());
    assert_eq!(store.inbox("nobody", &ALL).expect("reads").unread, 0);
}
