//! The authorship contract every `DocStore` keeps, checked against each of them (the sled and
//! memory stores in their unit tests, Redis in `tests/redis.rs`).
#![allow(dead_code)] // a test file includes this without calling everything

use super::{Authorship, DocStore};

/// Creator = the first append's author, whoever appends later; bindings: the first author of a
/// `(client, start)` wins; a delete forgets both, so a re-created document has a new creator.
pub fn check(store: &dyn DocStore, doc: &str) {
    assert_eq!(store.authorship(doc).expect("reads"), Authorship::default());
    store.append(doc, "ada", 1, &[0, 0]).expect("appends");
    store.append(doc, "bob", 2, &[0, 0]).expect("appends");
    assert_eq!(store.bind(doc, 7, 0, "ada").expect("binds"), "ada");
    assert_eq!(
        store.bind(doc, 7, 0, "eve").expect("binds"),
        "ada",
        "first wins"
    );
    assert_eq!(store.bind(doc, 7, 40, "bob").expect("binds"), "bob");
    assert_eq!(
        store
            .bind(doc, u64::MAX >> 11, u32::MAX, "cy")
            .expect("binds"),
        "cy"
    );
    store.flush().expect("flushes");
    let mut record = store.authorship(doc).expect("reads");
    record.bindings.sort_by_key(|b| (b.client, b.start));
    assert_eq!(record.creator.as_deref(), Some("ada"));
    let bindings: Vec<(u64, u32, &str)> = record
        .bindings
        .iter()
        .map(|b| (b.client, b.start, b.author.as_str()))
        .collect();
    assert_eq!(
        bindings,
        vec![
            (7, 0, "ada"),
            (7, 40, "bob"),
            (u64::MAX >> 11, u32::MAX, "cy")
        ]
    );
    let other = format!("{doc}x");
    assert_eq!(
        store.authorship(&other).expect("reads"),
        Authorship::default(),
        "documents are separate"
    );

    assert!(store.delete(doc).expect("deletes"));
    assert_eq!(store.authorship(doc).expect("reads"), Authorship::default());
    store.append(doc, "bob", 3, &[0, 0]).expect("appends");
    assert_eq!(
        store.authorship(doc).expect("reads").creator.as_deref(),
        Some("bob")
    );
}
