//! Notifications from durable changes: which people a change of a note or an issue concerns
//! (`tandem_crdt_model::notify`), stamped for their inboxes, and the wake-up that tells open
//! notification streams to look.
//!
//! The room derives them from the same two readings as the change feed and hands them to the
//! group commit with the updates, so they are durable exactly when the change is: an edit
//! acknowledged before a crash has its notifications after the restart.

use std::sync::Arc;

use tandem_crdt_model::notify::{self, Context};
use tandem_crdt_model::typed::{self, Typed};
use tandem_storage::NewNotification;
use tokio::sync::broadcast;

/// The inbox entries a change of `doc` from `before` to `after` makes: `actor` made it, `creator`
/// created the document (both from the server's records).
pub fn derive(
    doc: &str,
    before: &Typed,
    after: &Typed,
    actor: &str,
    creator: Option<&str>,
    at_ms: u64,
) -> Vec<NewNotification> {
    // A private note reaches its owner alone; any other document, whoever can read it when the
    // notification is shown (checked again then).
    let owner = typed::locate(doc).and_then(|l| l.owner);
    let may_read =
        |sub: &str| owner.is_none_or(|o| crate::space::segment_of(sub).as_deref() == Some(o));
    let context = Context {
        actor,
        creator,
        may_read: &may_read,
    };
    notify::notices(&context, before, after)
        .into_iter()
        .map(|n| NewNotification {
            recipient: n.recipient,
            kind: n.kind.name().to_string(),
            doc: doc.to_string(),
            item: n.item,
            by: actor.to_string(),
            at_ms,
            title: n.title,
            status: n.status,
        })
        .collect()
}

/// Tells open notification streams that someone's inbox grew (they then read it from the store,
/// which stays the one source of truth). Lagging receivers simply read again.
pub struct Notifier {
    delivered: broadcast::Sender<Arc<str>>,
}

impl Default for Notifier {
    fn default() -> Self {
        Notifier {
            delivered: broadcast::channel(1024).0,
        }
    }
}

impl Notifier {
    /// Called once the notifications are durable.
    pub fn delivered(&self, notifications: &[NewNotification]) {
        for n in notifications {
            let _ = self.delivered.send(Arc::from(n.recipient.as_str()));
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        self.delivered.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_crdt_model::note::Note;

    fn note(body: &str) -> Typed {
        Typed::Note(Note {
            title: "Plan".into(),
            body: body.into(),
            created: 1,
            ..Note::default()
        })
    }

    #[test]
    fn a_mention_in_a_private_note_reaches_only_its_owner() {
        let (before, after) = (note(""), note("@bob @ada.lovelace"));
        let public = derive("notes/1", &before, &after, "ada", Some("ada"), 9);
        let who: Vec<&str> = public.iter().map(|n| n.recipient.as_str()).collect();
        assert_eq!(who, ["ada.lovelace", "bob"]);
        assert_eq!((public[0].by.as_str(), public[0].at_ms), ("ada", 9));
        let private = derive(
            "private/ada/notes/1",
            &before,
            &after,
            "ada",
            Some("ada"),
            9,
        );
        assert!(private.is_empty(), "{private:?}");
        let own = derive(
            "private/bob/notes/1",
            &before,
            &after,
            "ada",
            Some("bob"),
            9,
        );
        assert_eq!(own.len(), 1, "only bob, the owner: {own:?}");
    }
}
