//! A room's presence table (Yjs awareness): who speaks for which client ID, and what to tell
//! everyone, coalesced.
//!
//! Stock clients make this harder than the protocol reads:
//! - A `y-websocket` (or Hocuspocus) provider re-broadcasts *every* awareness change it receives,
//!   its peers' included. So every frame the room sends comes back from every socket, and a
//!   socket's traffic grows with what others send. The room therefore drops entries for client
//!   IDs a socket does not own without a word, and coalesces what it broadcasts: at most one
//!   presence frame per [`Timing::presence_broadcast_interval`](crate::config::Timing), holding
//!   every change since the last one. What a socket echoes is bounded by that rate, however fast
//!   others publish, so nobody else's traffic can push an honest client over its rate limit.
//! - Clocks are the clients' own and are never rewritten. A client that reconnects announces
//!   itself with the clock it had, at or below the removal the room made when its old socket
//!   left; peers would ignore that as stale. The room answers that socket alone with its removal
//!   record; y-protocols clients never accept the removal of their own live state, so they bump
//!   their clock past it and announce again, and that announcement is accepted. (Rewriting the
//!   clock instead, and echoing it back, made clients adopt and re-send it in a loop.)
//! - An ID may move to another socket only on a newer state from the same author: echoes carry
//!   clocks the room itself sent, never newer ones, so only the real client (its new socket after
//!   a silent network change) can take its ID over, and no other user ever can.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::time::{Duration, Instant};
use yrs::block::ClientID;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::Awareness;
use yrs::Doc;

use crate::room::ConnId;

/// Who speaks for a client ID.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// A socket of this node.
    Local(ConnId),
    /// A socket of another node (cluster mode), by node id.
    Remote(String),
}

pub struct Presence {
    /// The states and their clocks. yrs' `Awareness` wants a doc of its own only for its local
    /// client ID, which a server never uses.
    states: Awareness,
    owners: HashMap<ClientID, Owner>,
    /// The IDs each local socket speaks for (bounded per socket).
    by_conn: HashMap<ConnId, HashSet<ClientID>>,
    /// Who last spoke for an ID, kept after the ID is removed: only that author may bring it
    /// back, so a removal is never an opening for someone else to take the ID.
    authors: HashMap<ClientID, Arc<str>>,
    /// Changed since the last broadcast, with whether the change came from this node (only those
    /// are shared with other nodes; theirs came from there).
    pending: HashMap<ClientID, bool>,
    last_broadcast: Option<Instant>,
    interval: Duration,
    ids_per_conn_max: usize,
}

impl Presence {
    pub fn new(interval: Duration, ids_per_conn_max: usize) -> Self {
        Presence {
            states: Awareness::new(Doc::new()),
            owners: HashMap::new(),
            by_conn: HashMap::new(),
            authors: HashMap::new(),
            pending: HashMap::new(),
            last_broadcast: None,
            interval,
            ids_per_conn_max,
        }
    }

    /// Every live state, for a socket that just joined or asked (`None` if there are none).
    pub fn snapshot(&self) -> Option<AwarenessUpdate> {
        let update = self.states.update().ok()?;
        (!update.clients.is_empty()).then_some(update)
    }

    /// Applies what a local socket announced (see the module notes for the rules). Returns what
    /// to tell the sender alone: the room's removal records of IDs it announced with a stale clock.
    pub fn apply_local(
        &mut self,
        conn: ConnId,
        author: &Arc<str>,
        update: AwarenessUpdate,
    ) -> Option<AwarenessUpdate> {
        let mut accepted = HashMap::new();
        let mut stale = HashMap::new();
        for (id, entry) in update.clients {
            let removal = &*entry.json == "null";
            let current = self.states.meta(id).map(|(clock, _)| clock);
            match self.owners.get(&id) {
                Some(Owner::Local(owner)) if *owner == conn => {
                    accepted.insert(id, entry);
                }
                Some(Owner::Local(other)) => {
                    // The same client on a new socket, after its old one went silent: only a
                    // newer state than any the room sent proves it is not an echo.
                    let newer = current.is_none_or(|c| entry.clock > c);
                    let same_author = self.authors.get(&id) == Some(author);
                    if !removal && newer && same_author && self.has_room_for(conn) {
                        let other = *other;
                        self.release(other, id);
                        self.own(conn, id, author);
                        accepted.insert(id, entry);
                    }
                }
                Some(Owner::Remote(_)) => {} // another node's socket speaks for it
                None => {
                    if removal || !self.has_room_for(conn) {
                        continue;
                    }
                    if self.authors.get(&id).is_some_and(|a| a != author) {
                        continue; // someone else's ID: presence spoofing
                    }
                    match current {
                        Some(clock) if entry.clock <= clock => {
                            stale.insert(id, self.record(id, clock));
                        }
                        _ => {
                            self.own(conn, id, author);
                            accepted.insert(id, entry);
                        }
                    }
                }
            }
        }
        self.apply(accepted, true);
        (!stale.is_empty()).then_some(AwarenessUpdate { clients: stale })
    }

