//! The web console at `/console`: server-rendered HTML pages over the same store reads and
//! writes as the REST API, signed in with an API key kept in an HttpOnly cookie.
//!
//! The console is one more client of the API's rules: the cookie's key is authenticated by
//! [`crate::auth::authenticate_key`] exactly like a bearer key, and every tenant page goes through
//! [`crate::auth::TenantScope`], so revocation, tenant scoping and "another tenant's resource is
//! 404" are the API's own. Every value written into a page goes through [`html::escape`]; the
//! only script is the embedded `console.js`, allowed by a `script-src 'self'` policy.

mod assets;
mod catalog;
mod chart;
mod deletions;
mod deliveries;
mod endpoint_actions;
mod endpoints;
mod error;
mod events;
mod hooks;
mod html;
mod keys;
mod overview;
mod publish;
mod session;
mod shared_signals;
mod sign_in;
mod sources;
mod tenants;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

/// Every console route, under `/console`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(sign_in::start))
        .route("/console/sign-in", post(sign_in::sign_in))
        .route("/console/sign-out", post(sign_in::sign_out))
        .route("/console/tenants", get(tenants::list).post(tenants::create))
        .route("/console/assets/console.css", get(assets::stylesheet))
        .route("/console/assets/console.js", get(assets::script))
        .route("/console/t/{tenant}", get(overview::page))
        .route("/console/t/{tenant}/events", get(events::list))
        .route("/console/t/{tenant}/events/{event_id}", get(events::detail))
        .route(
            "/console/t/{tenant}/deliveries/{delivery_id}",
            get(deliveries::detail),
        )
        .route(
            "/console/t/{tenant}/deliveries/{delivery_id}/retry",
            post(deliveries::retry),
        )
        .route(
            "/console/t/{tenant}/endpoints",
            get(endpoints::list).post(endpoints::create),
        )
        .route(
            "/console/t/{tenant}/endpoints/{endpoint_id}",
            get(endpoints::detail),
        )
        .route(
            "/console/t/{tenant}/endpoints/{endpoint_id}/{action}",
            post(endpoint_actions::act),
        )
        .route(
            "/console/t/{tenant}/hooks",
            get(hooks::page).post(hooks::create),
        )
        .route("/console/t/{tenant}/hooks/{hook_id}", post(hooks::edit))
        .route("/console/t/{tenant}/catalog", get(catalog::list))
        .route(
            "/console/t/{tenant}/sources",
            get(sources::page).post(sources::create),
        )
        .route(
            "/console/t/{tenant}/catalog/{event_type}",
            get(catalog::detail),
        )
        .route(
            "/console/t/{tenant}/keys",
            get(keys::list).post(keys::create),
        )
        .route(
            "/console/t/{tenant}/keys/{key_id}/revoke",
            get(keys::confirm_revoke).post(keys::revoke),
        )
        .route(
            "/console/t/{tenant}/publish",
            get(publish::form).post(publish::publish),
        )
        .route(
            "/console/t/{tenant}/endpoints/{endpoint_id}/delete",
            get(deletions::confirm_endpoint).post(deletions::delete_endpoint),
        )
        .route(
            "/console/t/{tenant}/hooks/{hook_id}/delete",
            get(deletions::confirm_hook).post(deletions::delete_hook),
        )
        .route(
            "/console/t/{tenant}/sources/{source_id}/rotate",
            get(sources::confirm_rotate).post(sources::rotate),
        )
        .route(
            "/console/t/{tenant}/sources/{source_id}/delete",
            get(sources::confirm_delete).post(sources::delete),
        )
        .route("/console/t/{tenant}/ssf", get(shared_signals::page))
        .route("/console/{*rest}", get(error::not_found))
}
