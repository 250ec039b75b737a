//! A document's token on a Hocuspocus socket: checked with the same JWT rules as every other
//! door (open development mode accepts any token), then the room is loaded off the socket's
//! task, and once it is ready the document is attached: Authenticated with its scope, the
//! room's first messages (our SyncStep1, the presence), then what the peer sent meanwhile.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use tandem_crdt_model::hocuspocus::{self, Address, Scope};
use tandem_crdt_model::protocol::Decoding;

use super::documents::{Attached, State};
use super::socket::Conn;
use crate::abuse::Slot;
use crate::app::App;
use crate::auth::Role;
use crate::connection::{instant_of_epoch_s, next_member_id, End, Identity};
use crate::metrics::Dialect;
use crate::room::{self, Member, Receives, RoomError};
use crate::rooms::RoomHandle;

/// A room load finished, for the document at `address`.
pub(super) struct Opened {
    address: String,
    room: Result<RoomHandle, RoomError>,
}

/// What a Hocuspocus member takes besides the document: one ack per update (the provider's
/// `unsyncedChanges`), and the other members' stateless messages.
const RECEIVES: Receives = Receives {
    acks: true,
    stateless: true,
};

/// Checks `token` for `doc`: the identity to attach with, or the PermissionDenied reason (a
/// stable code, the same as the HTTP error codes). A user's first document on this socket takes
/// one of the user's socket places (`sockets_per_user_max`), held until the socket closes.
fn check(
    app: &App,
    remote: Option<SocketAddr>,
    token: &str,
    doc: &str,
    user_slots: &mut HashMap<Arc<str>, Slot<Arc<str>>>,
) -> Result<Identity, &'static str> {
    let (principal, role) =
        crate::request::authorize(app, remote, Some(token), doc).map_err(|refusal| refusal.code)?;
    let author: Arc<str> = Arc::from(principal.sub.as_str());
    // In development mode everyone is "anonymous": sockets per user count real identities.
    if app.config.auth.is_some() && !user_slots.contains_key(&author) {
        let limit = app.config.limits.sockets_per_user_max;
        let Some(slot) = app.user_sockets.try_take(Arc::clone(&author), limit) else {
            app.metrics.rate_limited.fetch_add(1, Relaxed);
            return Err("too_many_sockets_for_user");
        };
        user_slots.insert(Arc::clone(&author), slot);
    }
    Ok(Identity {
        author,
        name: principal.name.as_deref().map(Arc::from),
        can_write: role >= Role::Write,
        expires_at: principal.expires_at,
    })
}

impl Conn {
    /// A Token for a document that is not attached.
    pub(super) async fn on_token(
        &mut self,
        address: &Address,
        token: &str,
        provider_version: Option<String>,
    ) -> Result<(), End> {
        if provider_version.is_some() {
            self.v4 = true;
        }
        if matches!(
            self.docs.get(address.as_str()).map(|e| &e.state),
            Some(State::Opening { .. })
        ) {
            return Ok(()); // already accepted; its room is loading
        }
        let checked = check(
            &self.app,
            self.remote,
            token,
            address.doc(),
            &mut self.user_slots,
        );
        let identity = match checked {
            Ok(identity) => identity,
            Err(reason) => {
                tracing::debug!(doc = address.doc(), reason, "hocuspocus token refused");
                self.docs.remove(address.as_str());
                return self.deny(address.as_str(), reason).await;
            }
        };
        if *self.app.shutdown.borrow() {
            self.docs.remove(address.as_str());
            return self.deny(address.as_str(), "shutting_down").await;
        }
        if let Err(refusal) = self.docs.opening(&self.bounds, address, identity) {
            return self.deny(address.as_str(), refusal.reason()).await;
        }
        // Loading may read the store: off this task, so the socket's other documents go on.
        let app = Arc::clone(&self.app);
        let doc = address.doc().to_string();
        let key = address.as_str().to_string();
        let opened = self.opened_tx.clone();
        tokio::spawn(async move {
            let room = app.rooms.open(&app, &doc).await;
            let _ = opened.send(Opened { address: key, room }).await;
        });
        Ok(())
    }

    /// A room is loaded: the document attaches, unless the peer closed it meanwhile.
    pub(super) async fn opened(&mut self, opened: Opened) -> Result<(), End> {
        let Opened { address, room } = opened;
        let identity = match self.docs.get(&address).map(|e| &e.state) {
            Some(State::Opening { identity }) => identity.clone(),
            _ => return Ok(()),
        };
        let room = match room {
            Ok(room) => room,
            Err(err) => {
                tracing::warn!(address = %address.replace('\0', "␀"), cause = %err, "hocuspocus document unavailable");
                self.docs.remove(&address);
                let reason = match err {
                    RoomError::Load { .. } => "document_unavailable",
                    RoomError::Gone => "room_busy",
                };
                return self.deny(&address, reason).await;
            }
        };
        let limits = &self.app.config.limits;
        let id = next_member_id();
        let (mailbox, reader) = room::mailbox(limits.outbound_queue_len_max);
        let member = Member {
            id,
            author: Arc::clone(&identity.author),
            can_write: identity.can_write,
            mailbox,
            receives: RECEIVES,
        };
        if room.join(member).await.is_err() {
            self.docs.remove(&address);
            return self.deny(&address, "room_busy").await;
        }
        // Joining queued the room's first messages; this task alone writes the socket, so the
        // Authenticated written now goes out before them.
        let scope = if identity.can_write {
            Scope::ReadWrite
        } else {
            Scope::ReadOnly
        };
        let authenticated = hocuspocus::encode_authenticated(&address, scope);
        self.outbound.insert(id, reader);
        let attached = Attached {
            member: id,
            room,
            decoding: Decoding {
                frame_size_max_bytes: limits.frame_size_max_bytes,
                nesting_max: limits.nesting_depth_max,
                may_write: identity.can_write,
            },
            expires_at: identity.expires_at.and_then(instant_of_epoch_s),
            _attachment: self.app.metrics.attach(Dialect::Hocuspocus),
            _online: self.app.online.join(
                &self.app.feed,
                // The document part of the address (`name\0session` for a second provider).
                &Arc::from(address.split('\0').next().unwrap_or_default()),
                &identity.author,
                identity.name.as_deref(),
                crate::clock::now_ms(),
            ),
        };
        let held = self.docs.attach(&address, attached);
        self.authenticated_once = true;
        self.write(Bytes::from(authenticated)).await?;
        for frame in held {
            self.forward(&address, frame.message_type, &frame.frame[frame.body_at..])
                .await?;
        }
        Ok(())
    }
}
