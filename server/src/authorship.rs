//! A room's copy of its document's authorship record (`tandem_storage::Authorship`): who created
//! the document, and which author each Yjs client ID belongs to.
//!
//! Yjs content carries no author, only the client ID it was written under, and a client ID is
//! just a number any writer can use. So the room binds every client ID to the first author that
//! writes under it (durably, first writer wins across nodes) and refuses content under an ID
//! bound to someone else; otherwise a writer could send content at another person's next clocks
//! and make that person's real edit look already known, so it vanished. With IDs bound, the
//! author of any item is the author of its ID: "author or admin" rules read this record, never a
//! field a client wrote into the document.
//!
//! The room's own edits (REST) share the room's client ID, so they bind a range per edit.

use std::collections::HashMap;
use std::sync::Arc;

use tandem_crdt_model::shape;
use tandem_storage::{Authorship, DocStore, StoreError, UpdateRecord};
use yrs::{ClientID, ID};

/// Who wrote a document, as far as the room knows.
#[derive(Debug, Default)]
pub struct Authors {
    creator: Option<Arc<str>>,
    /// Per client ID, the authors of its clocks from each start on, sorted by start.
    ranges: HashMap<u64, Vec<(u32, Arc<str>)>>,
}

/// Whether an author may write under the client IDs of an update.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    Granted,
    /// `client` belongs to someone else.
    Taken {
        client: u64,
    },
}

impl Authors {
    pub fn from_record(record: Authorship) -> Self {
        let mut authors = Authors {
            creator: record.creator.map(Arc::from),
            ranges: HashMap::new(),
        };
        for binding in record.bindings {
            authors.insert(binding.client, binding.start, Arc::from(binding.author));
        }
        authors
    }

    /// Binds the client IDs of stored updates that no binding covers yet, to the author of the
    /// first update written under each: the record of a document written before bindings
    /// existed, rebuilt from its log as it would have been kept at the time.
    pub fn derive_from_log(
        &mut self,
        store: &dyn DocStore,
        doc: &str,
        log: &[UpdateRecord],
    ) -> Result<(), StoreError> {
        for record in log {
            // Stored updates passed every check when they were written.
            let Ok(shape) = shape::shape(&record.update, u32::MAX) else {
                continue;
            };
            for client in shape.writers() {
                if !self.ranges.contains_key(&client.get()) {
                    let owner = store.bind(doc, client.get(), 0, &record.author)?;
                    self.insert(client.get(), 0, Arc::from(owner));
                }
            }
        }
        Ok(())
    }

    /// The author of the document's first update.
    pub fn creator(&self) -> Option<&str> {
        self.creator.as_deref()
    }

    /// The author of the content at `id`.
    pub fn author_of(&self, id: &ID) -> Option<&str> {
        let ranges = self.ranges.get(&id.client.get())?;
        let i = ranges.partition_point(|(start, _)| *start <= id.clock);
        ranges.get(i.checked_sub(1)?).map(|(_, author)| &**author)
    }

    /// Whether `author` may write under every client ID in `writers`; an ID nobody holds yet is
    /// bound to `author` first. `own` is the room's own client ID (its REST edits), which no
    /// client may use; `announced` tells which author announced presence under an ID, so an ID
    /// a person is already present with cannot be taken by someone writing under it first.
    pub fn claim(
        &mut self,
        store: &dyn DocStore,
        doc: &str,
        author: &Arc<str>,
        writers: impl IntoIterator<Item = ClientID>,
        own: ClientID,
        announced: impl Fn(ClientID) -> Option<Arc<str>>,
    ) -> Result<Claim, StoreError> {
        for client in writers {
            let taken = Claim::Taken {
                client: client.get(),
            };
            if client == own {
                return Ok(taken);
            }
            match self.ranges.get(&client.get()) {
                Some(ranges) => {
                    if ranges.iter().any(|(_, a)| a != author) {
                        return Ok(taken);
                    }
                }
                None => {
                    if announced(client).is_some_and(|a| a != *author) {
                        return Ok(taken);
                    }
                    let owner: Arc<str> = Arc::from(store.bind(doc, client.get(), 0, author)?);
                    let granted = owner == *author;
                    self.insert(client.get(), 0, owner);
                    if !granted {
                        return Ok(taken);
                    }
                }
            }
        }
        Ok(Claim::Granted)
    }

    /// The client IDs [`Authors::claim`] would bind to `author` in the store: the ones nobody
    /// holds yet, nobody else is present under, and that are not the room's own. The room binds
    /// them off its task first, so `claim` then decides from memory.
    pub fn to_bind(
        &self,
        author: &Arc<str>,
        writers: impl IntoIterator<Item = ClientID>,
        own: ClientID,
        announced: impl Fn(ClientID) -> Option<Arc<str>>,
    ) -> Vec<u64> {
        writers
            .into_iter()
            .filter(|client| *client != own && !self.ranges.contains_key(&client.get()))
            .filter(|client| announced(*client).is_none_or(|a| a == *author))
            .map(|client| client.get())
            .collect()
    }

