//! Cluster mode: updates and presence from the other nodes.

use bytes::Bytes;
use tandem_crdt_model::doc::{apply_guarded, has_gap};
use tandem_crdt_model::protocol;
use tandem_storage::UpdateRecord;
use yrs::sync::awareness::AwarenessUpdate;
use yrs::updates::decoder::Decode;
use yrs::updates::encoder::Encode;

use super::outgoing::Outbox;
use super::Room;

impl Room {
    /// Applies updates other nodes appended: they are durable already, so they are only
    /// applied and broadcast. One that does not fit (a gap, or yrs refusing it) means this
    /// node's copy is behind what the stream says: the document is rebuilt from the store, which
    /// holds these records too. True when something was applied.
    pub(super) fn apply_remote(&mut self, records: Vec<UpdateRecord>, out: &mut Outbox) -> bool {
        let nesting_max = self.app.config.limits.nesting_depth_max;
        let mut applied = false;
        for record in records {
            let Ok((update, shape)) = protocol::decode_update(&record.update, nesting_max) else {
                tracing::warn!(doc = %self.name, seq = record.seq, "remote update does not decode; skipped");
                continue;
            };
            if has_gap(&self.doc, &shape.requires) {
                self.reload_needed = true;
                return applied;
            }
            let depth_max = nesting_max.saturating_sub(shape.type_depth);
            self.remote_change(&record.author);
            match apply_guarded(&self.doc, update, depth_max) {
                Ok(true) => {
                    let size = u64::try_from(record.update.len()).unwrap_or(u64::MAX);
                    self.doc_bytes = self.doc_bytes.saturating_add(size);
                    self.tail.updates += 1;
                    self.tail.bytes = self.tail.bytes.saturating_add(size);
                    out.update(Bytes::from(record.update));
                    applied = true;
                    // Another node bound its writers (and maybe the creator) in the store.
                    self.authors_stale = true;
                }
                Ok(false) => {}
                Err(_) => {
                    self.reload_needed = true;
                    return applied;
                }
            }
        }
        applied
    }

    /// Presence from another node's sockets: applied and passed to ours.
    pub(super) fn apply_remote_awareness(&mut self, node: &str, raw: &[u8]) {
        if let Ok(update) = AwarenessUpdate::decode_v1(raw) {
            self.presence.apply_remote(node, update);
        }
    }

    /// Sends the presence of this node's members to the other nodes (a room opened there).
    pub(super) fn republish_awareness(&self) {
        if let (Some(cluster), Some(update)) = (&self.app.cluster, self.presence.local_states()) {
            cluster.publish_awareness(&self.name, &update.encode_v1());
        }
    }
}
