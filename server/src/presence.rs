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
//! - An echo can be larger than what it echoes: JavaScript writes a number such as `1e20`
//!   (4 bytes) back as `100000000000000000000` (21 bytes). One large state, or many states in one
//!   frame, would come back from every stock client as a frame over `frame_size_max_bytes` and
//!   get it closed. So a state is at most [`Limits::awareness_state_max_bytes`] and never more
//!   than a frame can hold grown [`ECHO_GROWTH_MAX`] times, and every frame the room sends holds
//!   only as many states as fit a frame grown that much; the rest wait for the next broadcast.
//!
//! [`Limits::awareness_state_max_bytes`]: crate::config::Limits

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use tokio::time::{Duration, Instant};
use yrs::block::ClientID;
use yrs::sync::awareness::{AwarenessUpdate, AwarenessUpdateEntry};
use yrs::sync::Awareness;
use yrs::Doc;

use crate::room::MemberId;

/// How many times larger a stock client's echo of a presence state can be than the state: a JSON
/// number grows at most from `1e20` to `100000000000000000000` (5.25 times); strings, keys and
/// literals never grow when JavaScript parses and writes them again.
const ECHO_GROWTH_MAX: usize = 6;
/// What an entry of an awareness frame takes besides its state (client ID, clock and length
/// varints), and what a frame takes besides its entries (message type, lengths, entry count).
const ENTRY_OVERHEAD_BYTES: usize = 32;
const FRAME_OVERHEAD_BYTES: usize = 32;

/// The most an entry holding a state of `json_len` bytes can take in a stock client's echo.
fn echo_cost(json_len: usize) -> usize {
    json_len
        .saturating_mul(ECHO_GROWTH_MAX)
        .saturating_add(ENTRY_OVERHEAD_BYTES)
}

/// Who speaks for a client ID.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Owner {
    /// A socket of this node.
    Local(MemberId),
    /// A socket of another node (cluster mode), by node id.
    Remote(String),
}

pub struct Presence {
    /// The states and their clocks. yrs' `Awareness` wants a doc of its own only for its local
    /// client ID, which a server never uses.
    states: Awareness,
    owners: HashMap<ClientID, Owner>,
    /// The IDs each local socket speaks for (bounded per socket).
    by_conn: HashMap<MemberId, HashSet<ClientID>>,
    /// Who last spoke for an ID, kept after the ID is removed: only that author may bring it
    /// back, so a removal is never an opening for someone else to take the ID.
    authors: HashMap<ClientID, Arc<str>>,
    /// Changed since the last broadcast: the order of the first change (the oldest go first when
    /// one frame cannot hold them all), and whether the latest came from this node (only those
    /// are shared with other nodes; theirs came from there).
    pending: HashMap<ClientID, (u64, bool)>,
    changes: u64,
    last_broadcast: Option<Instant>,
    interval: Duration,
    ids_per_conn_max: usize,
    state_max_bytes: usize,
    /// What the entries of one frame may cost in a stock client's echo (see [`echo_cost`]).
    frame_budget_bytes: usize,
}

impl Presence {
    pub fn new(
        interval: Duration,
        ids_per_conn_max: usize,
        state_max_bytes: usize,
        frame_size_max_bytes: usize,
    ) -> Self {
        let frame_budget_bytes = frame_size_max_bytes.saturating_sub(FRAME_OVERHEAD_BYTES);
        // The largest state whose echo, alone in a frame, still fits one.
        let state_fits = frame_budget_bytes.saturating_sub(ENTRY_OVERHEAD_BYTES) / ECHO_GROWTH_MAX;
        Presence {
            states: Awareness::new(Doc::new()),
            owners: HashMap::new(),
            by_conn: HashMap::new(),
            authors: HashMap::new(),
            pending: HashMap::new(),
            changes: 0,
            last_broadcast: None,
            interval,
            ids_per_conn_max,
            state_max_bytes: state_max_bytes.min(state_fits),
            frame_budget_bytes,
        }
    }

    /// Every live state, for a socket that just joined or asked, in as many frames as their
    /// echoes need (none if there are no states).
    pub fn snapshot(&self) -> Vec<AwarenessUpdate> {
        let Ok(update) = self.states.update() else {
            return Vec::new();
        };
        let mut frames = Vec::new();
        let mut frame = HashMap::new();
        let mut spent = 0;
        for (id, entry) in update.clients {
            let cost = echo_cost(entry.json.len());
            if !frame.is_empty() && spent + cost > self.frame_budget_bytes {
                frames.push(AwarenessUpdate {
                    clients: std::mem::take(&mut frame),
                });
                spent = 0;
            }
            spent += cost;
            frame.insert(id, entry);
        }
        if !frame.is_empty() {
            frames.push(AwarenessUpdate { clients: frame });
        }
        frames
    }

