//! The inboxes in sled: tree `inbox`, key = recipient length (u16 BE), recipient, id (u64 BE),
//! value = the notification (a [`crate::record`]). One person's inbox is one ordered prefix, so
//! a page is a range scan and the oldest entries come first; ids come from sled's monotonic id
//! generator, which never repeats across restarts.

use std::sync::PoisonError;

use super::{seq_of_key, SledStore};
use crate::inbox::{unread, Inbox, InboxPage, InboxQuery, MarkRead, NewNotification, Notification};
use crate::StoreError;

fn prefix(recipient: &str) -> Vec<u8> {
    let len = u16::try_from(recipient.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(recipient.len() + 10);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(recipient.as_bytes());
    k
}

impl SledStore {
    /// One person's whole inbox, oldest first (at most `inbox_len_max` entries).
    fn read_inbox(&self, recipient: &str) -> Result<Vec<(sled::IVec, Notification)>, StoreError> {
        let mut out = Vec::new();
        for entry in self.inbox.scan_prefix(prefix(recipient)) {
            let (key, value) = entry?;
            let id = seq_of_key(&key).unwrap_or_default();
            let n = Notification::decode(id, &value)
                .map_err(|e| SledStore::corrupt(recipient, "inbox", e))?;
            out.push((key, n));
        }
        Ok(out)
    }
}

impl Inbox for SledStore {
    fn deliver(&self, notifications: &[NewNotification]) -> Result<Vec<u64>, StoreError> {
        let mut lens = self
            .inbox_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let len_max = usize::try_from(self.config.inbox_len_max).unwrap_or(usize::MAX);
        let mut ids = Vec::with_capacity(notifications.len());
        for n in notifications {
            if n.recipient.len() > usize::from(u16::MAX) {
                continue; // no token carries such a sub; never a key collision
            }
            let id = self.db.generate_id()?.saturating_add(1);
            let mut key = prefix(&n.recipient);
            key.extend_from_slice(&id.to_be_bytes());
            self.inbox.insert(key, Notification::new(id, n).encode())?;
            ids.push(id);
            let len = match lens.get_mut(&n.recipient) {
                Some(len) => {
                    *len += 1;
                    len
                }
                None => {
                    let counted = self.inbox.scan_prefix(prefix(&n.recipient)).keys().count();
                    lens.entry(n.recipient.clone()).or_insert(counted)
                }
            };
            // The oldest go first: they lead the person's prefix.
            while *len > len_max {
                let Some(oldest) = self.inbox.scan_prefix(prefix(&n.recipient)).keys().next()
                else {
                    break;
                };
                self.inbox.remove(oldest?)?;
                *len -= 1;
            }
        }
        Ok(ids)
    }

    fn inbox(&self, recipient: &str, query: &InboxQuery) -> Result<InboxPage, StoreError> {
        let all = self.read_inbox(recipient)?;
        let notifications = all.iter().map(|(_, n)| n);
        Ok(InboxPage {
            notifications: query.page(notifications.clone()),
            unread: unread(notifications),
        })
    }

    fn mark_read(&self, recipient: &str, which: &MarkRead) -> Result<u64, StoreError> {
        let _held = self
            .inbox_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut all = self.read_inbox(recipient)?;
        for (key, n) in &mut all {
            if !n.read && which.covers(n.id) {
                n.read = true;
                self.inbox.insert(&*key, n.encode())?;
            }
        }
        Ok(unread(all.iter().map(|(_, n)| n)))
    }
}