    /// Applies presence from another node's sockets; IDs a local socket owns are not theirs.
    pub fn apply_remote(&mut self, node: &str, update: AwarenessUpdate) {
        let mut accepted = HashMap::new();
        for (id, entry) in update.clients {
            match self.owners.get(&id) {
                Some(Owner::Local(_)) => continue,
                Some(Owner::Remote(_)) => {}
                // A removal of an ID nobody here speaks for changes nothing.
                None if &*entry.json == "null" => continue,
                None => {
                    self.owners.insert(id, Owner::Remote(node.to_owned()));
                }
            }
            accepted.insert(id, entry);
        }
        self.apply(accepted, false);
    }

    /// A local socket left: the IDs it spoke for are removed.
    pub fn leave(&mut self, conn: ConnId) {
        for id in self.by_conn.remove(&conn).unwrap_or_default() {
            self.owners.remove(&id);
            self.remove(id, true);
        }
    }

    /// A node died: the IDs its sockets spoke for are removed.
    pub fn drop_node(&mut self, node: &str) {
        let gone: Vec<ClientID> = self
            .owners
            .iter()
            .filter(|(_, owner)| matches!(owner, Owner::Remote(n) if n == node))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.owners.remove(&id);
            self.remove(id, false);
        }
    }

    /// The states of this node's sockets, for a node that just opened the room.
    pub fn local_states(&self) -> Option<AwarenessUpdate> {
        let local = self
            .owners
            .iter()
            .filter(|(_, owner)| matches!(owner, Owner::Local(_)))
            .map(|(id, _)| *id);
        let update = self.states.update_with_clients(local).ok()?;
        (!update.clients.is_empty()).then_some(update)
    }

    /// When the coalesced changes are due, if there are any.
    pub fn due_at(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        Some(
            self.last_broadcast
                .map_or_else(Instant::now, |t| t + self.interval),
        )
    }

    /// The changes to broadcast if they are due at `now`: the frame for every local socket, and
    /// the part that came from this node (for the other nodes).
    pub fn take_due(&mut self, now: Instant) -> Option<(AwarenessUpdate, Option<AwarenessUpdate>)> {
        let waited = self.last_broadcast.is_none_or(|t| now >= t + self.interval);
        if self.pending.is_empty() || !waited {
            return None;
        }
        self.last_broadcast = Some(now);
        let pending = std::mem::take(&mut self.pending);
        let local: Vec<ClientID> = pending
            .iter()
            .filter(|(_, l)| **l)
            .map(|(id, _)| *id)
            .collect();
        let all = self.states.update_with_clients(pending.into_keys()).ok()?;
        let shared = if local.is_empty() {
            None
        } else {
            self.states.update_with_clients(local).ok()
        };
        (!all.clients.is_empty()).then_some((all, shared))
    }

    fn has_room_for(&self, conn: ConnId) -> bool {
        self.by_conn.get(&conn).map_or(0, HashSet::len) < self.ids_per_conn_max
    }

    fn own(&mut self, conn: ConnId, id: ClientID, author: &Arc<str>) {
        self.owners.insert(id, Owner::Local(conn));
        self.by_conn.entry(conn).or_default().insert(id);
        self.authors.insert(id, Arc::clone(author));
    }

    fn release(&mut self, conn: ConnId, id: ClientID) {
        if let Some(ids) = self.by_conn.get_mut(&conn) {
            ids.remove(&id);
        }
    }

    /// The room's record of `id` at `clock` as an entry (its state, or `null` once removed).
    fn record(&self, id: ClientID, clock: u32) -> AwarenessUpdateEntry {
        let json = self
            .states
            .update_with_clients([id])
            .ok()
            .and_then(|mut u| u.clients.remove(&id))
            .map_or_else(|| Arc::from("null"), |e| e.json);
        AwarenessUpdateEntry { clock, json }
    }

    fn remove(&mut self, id: ClientID, local: bool) {
        self.states.remove_state(id);
        self.pending.insert(id, local);
    }

    /// Applies accepted entries and marks what changed. An owner's own removal frees its ID.
    fn apply(&mut self, clients: HashMap<ClientID, AwarenessUpdateEntry>, local: bool) {
        if clients.is_empty() {
            return;
        }
        let Ok(Some(summary)) = self
            .states
            .apply_update_summary(AwarenessUpdate { clients })
        else {
            return;
        };
        for id in &summary.removed {
            if let Some(Owner::Local(conn)) = self.owners.remove(id) {
                self.release(conn, *id);
            }
        }
        for id in summary.all_changes() {
            self.pending.insert(id, local);
        }
    }
}
