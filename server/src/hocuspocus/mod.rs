//! Hocuspocus clients (`@hocuspocus/provider` 4.x, the Tiptap ecosystem) on
//! `ws://host/hocuspocus`: one socket, any number of documents, each authenticated with its own
//! token and attached to its room as its own member.
//!
//! - this file: the endpoint (the upgrade and its per-IP, connection-count and shutdown checks).
//! - `socket.rs`: one socket: frames in, routed by address; the room's messages out, framed
//!   for each document's address ([`crate::dialect::hocuspocus`]); keep-alive; close.
//! - `admit.rs`: a document's token: checking it, opening the room, attaching.
//! - `documents.rs`: the socket's documents by address, and what it may hold before they are
//!   authenticated.
//!
//! Every limit of the y-websocket path applies (frame size, message rate per socket, outbound
//! queue per document, document size, connections per user counted once per socket), plus the
//! pre-authentication bounds of [`crate::config::Limits`] (`preauth_*`).

mod admit;
mod documents;
mod socket;

use std::net::SocketAddr;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::app::App;
use crate::http::{error_reply, new_socket_from, socket_permit};
use crate::upgrade::Upgrade;

/// `GET /hocuspocus` (a websocket upgrade).
pub fn route(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_app = warp::any().map(move || Arc::clone(&app));
    warp::path!("hocuspocus")
        .and(warp::get())
        .and(crate::request::remote())
        .and(crate::upgrade::request())
        .and(with_app)
        .map(upgrade)
}

fn upgrade(remote: Option<SocketAddr>, ws: Option<Upgrade>, app: Arc<App>) -> Response {
    if let Err(refused) = new_socket_from(&app, remote) {
        return refused.into_response();
    }
    let Some(ws) = ws else {
        return error_reply(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            "connect with a websocket client (Hocuspocus protocol)",
        );
    };
    let permit = match socket_permit(&app) {
        Ok(permit) => permit,
        Err(refused) => return refused.into_response(),
    };
    // Tokens come per document, inside the socket: the stock provider sends none with the
    // upgrade. Authentication, sockets per user and document loads happen there.
    let frame_max = app.config.limits.frame_size_max_bytes;
    ws.accept(frame_max, move |socket| {
        socket::serve(socket, app, remote, permit)
    })
}
