//! The webhook outboxes in Redis, shared by every node. Per endpoint (the `{...}` hash tag keeps
//! one endpoint's keys in one Redis Cluster slot; endpoint ids are hex):
//!
//! | key | type | content |
//! |---|---|---|
//! | `tandem:hook:{<endpoint>}:pending` | sorted set | ids waiting, scored by id (oldest first) |
//! | `tandem:hook:{<endpoint>}:dead` | sorted set | ids given up on, scored by id |
//! | `tandem:hook:{<endpoint>}:items` | hash | id → the event (a checksummed [`crate::record`]) |
//! | `tandem:hook:{<endpoint>}:errors` | hash | id → why a dead event was parked |
//! | `tandem:hook:{<endpoint>}:lease` | string | the node delivering the endpoint's events (`SET NX PX`) |
//! | `tandem:hook:{<endpoint>}:next` | string | the endpoint's last id (`ids.rs`: ids grow in the order they land) |
//!
//! Each change of a queue is one script, so the bound holds whichever nodes enqueue at once;
//! the lease makes one node at a time deliver an endpoint, which keeps its events in order.

use std::sync::LazyLock;

use redis::Commands;

use super::ids::{NEEDS_FLOOR, NEXT_ID_LUA};
use super::RedisStore;
use crate::outbox::{corrupt, HookEvent, NewHookEvent, Outbox, OutboxCounts, OUTBOX_FULL};
use crate::StoreError;

/// The store-wide counter of earlier versions: where each endpoint's own counter starts.
const LEGACY_NEXT_ID: &str = "tandem:hook:next";

/// Parks the oldest pending past the bound, then drops the oldest dead past it (KEYS pending,
/// dead, items, errors; ARGV bound, reason). Shared by the scripts below.
const BOUND: &str = r"
local parked = 0
local bound = tonumber(ARGV[1])
while redis.call('ZCARD', KEYS[1]) > bound do
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
  redis.call('ZREM', KEYS[1], oldest)
  redis.call('ZADD', KEYS[2], oldest, oldest)
  redis.call('HSET', KEYS[4], oldest, ARGV[2])
  parked = parked + 1
end
local extra = redis.call('ZCARD', KEYS[2]) - bound
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, extra - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
  redis.call('HDEL', KEYS[3], unpack(old))
  redis.call('HDEL', KEYS[4], unpack(old))
end
";

/// Adds one event under the endpoint's next id (KEYS 5: the counter; ARGV 3: floor, 4: record)
/// and keeps the bound; returns how many it parked (or `NEEDS_FLOOR`).
static ENQUEUE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "{NEXT_ID_LUA}
local id = next_id(KEYS[5], ARGV[3])
if not id then return {NEEDS_FLOOR} end
redis.call('ZADD', KEYS[1], id, id)
redis.call('HSET', KEYS[3], id, ARGV[4])
{BOUND}
return parked"
    ))
});

/// Parks pending ARGV[3] with reason ARGV[2], if it is pending.
static PARK: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(&format!(
        "if redis.call('ZREM', KEYS[1], ARGV[3]) == 0 then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[3])
redis.call('HSET', KEYS[4], ARGV[3], ARGV[2])
{BOUND}
return 1"
    ))
});

/// Moves the oldest dead back to pending, as many as the bound (ARGV[1]) leaves room for.
const REQUEUE: &str = r"
local room = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1])
if room <= 0 then return 0 end
local ids = redis.call('ZRANGE', KEYS[2], 0, room - 1)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], id, id)
  redis.call('HDEL', KEYS[4], id)
end
return #ids";

/// Takes the lease if it is free, or renews it if this node (ARGV[1]) holds it.
const LEASE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0";

static REQUEUE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(REQUEUE));
static LEASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(LEASE));

fn hook_key(endpoint: &str, what: &str) -> String {
    format!("tandem:hook:{{{endpoint}}}:{what}")
}

/// The four keys every queue script takes, in its order.
fn queue_keys<'a>(script: &'a redis::Script, endpoint: &str) -> redis::ScriptInvocation<'a> {
    let mut invocation = script.prepare_invoke();
    for what in ["pending", "dead", "items", "errors"] {
        invocation.key(hook_key(endpoint, what));
    }
    invocation
}

