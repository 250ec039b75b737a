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
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use crate::app::App;
use crate::http::error_reply;
use crate::upgrade::Upgrade;

/// `GET /hocuspocus` (a websocket upgrade).
pub fn route(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone {
    let with_app = warp::any().map(move || Arc::clone(&app));
    warp::path!("hocuspocus")
        .and(warp::get())
        .and(crate::accept::remote())
        .and(crate::upgrade::request())
        .and(with_app)
        .map(upgrade)
}

fn upgrade(remote: Option<SocketAddr>, ws: Option<Upgrade>, app: Arc<App>) -> Response {
    if let Some(addr) = remote {
        if !app
            .ip_limits
            .connections
            .allow(&addr.ip(), std::time::Instant::now())
        {
            app.metrics.rate_limited.fetch_add(1, Relaxed);
            return error_reply(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections_from_ip",
                "too many new connections from this address; retry in a minute",
            );
        }
    }
    let Some(ws) = ws else {
        return error_reply(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_required",
            "connect with a websocket client (Hocuspocus protocol)",
        );
    };
    if *app.shutdown.borrow() {
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "server is restarting",
        );
    }
    let Ok(permit) = Arc::clone(&app.connections).try_acquire_owned() else {
        return error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "the server's connection limit is reached; retry later",
        );
    };
    // Tokens come per document, inside the socket: the stock provider sends none with the
    // upgrade. Authentication, sockets per user and document loads happen there.
    let frame_max = app.config.limits.frame_size_max_bytes;
    ws.accept(frame_max, move |socket| {
        socket::serve(socket, app, remote, permit)
    })
}
