//! Ids of a queue kept in Redis (a person's inbox, an endpoint's webhook outbox).
//!
//! Each queue hands out its own ids, in the script that inserts the entry: ids then grow in the
//! order entries land, whichever nodes insert at once. A counter for the whole store, taken by
//! one command and used by a later one, let two nodes land ids out of order (one node takes 5,
//! another 6 and inserts it first), so a stream that had sent 6 skipped 5 for good, and an
//! endpoint received 6 before 5. A queue's keys share one Redis Cluster slot, so its counter can
//! be in its scripts; a store-wide counter cannot.
//!
//! A queue's counter starts from the store-wide counter earlier versions used (read once, when
//! the queue's counter does not exist yet), so its ids stay above every id handed out before:
//! resume points and a receiver's record of delivered ids stay valid. Nodes of both versions
//! must not run at once.

use redis::Commands;

use super::RedisStore;
use crate::StoreError;

/// Lua: `next_id(counter, floor)`, the queue's next id, or `nil` when the counter does not
/// exist yet and `floor` is empty: the caller then reads the floor and runs the script again.
pub(super) const NEXT_ID_LUA: &str = r"
local function next_id(counter, floor)
  if redis.call('EXISTS', counter) == 0 then
    if floor == '' then return nil end
    redis.call('SET', counter, floor)
  end
  return redis.call('INCR', counter)
end
";

/// What a script answers when it needs the floor.
pub(super) const NEEDS_FLOOR: i64 = -1;

impl RedisStore {
    /// Runs `script(floor)` with no floor, and once more with the store-wide counter `legacy`
    /// (0 if it never existed) when the queue's counter has yet to start.
    pub(super) fn with_floor(
        &self,
        legacy: &str,
        script: impl Fn(&str) -> Result<i64, StoreError>,
    ) -> Result<i64, StoreError> {
        let answer = script("")?;
        if answer != NEEDS_FLOOR {
            return Ok(answer);
        }
        let floor: Option<u64> = self.with(|c| c.get(legacy))?;
        script(&floor.unwrap_or(0).to_string())
    }
}