impl RedisStore {
    fn read_queue(
        &self,
        endpoint: &str,
        queue: &str,
        limit: usize,
    ) -> Result<Vec<HookEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let stop = isize::try_from(limit).unwrap_or(isize::MAX) - 1;
        let ids: Vec<u64> = self.with(|c| c.zrange(hook_key(endpoint, queue), 0, stop))?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (items, errors): (Vec<Option<Vec<u8>>>, Vec<Option<String>>) = self.with(|c| {
            redis::pipe()
                .cmd("HMGET")
                .arg(hook_key(endpoint, "items"))
                .arg(&ids)
                .cmd("HMGET")
                .arg(hook_key(endpoint, "errors"))
                .arg(&ids)
                .query(c)
        })?;
        let mut out = Vec::with_capacity(ids.len());
        for ((id, item), error) in ids.into_iter().zip(items).zip(errors) {
            let Some(raw) = item else { continue };
            let mut event = HookEvent::decode(id, &raw).map_err(|e| corrupt(endpoint, e))?;
            event.error = error.unwrap_or_default();
            out.push(event);
        }
        Ok(out)
    }
}

impl Outbox for RedisStore {
    fn enqueue(&self, events: &[NewHookEvent]) -> Result<Vec<String>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut parked = Vec::new();
        for e in events {
            // The record does not hold its id (the key does), so the script can choose it.
            let record = HookEvent::new(0, e).encode();
            let n = self.with_floor(LEGACY_NEXT_ID, |floor| {
                self.with(|c| {
                    queue_keys(&ENQUEUE, &e.endpoint)
                        .key(hook_key(&e.endpoint, "next"))
                        .arg(self.config.outbox_len_max)
                        .arg(OUTBOX_FULL)
                        .arg(floor)
                        .arg(&record)
                        .invoke::<i64>(c)
                })
            })?;
            parked.extend((0..n.max(0)).map(|_| e.endpoint.clone()));
        }
        Ok(parked)
    }

    fn pending(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        self.read_queue(endpoint, "pending", limit)
    }

    fn remove_delivered(&self, endpoint: &str, id: u64) -> Result<(), StoreError> {
        self.with(|c| {
            redis::pipe()
                .atomic()
                .zrem(hook_key(endpoint, "pending"), id)
                .zrem(hook_key(endpoint, "dead"), id)
                .hdel(hook_key(endpoint, "items"), id)
                .hdel(hook_key(endpoint, "errors"), id)
                .query::<()>(c)
        })
    }

    fn park(&self, endpoint: &str, id: u64, reason: &str) -> Result<bool, StoreError> {
        let parked: i64 = self.with(|c| {
            queue_keys(&PARK, endpoint)
                .arg(self.config.outbox_len_max)
                .arg(reason)
                .arg(id)
                .invoke(c)
        })?;
        Ok(parked == 1)
    }

    fn dead(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        self.read_queue(endpoint, "dead", limit)
    }

    fn requeue_dead(&self, endpoint: &str) -> Result<u64, StoreError> {
        self.with(|c| {
            queue_keys(&REQUEUE_SCRIPT, endpoint)
                .arg(self.config.outbox_len_max)
                .invoke(c)
        })
    }

    fn outbox_counts(&self, endpoint: &str) -> Result<OutboxCounts, StoreError> {
        let (pending, dead): (u64, u64) = self.with(|c| {
            redis::pipe()
                .zcard(hook_key(endpoint, "pending"))
                .zcard(hook_key(endpoint, "dead"))
                .query(c)
        })?;
        Ok(OutboxCounts { pending, dead })
    }

    fn outbox_lease(&self, endpoint: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let held: i64 = self.with(|c| {
            LEASE_SCRIPT
                .key(hook_key(endpoint, "lease"))
                .arg(self.node())
                .arg(ttl_ms)
                .invoke(c)
        })?;
        Ok(held == 1)
    }
}
