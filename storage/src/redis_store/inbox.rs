//! The inboxes in Redis. Per person (the `{...}` hash tag, the recipient in hex, keeps one
//! inbox's keys in one Redis Cluster slot whatever characters the `sub` has):
//!
//! | key | type | content |
//! |---|---|---|
//! | `tandem:inbox:{<hex>}:ids` | sorted set | notification ids, scored by id (oldest first) |
//! | `tandem:inbox:{<hex>}:items` | hash | id → the notification (a checksummed [`crate::record`]) |
//! | `tandem:inbox:{<hex>}:unread` | set | the ids not read yet |
//! | `tandem:inbox:{<hex>}:next` | string | the inbox's last id (`ids.rs`: ids grow in the order they land) |
//!
//! A notification's `read` flag is membership of `unread`, so marking read is one `SREM`.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use redis::Commands;

use super::ids::{NEEDS_FLOOR, NEXT_ID_LUA};
use super::RedisStore;
use crate::inbox::{unread, Inbox, InboxPage, InboxQuery, MarkRead, NewNotification, Notification};
use crate::StoreError;

/// What one pipelined read of an inbox returns: its ids oldest first, its items, its unread ids.
type Read = (Vec<u64>, HashMap<u64, Vec<u8>>, HashSet<u64>);

/// The store-wide counter of earlier versions: where each inbox's own counter starts.
const LEGACY_NEXT_ID: &str = "tandem:inbox:next";

/// Adds one notification under the inbox's next id (KEYS: ids, items, unread, next; ARGV:
/// record, bound, floor), drops the oldest past the bound, and answers the id (or
/// `NEEDS_FLOOR`).
static DELIVER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{NEXT_ID_LUA}
local id = next_id(KEYS[4], ARGV[3])
if not id then return {NEEDS_FLOOR} end
redis.call('ZADD', KEYS[1], id, id)
redis.call('HSET', KEYS[2], id, ARGV[1])
redis.call('SADD', KEYS[3], id)
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[1], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1)
  redis.call('HDEL', KEYS[2], unpack(old))
  redis.call('SREM', KEYS[3], unpack(old))
end
return id"
    ))
});

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
        let mut ids = Vec::with_capacity(notifications.len());
        for n in notifications {
            // The record does not hold its id (the key does), so the script can choose it.
            let record = Notification::new(0, n).encode();
            let id = self.with_floor(LEGACY_NEXT_ID, |floor| {
                self.with(|c| {
                    DELIVER
                        .key(inbox_key(&n.recipient, "ids"))
                        .key(inbox_key(&n.recipient, "items"))
                        .key(inbox_key(&n.recipient, "unread"))
                        .key(inbox_key(&n.recipient, "next"))
                        .arg(&record)
                        .arg(self.config.inbox_len_max)
                        .arg(floor)
                        .invoke::<i64>(c)
                })
            })?;
            ids.push(
                u64::try_from(id).map_err(|_| StoreError::Io(format!("redis: inbox id {id}")))?,
            );
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
