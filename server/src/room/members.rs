//! Members: joining, leaving, what one member sends, and delivering what the room sends.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use tandem_crdt_model::doc::encode_diff;
use tandem_crdt_model::protocol::{ClientUpdate, Inbound};
use tokio::time::Instant;
use yrs::updates::encoder::Encode;
use yrs::{ReadTxn, Transact};

use super::outgoing::{Dest, Outbox};
use super::{Attached, Detach, Member, MemberId, Outgoing, Room, READ_ONLY};
use crate::abuse::TokenBucket;

impl Room {
    pub(super) fn join(&mut self, member: Member, out: &mut Outbox) {
        let id = member.id;
        // The room opens with its state vector, asking for what the member has that we lack,
        // then the presence of everyone already here.
        out.to(id, Outgoing::SyncStep1(self.doc.transact().state_vector()));
        for states in self.presence.snapshot() {
            out.to(id, Outgoing::Awareness(Bytes::from(states.encode_v1())));
        }
        self.members.insert(
            id,
            Attached {
                member,
                resync_asked_at: None,
                sync_requests: TokenBucket::per_minute(
                    self.app.config.limits.sync_requests_per_min,
                    self.app.config.limits.sync_requests_burst,
                    std::time::Instant::now(),
                ),
            },
        );
    }

    pub(super) fn leave(&mut self, id: MemberId) {
        if self.members.remove(&id).is_some() {
            self.presence.leave(id);
        }
    }

    /// Lets one member go, telling its connection why.
    pub(super) fn detach(&mut self, id: MemberId, why: Detach) {
        if let Some(attached) = self.members.get(&id) {
            attached.member.mailbox.detach(why);
        }
        self.leave(id);
    }

    pub(super) fn detach_all(&mut self, why: Detach) {
        for (_, attached) in self.members.drain() {
            attached.member.mailbox.detach(why);
        }
        self.member_count.store(0, Relaxed);
    }

    /// Handles one message of a member; true when it changed the document.
    pub(super) fn handle_message(
        &mut self,
        id: MemberId,
        message: Inbound,
        out: &mut Outbox,
    ) -> Result<bool, String> {
        let Some(attached) = self.members.get_mut(&id) else {
            return Ok(false); // sent before a detach the room already handled
        };
        let (author, can_write) = (
            Arc::clone(&attached.member.author),
            attached.member.can_write,
        );
        self.app.metrics.messages_in.fetch_add(1, Relaxed);
        match message {
            Inbound::SyncStep1(_) | Inbound::QueryAwareness
                if !attached
                    .sync_requests
                    .try_take(1, std::time::Instant::now()) =>
            {
                self.app.metrics.sync_requests_dropped.fetch_add(1, Relaxed);
                tracing::debug!(doc = %self.name, member = id, "sync request over budget, not answered");
                Ok(false)
            }
            Inbound::SyncStep1(sv) => {
                match encode_diff(&self.doc, &sv) {
                    Some(diff) => out.to(id, Outgoing::SyncStep2(Bytes::from(diff))),
                    None => {
                        tracing::error!(doc = %self.name, member = id, "document does not encode");
                        self.detach(id, Detach::StorageFailure);
                    }
                }
                Ok(false)
            }
            Inbound::Update(update) if can_write => {
                self.apply_member_update(id, &author, update, out)
            }
            Inbound::Update(ClientUpdate { shape, .. }) | Inbound::ReadOnlyUpdate(shape) => {
                // A reader's SyncStep2 repeats what we hold (its whole delete set, at least):
                // only an update that would change the document is an edit to refuse.
                let refused = self.would_change(&shape);
                if refused {
                    self.app.metrics.updates_refused.fetch_add(1, Relaxed);
                    out.to(id, Outgoing::PermissionDenied(READ_ONLY));
                }
                self.ack(id, !refused, out);
                Ok(false)
            }
            Inbound::Awareness(update) => {
                if let Some(stale) = self.presence.apply_local(id, &author, update) {
                    out.to(id, Outgoing::Awareness(Bytes::from(stale.encode_v1())));
                    out.to(id, Outgoing::Reannounce);
                }
                Ok(false)
            }
            Inbound::QueryAwareness => {
                for states in self.presence.snapshot() {
                    out.to(id, Outgoing::Awareness(Bytes::from(states.encode_v1())));
                }
                Ok(false)
            }
            Inbound::Stateless(payload)
                if payload.len() > self.app.config.limits.stateless_max_bytes =>
            {
                self.app.metrics.stateless_dropped.fetch_add(1, Relaxed);
                tracing::debug!(doc = %self.name, member = id, bytes = payload.len(), "stateless message over --stateless-max-bytes, not relayed");
                Ok(false)
            }
            Inbound::Stateless(payload) => {
                out.stateless_peers(id, Arc::from(payload));
                Ok(false)
            }
            Inbound::Auth | Inbound::Unknown(_) => Ok(false),
        }
    }

    /// Acknowledges one update or SyncStep2 of `id`, if it asked for acks.
    pub(super) fn ack(&self, id: MemberId, applied: bool, out: &mut Outbox) {
        if self
            .members
            .get(&id)
            .is_some_and(|attached| attached.member.receives.acks)
        {
            out.to(id, Outgoing::Ack { applied });
        }
    }

    /// Broadcasts the presence changes coalesced since the last broadcast, if they are due, and
    /// shares this node's part of them with the other nodes.
    pub(super) fn broadcast_presence(&mut self, out: &mut Outbox) {
        let Some((all, local)) = self.presence.take_due(Instant::now()) else {
            return;
        };
        out.all(Outgoing::Awareness(Bytes::from(all.encode_v1())));
        if let (Some(cluster), Some(local)) = (&self.app.cluster, local) {
            cluster.publish_awareness(&self.name, &local.encode_v1());
        }
    }

    /// Queues the outbox to the members. A member whose queue is full is detached as a slow
    /// consumer; its departure reaches the others with the next presence broadcast.
    pub(super) fn deliver(&mut self, out: Outbox) {
        let mut overflowed = Vec::new();
        for (dest, message) in out.into_messages() {
            let mut send = |attached: &Attached| {
                if attached.member.mailbox.push(message.clone()).is_err() {
                    overflowed.push(attached.member.id);
                }
            };
            match dest {
                Dest::One(id) => {
                    if let Some(attached) = self.members.get(&id) {
                        send(attached);
                    }
                }
                Dest::All => self.members.values().for_each(&mut send),
                Dest::StatelessPeers { from } => self
                    .members
                    .values()
                    .filter(|a| a.member.receives.stateless && a.member.id != from)
                    .for_each(&mut send),
            }
        }
        overflowed.sort_unstable();
        overflowed.dedup();
        for id in overflowed {
            tracing::warn!(doc = %self.name, member = id, "detaching slow consumer");
            self.app.metrics.slow_consumers_closed.fetch_add(1, Relaxed);
            self.detach(id, Detach::SlowConsumer);
        }
    }
}
