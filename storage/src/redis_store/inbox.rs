//! The inboxes in Redis. Per person (the `{...}` hash tag, the recipient in hex, keeps one
//! inbox's keys in one Redis Cluster slot whatever characters the `sub` has):
//!
//! | key | type | content |
//! |---|---|---|
//! | `tandem:inbox:{<hex>}:ids` | sorted set | notification ids, scored by id (oldest first) |
//! | `tandem:inbox:{<hex>}:items` | hash | id → the notification (a checksummed [`crate::record`]) |
//! | `tandem:inbox:{<hex>}:unread` | set | the ids not read yet |
//! | `tandem:inbox:next` | string | the last id handed out (`INCRBY`; ids never repeat) |
//!
//! A notification's `read` flag is membership of `unread`, so marking read is one `SREM`.

use std::collections::{HashMap, HashSet};

use redis::Commands;

use super::RedisStore;
use crate::inbox::{unread, Inbox, InboxPage, InboxQuery, MarkRead, NewNotification, Notification};
use crate::StoreError;

/// What one pipelined read of an inbox returns: its ids oldest first, its items, its unread ids.
type Read = (Vec<u64>, HashMap<u64, Vec<u8>>, HashSet<u64>);

const NEXT_ID: &str = "tandem:inbox:next";

/// Adds one notification (KEYS: ids, items, unread; ARGV: id, record, bound) and drops the
/// oldest past the bound.
pub(super) const DELIVER: &str = r"
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('SREM', KEYS[3], unpack(old))
end
return 0";

fn inbox_key(recipient: &str, what: &str) -> String {
    let hex: String = recipient.bytes().map(|b| format!("{b:02x}")).collect();
    format!("tandem:inbox:{{{hex}}}:{what}")
}

impl RedisStore {
    /// One person's whole inbox, oldest first.
    fn read_inbox(&self, recipient: &str) -> Result<Vec<Notification>, StoreError> {
        let (ids, items, unread_ids): Read = self.with(|c| {
            redis::pipe()
                .zrange(inbox_key(recipient, "ids"), 0, -1)
                .hgetall(inbox_key(recipient, "items"))
                .smembers(inbox_key(recipient, "unread"))
                .query(c)
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(raw) = items.get(&id) else { continue };
            let mut n = Notification::decode(id, raw).map_err(|e| StoreError::Corrupt {
                doc: format!("inbox of {recipient}"),
                detail: e.to_string(),
            })?;
            n.read = !unread_ids.contains(&id);
            out.push(n);
        }
        Ok(out)
    }
}

impl Inbox for RedisStore {
    fn deliver(&self, notifications: &[NewNotification]) -> Result<Vec<u64>, StoreError> {
        if notifications.is_empty() {
            return Ok(Vec::new());
        }
        let count = u64::try_from(notifications.len()).unwrap_or(u64::MAX);
        let last: u64 = self.with(|c| c.incr(NEXT_ID, count))?;
        let first = last.saturating_sub(count) + 1;
        let mut ids = Vec::with_capacity(notifications.len());
        for (id, n) in (first..).zip(notifications) {
            let record = Notification::new(id, n).encode();
            self.with(|c| {
                self.deliver
                    .key(inbox_key(&n.recipient, "ids"))
                    .key(inbox_key(&n.recipient, "items"))
                    .key(inbox_key(&n.recipient, "unread"))
                    .arg(id)
                    .arg(record)
                    .arg(self.config.inbox_len_max)
                    .invoke::<i64>(c)
            })?;
            ids.push(id);
        }
        Ok(ids)
    }

    fn inbox(&self, recipient: &str, query: &InboxQuery) -> Result<InboxPage, StoreError> {
        let all = self.read_inbox(recipient)?;
        Ok(InboxPage {
            notifications: query.page(all.iter()),
            unread: unread(all.iter()),
        })
    }

    fn mark_read(&self, recipient: &str, which: &MarkRead) -> Result<u64, StoreError> {
        let key = inbox_key(recipient, "unread");
        match which {
            MarkRead::All => self.with(|c| c.del::<_, i64>(&key))?,
            MarkRead::Ids(ids) if ids.is_empty() => 0,
            MarkRead::Ids(ids) => self.with(|c| c.srem::<_, _, i64>(&key, ids))?,
        };
        self.with(|c| c.scard(&key))
    }
}
