//! Who is online: the authenticated identities behind each document's open sockets (one entry
//! per person and document, however many sockets or tabs they have), not awareness, which any
//! client fills with anything it likes. Joining and leaving are published on the change feed as
//! `presence.joined` / `presence.left`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tandem_crdt_model::typed::Change;

use crate::feed::Feed;

/// One person on one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Here {
    pub sub: String,
    /// The token's `name` claim, or the `sub`.
    pub name: String,
    /// Their open sockets on the document.
    pub connections: usize,
    /// When their first open socket joined (ms since the epoch).
    pub since: u64,
}

/// The people on one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct DocPresence {
    pub doc: String,
    pub connections: usize,
    pub users: Vec<Here>,
}

#[derive(Default)]
pub struct Online {
    docs: Mutex<HashMap<Arc<str>, HashMap<String, Here>>>,
}

/// A socket's place on a document; dropping it leaves.
pub struct OnlineSlot {
    online: Arc<Online>,
    feed: Arc<Feed>,
    doc: Arc<str>,
    sub: String,
}

impl Online {
    /// A socket of `sub` joined `doc`; its person joins (`presence.joined`) if it is their first.
    pub fn join(
        self: &Arc<Self>,
        feed: &Arc<Feed>,
        doc: &Arc<str>,
        sub: &str,
        name: Option<&str>,
        now_ms: u64,
    ) -> OnlineSlot {
        let first = {
            let mut docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
            let people = docs.entry(Arc::clone(doc)).or_default();
            let here = people.entry(sub.to_string()).or_insert_with(|| Here {
                sub: sub.to_string(),
                name: name.unwrap_or(sub).to_string(),
                connections: 0,
                since: now_ms,
            });
            here.connections += 1;
            here.connections == 1
        };
        if first {
            feed.publish(
                doc,
                vec![sub.to_string()],
                vec![Change::new("presence.joined")],
            );
        }
        OnlineSlot {
            online: Arc::clone(self),
            feed: Arc::clone(feed),
            doc: Arc::clone(doc),
            sub: sub.to_string(),
        }
    }

    /// The people on `doc` now (`None`: nobody).
    pub fn on(&self, doc: &str) -> Option<DocPresence> {
        let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        docs.get(doc).map(|people| presence(doc, people))
    }

    /// The people on every document `wanted` admits, in name order.
    pub fn on_all(&self, wanted: impl Fn(&str) -> bool) -> Vec<DocPresence> {
        let docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<DocPresence> = docs
            .iter()
            .filter(|(doc, _)| wanted(doc))
            .map(|(doc, people)| presence(doc, people))
            .collect();
        out.sort_by(|a, b| a.doc.cmp(&b.doc));
        out
    }

    /// Returns true when `sub`'s last socket on `doc` left.
    fn leave(&self, doc: &str, sub: &str) -> bool {
        let mut docs = self.docs.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(people) = docs.get_mut(doc) else {
            return false;
        };
        let Some(here) = people.get_mut(sub) else {
            return false;
        };
        here.connections -= 1;
        if here.connections > 0 {
            return false;
        }
        people.remove(sub);
        if people.is_empty() {
            docs.remove(doc);
        }
        true
    }
}

fn presence(doc: &str, people: &HashMap<String, Here>) -> DocPresence {
    let mut users: Vec<Here> = people.values().cloned().collect();
    users.sort_by(|a, b| a.sub.cmp(&b.sub));
    DocPresence {
        doc: doc.to_string(),
        connections: users.iter().map(|u| u.connections).sum(),
        users,
    }
}

impl Drop for OnlineSlot {
    fn drop(&mut self) {
        if self.online.leave(&self.doc, &self.sub) {
            let by = vec![std::mem::take(&mut self.sub)];
            self.feed
                .publish(&self.doc, by, vec![Change::new("presence.left")]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_person_joins_once_and_leaves_with_their_last_socket() {
        let online = Arc::new(Online::default());
        let feed = Arc::new(Feed::new(16));
        let (_, mut events) = feed.resume(None);
        let doc: Arc<str> = Arc::from("notes/1");
        let tab1 = online.join(&feed, &doc, "ada", Some("Ada"), 5);
        let tab2 = online.join(&feed, &doc, "ada", Some("Ada"), 9);
        let bob = online.join(&feed, &doc, "bob", None, 7);
        let now = online.on("notes/1").expect("someone is here");
        assert_eq!(now.connections, 3);
        let people: Vec<(&str, &str, usize, u64)> = now
            .users
            .iter()
            .map(|u| (u.sub.as_str(), u.name.as_str(), u.connections, u.since))
            .collect();
        assert_eq!(people, [("ada", "Ada", 2, 5), ("bob", "bob", 1, 7)]);
        drop(tab1);
        assert_eq!(online.on("notes/1").expect("here").users[0].connections, 1);
        drop(tab2);
        drop(bob);
        assert!(online.on("notes/1").is_none());
        let mut seen = Vec::new();
        while let Ok(e) = events.try_recv() {
            seen.push((e.change.event.clone(), e.by.join(",")));
        }
        let seen: Vec<(&str, &str)> = seen.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            seen,
            [
                ("presence.joined", "ada"),
                ("presence.joined", "bob"),
                ("presence.left", "ada"),
                ("presence.left", "bob")
            ]
        );
    }
}
