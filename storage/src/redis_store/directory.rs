//! The people directory in Redis: `tandem:{people}:subs` (sorted set, every score 0, so it
//! lists in `sub` order with `ZRANGEBYLEX`) and `tandem:{people}:names` (hash, `sub` → name).
//! The shared `{people}` tag puts both in one Redis Cluster slot, so one pipeline writes both.

use redis::Commands;

use super::RedisStore;
use crate::directory::{Directory, Person};
use crate::StoreError;

const SUBS: &str = "tandem:{people}:subs";
const NAMES: &str = "tandem:{people}:names";

/// Renames the keys of versions before the `{people}` tag (one Redis only; a cluster never had
/// them). `RENAMENX` leaves a directory already under the new names alone.
pub(super) fn migrate(conn: &mut super::RedisConn) -> redis::RedisResult<()> {
    for (old, new) in [("tandem:people:subs", SUBS), ("tandem:people:names", NAMES)] {
        if conn.exists::<_, bool>(old)? {
            conn.rename_nx::<_, _, ()>(old, new)?;
        }
    }
    Ok(())
}

impl Directory for RedisStore {
    fn remember(&self, sub: &str, name: &str) -> Result<bool, StoreError> {
        let old: Option<String> = self.with(|c| c.hget(NAMES, sub))?;
        if old.as_deref() == Some(name) {
            return Ok(false);
        }
        self.with(|c| {
            redis::pipe()
                .zadd(SUBS, sub, 0)
                .hset(NAMES, sub, name)
                .query::<()>(c)
        })?;
        Ok(true)
    }

    fn people(&self, after: &str, limit: usize) -> Result<Vec<Person>, StoreError> {
        let start = if after.is_empty() {
            "-".to_string()
        } else {
            format!("({after}")
        };
        let subs: Vec<String> =
            self.with(|c| c.zrangebylex_limit(SUBS, start, "+", 0, limit as isize))?;
        if subs.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<Option<String>> =
            self.with(|c| redis::cmd("HMGET").arg(NAMES).arg(&subs).query(c))?;
        Ok(subs
            .into_iter()
            .zip(names)
            .map(|(sub, name)| Person {
                name: name.unwrap_or_default(),
                sub,
            })
            .collect())
    }
}
