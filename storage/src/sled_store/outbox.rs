//! The webhook outboxes in sled: tree `outbox`, key = endpoint length (u16 BE), endpoint, `p`
//! (pending) or `d` (dead), id (u64 BE); value = the event (a [`crate::record`]). One queue is
//! one ordered prefix, so its oldest event leads it and a page is a range scan; ids come from
//! sled's monotonic id generator, which never repeats across restarts, so a re-queued dead event
//! goes back to its place by its id alone.

use std::collections::HashMap;
use std::sync::{MutexGuard, PoisonError};

use super::{seq_of_key, SledStore};
use crate::outbox::{corrupt, HookEvent, NewHookEvent, Outbox, OutboxCounts, OUTBOX_FULL};
use crate::StoreError;

const PENDING: u8 = b'p';
const DEAD: u8 = b'd';

fn prefix(endpoint: &str, queue: u8) -> Vec<u8> {
    let len = u16::try_from(endpoint.len()).unwrap_or(u16::MAX);
    let mut k = Vec::with_capacity(endpoint.len() + 11);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(endpoint.as_bytes());
    k.push(queue);
    k
}

fn key(endpoint: &str, queue: u8, id: u64) -> Vec<u8> {
    let mut k = prefix(endpoint, queue);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

type Lens = HashMap<(String, u8), usize>;

impl SledStore {
    fn outbox_lens(&self) -> MutexGuard<'_, Lens> {
        self.outbox_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn outbox_len_max(&self) -> usize {
        usize::try_from(self.config.outbox_len_max).unwrap_or(usize::MAX)
    }

    /// A queue's length, counted once per process and kept in `lens` after.
    fn queue_len<'a>(&self, lens: &'a mut Lens, endpoint: &str, queue: u8) -> &'a mut usize {
        lens.entry((endpoint.to_string(), queue))
            .or_insert_with(|| self.outbox.scan_prefix(prefix(endpoint, queue)).count())
    }

    fn read_queue(
        &self,
        endpoint: &str,
        queue: u8,
        limit: usize,
    ) -> Result<Vec<HookEvent>, StoreError> {
        let mut out = Vec::new();
        for entry in self.outbox.scan_prefix(prefix(endpoint, queue)).take(limit) {
            let (k, v) = entry?;
            let id = seq_of_key(&k).unwrap_or_default();
            out.push(HookEvent::decode(id, &v).map_err(|e| corrupt(endpoint, e))?);
        }
        Ok(out)
    }

    /// Moves pending `id` to the dead, with `reason`, and keeps the dead within the bound; false
    /// if it was not pending.
    fn park_locked(
        &self,
        lens: &mut Lens,
        endpoint: &str,
        id: u64,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let Some(raw) = self.outbox.remove(key(endpoint, PENDING, id))? else {
            return Ok(false);
        };
        *self.queue_len(lens, endpoint, PENDING) -= 1;
        let mut event = HookEvent::decode(id, &raw).map_err(|e| corrupt(endpoint, e))?;
        event.error = reason.to_string();
        self.outbox
            .insert(key(endpoint, DEAD, id), event.encode())?;
        let len_max = self.outbox_len_max();
        let dead = self.queue_len(lens, endpoint, DEAD);
        *dead += 1;
        while *dead > len_max {
            let Some(oldest) = self
                .outbox
                .scan_prefix(prefix(endpoint, DEAD))
                .keys()
                .next()
            else {
                break;
            };
            self.outbox.remove(oldest?)?;
            *dead -= 1;
        }
        Ok(true)
    }
}

impl Outbox for SledStore {
    fn enqueue(&self, events: &[NewHookEvent]) -> Result<Vec<String>, StoreError> {
        let mut lens = self.outbox_lens();
        let len_max = self.outbox_len_max();
        let mut parked = Vec::new();
        for e in events {
            let id = self.db.generate_id()?.saturating_add(1);
            self.outbox.insert(
                key(&e.endpoint, PENDING, id),
                HookEvent::new(id, e).encode(),
            )?;
            *self.queue_len(&mut lens, &e.endpoint, PENDING) += 1;
            while *self.queue_len(&mut lens, &e.endpoint, PENDING) > len_max {
                let Some(oldest) = self
                    .outbox
                    .scan_prefix(prefix(&e.endpoint, PENDING))
                    .keys()
                    .next()
                else {
                    break;
                };
                let oldest = seq_of_key(&oldest?).unwrap_or_default();
                self.park_locked(&mut lens, &e.endpoint, oldest, OUTBOX_FULL)?;
                parked.push(e.endpoint.clone());
            }
        }
        Ok(parked)
    }

    fn pending(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        self.read_queue(endpoint, PENDING, limit)
    }

    fn remove_delivered(&self, endpoint: &str, id: u64) -> Result<(), StoreError> {
        let mut lens = self.outbox_lens();
        for queue in [PENDING, DEAD] {
            if self.outbox.remove(key(endpoint, queue, id))?.is_some() {
                *self.queue_len(&mut lens, endpoint, queue) -= 1;
            }
        }
        Ok(())
    }

    fn park(&self, endpoint: &str, id: u64, reason: &str) -> Result<bool, StoreError> {
        let mut lens = self.outbox_lens();
        self.park_locked(&mut lens, endpoint, id, reason)
    }

    fn dead(&self, endpoint: &str, limit: usize) -> Result<Vec<HookEvent>, StoreError> {
        self.read_queue(endpoint, DEAD, limit)
    }

    fn requeue_dead(&self, endpoint: &str) -> Result<u64, StoreError> {
        let mut lens = self.outbox_lens();
        let room = self
            .outbox_len_max()
            .saturating_sub(*self.queue_len(&mut lens, endpoint, PENDING));
        let mut moved = 0;
        for mut event in self.read_queue(endpoint, DEAD, room)? {
            event.error.clear();
            self.outbox.remove(key(endpoint, DEAD, event.id))?;
            self.outbox
                .insert(key(endpoint, PENDING, event.id), event.encode())?;
            *self.queue_len(&mut lens, endpoint, DEAD) -= 1;
            *self.queue_len(&mut lens, endpoint, PENDING) += 1;
            moved += 1;
        }
        Ok(moved)
    }

    fn outbox_counts(&self, endpoint: &str) -> Result<OutboxCounts, StoreError> {
        let mut lens = self.outbox_lens();
        Ok(OutboxCounts {
            pending: *self.queue_len(&mut lens, endpoint, PENDING) as u64,
            dead: *self.queue_len(&mut lens, endpoint, DEAD) as u64,
        })
    }
}
