//! The registry of open rooms: finds or starts the room of a document, and lets an idle room
//! leave without racing a socket that is joining it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::FutureExt;
use tokio::sync::{mpsc, oneshot};

use crate::app::App;
use crate::room::{Member, Room, RoomCmd, RoomError};

struct Entry {
    generation: u64,
    inbox: mpsc::Sender<RoomCmd>,
    connections: Arc<AtomicUsize>,
}

/// A cheap handle to send commands to one room.
#[derive(Clone)]
pub struct RoomHandle {
    pub name: Arc<str>,
    inbox: mpsc::Sender<RoomCmd>,
}

impl RoomHandle {
    pub async fn send(&self, cmd: RoomCmd) -> Result<(), RoomError> {
        self.inbox.send(cmd).await.map_err(|_| RoomError::Gone)
    }

    /// Attaches a member to the room; returns once the room has queued its first messages.
    pub async fn join(&self, member: Member) -> Result<(), RoomError> {
        let (tx, rx) = oneshot::channel();
        self.send(RoomCmd::Join(member, tx)).await?;
        rx.await.map_err(|_| RoomError::Gone)
    }
}

#[derive(Default)]
pub struct Rooms {
    // A std mutex: it is held only for map lookups and inserts, never across an await.
    open: Mutex<HashMap<Arc<str>, Entry>>,
    next_generation: AtomicU64,
    compaction_locks: Mutex<HashMap<Arc<str>, Arc<Mutex<()>>>>,
}

impl Rooms {
    /// The room of `name`, loaded and ready, started if it was not open.
    pub async fn open(&self, app: &Arc<App>, name: &str) -> Result<RoomHandle, RoomError> {
        // A room that is unloading (or deleted) at this very moment drops the request; the next
        // attempt starts a fresh room.
        for _ in 0..app.config.limits.room_open_attempts_max {
            let handle = self.get_or_start(app, name);
            let (tx, rx) = oneshot::channel();
            if handle.send(RoomCmd::Ready(tx)).await.is_err() {
                continue; // it unloaded between lookup and send
            }
            match rx.await {
                Ok(Ok(())) => return Ok(handle),
                Ok(Err(e)) => return Err(e),
                Err(_) => continue,
            }
        }
        Err(RoomError::Gone)
    }

    fn get_or_start(&self, app: &Arc<App>, name: &str) -> RoomHandle {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((key, entry)) = open.get_key_value(name) {
            return RoomHandle {
                name: Arc::clone(key),
                inbox: entry.inbox.clone(),
            };
        }
        let name: Arc<str> = Arc::from(name);
        let (tx, rx) = mpsc::channel(app.config.limits.room_inbox_len_max);
        let generation = self.next_generation.fetch_add(1, Relaxed);
        let connections = Arc::new(AtomicUsize::new(0));
        open.insert(
            Arc::clone(&name),
            Entry {
                generation,
                inbox: tx.clone(),
                connections: Arc::clone(&connections),
            },
        );
        let run = Room::run(
            Arc::clone(app),
            Arc::clone(&name),
            generation,
            tx.downgrade(),
            rx,
            connections,
        );
        let tracked = app.tasks.track();
        // `map`, not an `async` block awaiting `run`: the block would hold the room's future
        // twice (as what it captured and as what it awaits), 3 KiB more per open room.
        tokio::spawn(run.map(move |()| drop(tracked)));
        RoomHandle { name, inbox: tx }
    }

    /// Forgets the room if it is still this generation's (a stopped room calls it).
    pub(crate) fn remove(&self, name: &str, generation: u64) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.get(name).is_some_and(|e| e.generation == generation) {
            open.remove(name);
        }
    }

    /// Called by an idle room. It may leave only if nothing is waiting in its inbox, checked
    /// under the registry lock so no new handle can be handed out meanwhile. A command sent
    /// through an older handle after this point finds the channel closed, and its sender
    /// retries through `open`, which starts a fresh room.
    pub(crate) fn remove_if_idle(
        &self,
        name: &str,
        generation: u64,
        inbox: &mpsc::Receiver<RoomCmd>,
    ) -> bool {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if !inbox.is_empty() {
            return false;
        }
        if open.get(name).is_some_and(|e| e.generation == generation) {
            open.remove(name);
        }
        true
    }

    /// A per-document lock held while compacting, so two compactions of one document (a room
    /// unloaded and reopened while its compaction runs) never overlap.
    pub(crate) fn compaction_lock(&self, name: &str) -> Arc<Mutex<()>> {
        let mut locks = self
            .compaction_locks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        Arc::clone(locks.entry(Arc::from(name)).or_default())
    }

    /// Open rooms and their connection counts, for `/api/stats`.
    pub fn snapshot(&self) -> Vec<(String, usize)> {
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rooms: Vec<_> = open
            .iter()
            .map(|(name, e)| (name.to_string(), e.connections.load(Relaxed)))
            .collect();
        rooms.sort();
        rooms
    }

    pub fn len(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
