//! Dialects: how a kind of client frames the room's typed messages on its socket. A room never
//! sees a frame; a connection decodes frames into typed messages for the room
//! (`tandem_crdt_model::protocol::Inbound`) and frames what the room sends back
//! ([`crate::room::Message`], whose frame each dialect caches in its own slot, so a broadcast
//! is encoded once per dialect, not once per socket).
//!
//! - [`y_websocket`]: the `y-websocket` provider's protocol, one document per socket.
//! - [`hocuspocus`]: the `@hocuspocus/provider` protocol, many documents per socket, each frame
//!   addressed to one (the connection is `crate::hocuspocus`).

pub mod hocuspocus;
pub mod y_websocket;
