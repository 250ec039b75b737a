//! The people directory in Redis: `tandem:people:subs` (sorted set, every score 0, so it lists
//! in `sub` order with `ZRANGEBYLEX`) and `tandem:people:names` (hash, `sub` → name).

use redis::Commands;

use super::RedisStore;
use crate::directory::{Directory, Person};
use crate::StoreError;

const SUBS: &str = "tandem:people:subs";
const NAMES: &str = "tandem:people:names";

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