    /// Where the room's own client ID must be bound to `author` after a REST edit that wrote
    /// from clock `start`: unless its last range already belongs to that author.
    pub fn own_edit_to_bind(&self, own: ClientID, start: u32, author: &Arc<str>) -> Option<u32> {
        let last = self.ranges.get(&own.get()).and_then(|r| r.last());
        last.is_none_or(|(_, a)| a != author).then_some(start)
    }

    /// Records a binding the store answered (`owner` holds `client` from `start`).
    pub fn bound(&mut self, client: u64, start: u32, owner: Arc<str>) {
        self.insert(client, start, owner);
    }

    /// Notes the creator once the room appended the document's first update.
    pub fn created_by(&mut self, author: &Arc<str>) {
        self.creator.get_or_insert_with(|| Arc::clone(author));
    }

    fn insert(&mut self, client: u64, start: u32, author: Arc<str>) {
        let ranges = self.ranges.entry(client).or_default();
        let i = ranges.partition_point(|(s, _)| *s < start);
        if ranges.get(i).is_some_and(|(s, _)| *s == start) {
            return;
        }
        ranges.insert(i, (start, author));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_storage::memory::MemStore;

    fn id(client: u64, clock: u32) -> ID {
        ID::new(ClientID::new(client), clock)
    }

    #[test]
    fn the_first_author_of_an_id_keeps_it() {
        // Goal: a client ID belongs to whoever wrote under it first; another author writing under
        // it is refused, the same author is not, and nobody may use the room's own ID.
        let store = MemStore::new(Default::default());
        let mut authors = Authors::default();
        let (ada, eve): (Arc<str>, Arc<str>) = (Arc::from("ada"), Arc::from("eve"));
        let own = ClientID::new(99);
        let none = |_| None;
        let claim = |authors: &mut Authors, who: &Arc<str>, client: u64| {
            authors
                .claim(&store, "d", who, [ClientID::new(client)], own, none)
                .expect("store works")
        };
        assert_eq!(claim(&mut authors, &ada, 7), Claim::Granted);
        assert_eq!(claim(&mut authors, &ada, 7), Claim::Granted);
        assert_eq!(claim(&mut authors, &eve, 7), Claim::Taken { client: 7 });
        assert_eq!(claim(&mut authors, &eve, 99), Claim::Taken { client: 99 });
        assert_eq!(authors.author_of(&id(7, 1234)), Some("ada"));

        // Another room (another node, a reload) that has not seen the binding yet learns it from
        // the store.
        let mut fresh = Authors::default();
        assert_eq!(claim(&mut fresh, &eve, 7), Claim::Taken { client: 7 });
        assert_eq!(fresh.author_of(&id(7, 0)), Some("ada"));
    }

    #[test]
    fn presence_holds_an_id_before_its_first_edit() {
        // Goal: a person present under an ID (announced, not written yet) keeps it: someone who
        // writes under it first is refused.
        let store = MemStore::new(Default::default());
        let mut authors = Authors::default();
        let eve: Arc<str> = Arc::from("eve");
        let announced = |client: ClientID| (client.get() == 5).then(|| Arc::from("ada"));
        let claim = authors
            .claim(
                &store,
                "d",
                &eve,
                [ClientID::new(5)],
                ClientID::new(1),
                announced,
            )
            .expect("store works");
        assert_eq!(claim, Claim::Taken { client: 5 });
        assert_eq!(authors.author_of(&id(5, 0)), None, "nothing was bound");
    }

    #[test]
    fn the_rooms_own_edits_are_attributed_by_range() {
        let store = MemStore::new(Default::default());
        let mut authors = Authors::default();
        let own = ClientID::new(42);
        let (ada, bob): (Arc<str>, Arc<str>) = (Arc::from("ada"), Arc::from("bob"));
        for (start, who) in [(0, &ada), (3, &ada), (5, &bob), (9, &ada)] {
            // What the room does after a REST edit (the bind itself off its task).
            if let Some(start) = authors.own_edit_to_bind(own, start, who) {
                let owner = store.bind("d", own.get(), start, who).expect("store works");
                authors.bound(own.get(), start, Arc::from(owner));
            }
        }
        let at = |clock| authors.author_of(&id(42, clock));
        assert_eq!(
            [at(0), at(4), at(5), at(8), at(9), at(100)],
            [
                Some("ada"),
                Some("ada"),
                Some("bob"),
                Some("bob"),
                Some("ada"),
                Some("ada")
            ]
        );
        let reloaded = Authors::from_record(store.authorship("d").expect("reads"));
        assert_eq!(reloaded.author_of(&id(42, 6)), Some("bob"));
        assert_eq!(reloaded.author_of(&id(41, 6)), None);
    }
}
