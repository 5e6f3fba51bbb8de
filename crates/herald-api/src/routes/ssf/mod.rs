//! OpenID Shared Signals (issue 14): Herald as an SSF transmitter of CAEP and RISC events.
//!
//! Three audiences, three kinds of route:
//! - the tenant (its API key) manages signing keys and receivers (`/v1/tenants/{tenant}/ssf/...`);
//! - anyone reads the transmitter metadata (`/.well-known/ssf-configuration/ssf/{tenant}`, SSF 1.0
//!   §7.2.1) and the JWKS (`/ssf/{tenant}/jwks.json`);
//! - a receiver, with the bearer token the tenant issued it, manages its streams and polls them
//!   (`/ssf/{tenant}/streams...`, SSF 1.0 §8), as the metadata document describes.
//!
//! Published events reach streams through the SSF worker (`herald_delivery::ssf`), which follows
//! each stream's cursor on the tenant's event log, signs its SETs and queues them in the same
//! transaction that moves the cursor; a publish only wakes it. A poll stream's receiver reads the
//! queue (RFC 8936); a push stream's queue is pushed by the worker (RFC 8935), whose attempts the
//! tenant lists here.
//!
//! One file per part: `keys` and `receivers` (the tenant's API), `metadata` (public), `caller`
//! (how a receiver's request is authenticated and names its stream), `streams`, `status`,
//! `subjects` and `verify` (the receiver's stream management), `poll` and `attempts`.

mod attempts;
mod caller;
mod keys;
mod metadata;
mod poll;
mod receivers;
mod status;
mod streams;
mod subjects;
mod verify;

use axum::routing::{get, post};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

pub use poll::long_polls_waiting;

/// The tenant's routes are in the OpenAPI document; the receiver's (SSF 1.0 §8) and the public
/// metadata are not: the transmitter metadata document describes them to receivers.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(keys::list_keys, keys::rotate_key))
        .routes(routes!(keys::retire_key))
        .routes(routes!(
            receivers::list_receivers,
            receivers::create_receiver
        ))
        .routes(routes!(attempts::list_push_attempts))
        .route(
            "/.well-known/ssf-configuration/ssf/{tenant}",
            get(metadata::configuration),
        )
        .route("/ssf/{tenant}/jwks.json", get(metadata::jwks))
        .route(
            "/ssf/{tenant}/streams",
            get(streams::read_streams)
                .post(streams::create_stream)
                .patch(streams::update_stream)
                .put(streams::replace_stream)
                .delete(streams::delete_stream),
        )
        .route(
            "/ssf/{tenant}/streams/status",
            get(status::read_status).post(status::update_status),
        )
        .route(
            "/ssf/{tenant}/streams/subjects/add",
            post(subjects::add_subject),
        )
        .route(
            "/ssf/{tenant}/streams/subjects/remove",
            post(subjects::remove_subject),
        )
        .route("/ssf/{tenant}/streams/verify", post(verify::verify))
        .route("/ssf/{tenant}/streams/poll/{stream_id}", post(poll::poll))
}
