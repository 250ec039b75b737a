//! The people-directory contract every store keeps (sled and memory in their unit tests, Redis
//! in `tests/redis.rs`).
#![allow(dead_code)] // a test file includes this without calling everything

use super::DocStore;

/// New and changed names report true, repeats false; listing is in `sub` order, paged.
pub fn check(store: &dyn DocStore) {
    assert!(store.remember("bob", "Bob").expect("remembers"));
    assert!(store.remember("ada", "Ada").expect("remembers"));
    assert!(
        !store.remember("ada", "Ada").expect("remembers"),
        "unchanged"
    );
    assert!(store.remember("ada", "Ada Lovelace").expect("remembers"));
    assert!(store.remember("auth0|42 {x}", "Zed").expect("remembers"));
    let all = store.people("", 10).expect("lists");
    let pairs: Vec<(&str, &str)> = all
        .iter()
        .map(|p| (p.sub.as_str(), p.name.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [
            ("ada", "Ada Lovelace"),
            ("auth0|42 {x}", "Zed"),
            ("bob", "Bob")
        ]
    );
    let page = store.people("ada", 1).expect("lists");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].sub, "auth0|42 {x}");
    assert!(store.people("bob", 10).expect("lists").is_empty());
}
