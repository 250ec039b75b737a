//! The people directory in sled: tree `people`, key = `sub`, value = the name (a record).

use super::SledStore;
use crate::directory::{Directory, Person};
use crate::record::{self, put_str16, Reader};
use crate::StoreError;

fn encode(name: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(name.len() + 2);
    put_str16(&mut body, name);
    record::seal(&body)
}

impl Directory for SledStore {
    fn remember(&self, sub: &str, name: &str) -> Result<bool, StoreError> {
        let value = encode(name);
        let old = self.people.insert(sub.as_bytes(), value.as_slice())?;
        Ok(old.is_none_or(|o| *o != *value))
    }

    fn people(&self, after: &str, limit: usize) -> Result<Vec<Person>, StoreError> {
        let mut out = Vec::new();
        let start = std::ops::Bound::Excluded(after.as_bytes());
        for entry in self
            .people
            .range::<&[u8], _>((start, std::ops::Bound::Unbounded))
            .take(limit)
        {
            let (sub, raw) = entry?;
            let sub = String::from_utf8_lossy(&sub).into_owned();
            let name = record::open(&raw)
                .and_then(|body| Reader::new(body).bytes16().map(<[u8]>::to_vec))
                .map_err(|e| SledStore::corrupt(&sub, "people", e))?;
            out.push(Person {
                name: String::from_utf8_lossy(&name).into_owned(),
                sub,
            });
        }
        Ok(out)
    }
}
