//! The people directory: the display name each `sub` last signed in with, so an author shows as
//! "Ada Lovelace" (not `ada-lovelace`) in every client, even when Ada is not online. Learnt from
//! verified tokens only; a name written into a document never reaches it.

use std::collections::BTreeMap;

use crate::StoreError;

/// One person as the directory knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub sub: String,
    pub name: String,
}

pub trait Directory: Send + Sync {
    /// Records `name` for `sub`; true if it was new or changed (the caller then tells others).
    fn remember(&self, sub: &str, name: &str) -> Result<bool, StoreError>;
    /// Everyone, in `sub` order, after `after`, at most `limit`.
    fn people(&self, after: &str, limit: usize) -> Result<Vec<Person>, StoreError>;
}

/// The directory in memory (the memory store's).
#[derive(Default)]
pub(crate) struct People(BTreeMap<String, String>);

impl People {
    pub(crate) fn remember(&mut self, sub: &str, name: &str) -> bool {
        if self.0.get(sub).is_some_and(|n| n == name) {
            return false;
        }
        self.0.insert(sub.to_string(), name.to_string());
        true
    }

    pub(crate) fn people(&self, after: &str, limit: usize) -> Vec<Person> {
        use std::ops::Bound::{Excluded, Unbounded};
        self.0
            .range::<str, _>((Excluded(after), Unbounded))
            .take(limit)
            .map(|(sub, name)| Person {
                sub: sub.clone(),
                name: name.clone(),
            })
            .collect()
    }
}