    /// Applies what a local socket announced (see the module notes for the rules). Returns what
    /// to tell the sender alone: the room's removal records of IDs it announced with a stale clock.
    pub fn apply_local(
        &mut self,
        conn: MemberId,
        author: &Arc<str>,
        update: AwarenessUpdate,
    ) -> Option<AwarenessUpdate> {
        let mut accepted = HashMap::new();
        let mut stale = HashMap::new();
        for (id, entry) in update.clients {
            let removal = &*entry.json == "null";
            let current = self.states.meta(id).map(|(clock, _)| clock);
            if entry.json.len() > self.state_max_bytes {
                // Never applied. Echoes of others' states may be this large too (grown by
                // JavaScript); only the sender's own state is worth a word.
                if self.owned_by(conn, id) {
                    tracing::warn!(
                        conn,
                        client = %id,
                        bytes = entry.json.len(),
                        "presence state over the size limit dropped"
                    );
                }
                continue;
            }
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
    pub fn leave(&mut self, conn: MemberId) {
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
    /// the part that came from this node (for the other nodes). The oldest changes go first; what
    /// the frame cannot hold stays pending for the next broadcast.
    pub fn take_due(&mut self, now: Instant) -> Option<(AwarenessUpdate, Option<AwarenessUpdate>)> {
        let waited = self.last_broadcast.is_none_or(|t| now >= t + self.interval);
        if self.pending.is_empty() || !waited {
            return None;
        }
        self.last_broadcast = Some(now);
        let mut order: Vec<(u64, ClientID, bool)> = self
            .pending
            .iter()
            .map(|(id, (since, local))| (*since, *id, *local))
            .collect();
        order.sort_unstable();
        let mut all = HashMap::new();
        let mut shared = HashMap::new();
        let mut spent = 0;
        for (_, id, local) in order {
            // Every pending ID is in the table: changes and removals both leave an entry.
            let Some(entry) = self
                .states
                .update_with_clients([id])
                .ok()
                .and_then(|mut u| u.clients.remove(&id))
            else {
                self.pending.remove(&id);
                continue;
            };
            let cost = echo_cost(entry.json.len());
            if !all.is_empty() && spent + cost > self.frame_budget_bytes {
                break;
            }
            spent += cost;
            self.pending.remove(&id);
            if local {
                shared.insert(id, entry.clone());
            }
            all.insert(id, entry);
        }
        let shared = (!shared.is_empty()).then_some(AwarenessUpdate { clients: shared });
        (!all.is_empty()).then_some((AwarenessUpdate { clients: all }, shared))
    }

    /// True when `id` is `conn`'s or nobody's: an entry for it is then no echo.
    fn owned_by(&self, conn: MemberId, id: ClientID) -> bool {
        self.owners
            .get(&id)
            .is_none_or(|owner| *owner == Owner::Local(conn))
    }

    fn has_room_for(&self, conn: MemberId) -> bool {
        self.by_conn.get(&conn).map_or(0, HashSet::len) < self.ids_per_conn_max
    }

    /// Who last spoke for an ID, if anyone did.
    pub fn author_of(&self, id: ClientID) -> Option<Arc<str>> {
        self.authors.get(&id).cloned()
    }

    fn own(&mut self, conn: MemberId, id: ClientID, author: &Arc<str>) {
        self.owners.insert(id, Owner::Local(conn));
        self.by_conn.entry(conn).or_default().insert(id);
        self.authors.insert(id, Arc::clone(author));
    }

    fn release(&mut self, conn: MemberId, id: ClientID) {
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
        self.changed(id, local);
    }

    fn changed(&mut self, id: ClientID, local: bool) {
        self.changes += 1;
        let since = self.changes;
        self.pending.entry(id).or_insert((since, local)).1 = local;
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
            self.changed(id, local);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME_MAX: usize = 64 * 1024;

    fn presence(state_max_bytes: usize) -> Presence {
        Presence::new(Duration::from_millis(50), 16, state_max_bytes, FRAME_MAX)
    }

    fn update(entries: &[(u64, u32, &str)]) -> AwarenessUpdate {
        let clients = entries
            .iter()
            .map(|(id, clock, json)| {
                let entry = AwarenessUpdateEntry {
                    clock: *clock,
                    json: Arc::from(*json),
                };
                (ClientID::new(*id), entry)
            })
            .collect();
        AwarenessUpdate { clients }
    }

    /// A JSON state of exactly `len` bytes.
    fn state(len: usize) -> String {
        format!(r#"{{"s":"{}"}}"#, "x".repeat(len - 8))
    }

    /// The most a stock client's echo of `frame` can take.
    fn echo_bytes(frame: &AwarenessUpdate) -> usize {
        FRAME_OVERHEAD_BYTES
            + frame
                .clients
                .values()
                .map(|e| echo_cost(e.json.len()))
                .sum::<usize>()
    }

    // A state of exactly awareness_state_max_bytes is applied; one byte more is dropped.
    #[test]
    fn state_size_edge() {
        let mut p = presence(1000);
        let author: Arc<str> = Arc::from("ada");
        p.apply_local(1, &author, update(&[(7, 1, &state(1000))]));
        p.apply_local(1, &author, update(&[(8, 1, &state(1001))]));
        let snapshot = p.snapshot();
        let ids: Vec<u64> = snapshot
            .iter()
            .flat_map(|u| u.clients.keys().map(ClientID::get))
            .collect();
        assert_eq!(ids, vec![7]);
    }

    // A socket may introduce `awareness_clients_per_conn_max` client IDs: that many are
    // applied, the next is ignored, and once the socket leaves another socket may bring its own.
    #[test]
    fn client_ids_per_socket_edge() {
        let mut p = Presence::new(Duration::from_millis(50), 3, 1024, FRAME_MAX);
        let author: Arc<str> = Arc::from("ada");
        let ids = |p: &Presence| -> Vec<u64> {
            let mut ids: Vec<u64> = p
                .snapshot()
                .iter()
                .flat_map(|u| u.clients.keys().map(ClientID::get))
                .collect();
            ids.sort_unstable();
            ids
        };
        p.apply_local(
            1,
            &author,
            update(&[(1, 1, "{}"), (2, 1, "{}"), (3, 1, "{}")]),
        );
        assert_eq!(ids(&p), vec![1, 2, 3]);
        p.apply_local(1, &author, update(&[(4, 1, "{}")]));
        assert_eq!(ids(&p), vec![1, 2, 3], "a fourth ID from one socket");
        p.apply_local(2, &author, update(&[(4, 1, "{}")]));
        assert_eq!(
            ids(&p),
            vec![1, 2, 3, 4],
            "another socket has room of its own"
        );
    }

    // The limit never exceeds what fits a frame once a stock client's echo has grown it.
    #[test]
    fn state_limit_follows_the_frame_size() {
        let p = presence(usize::MAX);
        let fits = (FRAME_MAX - FRAME_OVERHEAD_BYTES - ENTRY_OVERHEAD_BYTES) / ECHO_GROWTH_MAX;
        assert_eq!(p.state_max_bytes, fits);
        assert!(echo_cost(fits) + FRAME_OVERHEAD_BYTES <= FRAME_MAX);
    }

    // Many large states changing at once: every broadcast's echo fits a frame, the oldest
    // changes go first, what does not fit goes in the next broadcasts, and a joining socket gets
    // every state in frames that fit too.
    #[test]
    fn broadcasts_and_snapshots_fit_a_frame_when_echoed() {
        let mut p = presence(usize::MAX);
        let big = state(p.state_max_bytes);
        for conn in 1..=4u64 {
            let author: Arc<str> = Arc::from(format!("user{conn}").as_str());
            let entries: Vec<(u64, u32, &str)> =
                (0..3).map(|k| (conn * 100 + k, 1, big.as_str())).collect();
            p.apply_local(conn, &author, update(&entries));
        }
        let mut now = Instant::now();
        let mut sent = Vec::new();
        while let Some((frame, _)) = p.take_due(now) {
            assert!(echo_bytes(&frame) <= FRAME_MAX, "{}", echo_bytes(&frame));
            sent.extend(frame.clients.keys().map(ClientID::get));
            now += Duration::from_millis(50);
        }
        assert_eq!(sent.len(), 12, "every change is sent, once");
        assert!(p.take_due(now + Duration::from_secs(1)).is_none());
        let first: Vec<u64> = sent.iter().take(3).map(|id| id / 100).collect();
        assert_eq!(first, vec![1, 1, 1], "the oldest changes first: {sent:?}");
        let snapshot = p.snapshot();
        assert!(snapshot.len() >= 2);
        assert!(snapshot.iter().all(|f| echo_bytes(f) <= FRAME_MAX));
        let listed: usize = snapshot.iter().map(|f| f.clients.len()).sum();
        assert_eq!(listed, 12);
    }
}
