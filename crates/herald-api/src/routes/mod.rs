//! One module per API resource, each exposing its router. A route is declared once, by its
//! handler's `#[utoipa::path]`: `routes!` in each resource's router reads the method and path
//! from it, so the axum router and the OpenAPI document cannot disagree. Routes that are not in
//! the document (health and metrics, the SSF receiver's API, the console) are plain axum routes.

pub mod api_keys;
pub mod blocking;
pub mod catalog;
pub mod deliveries;
pub mod endpoints;
pub mod events;
pub mod health;
pub mod hooks;
pub mod ingest;
pub mod listen;
pub mod outbound;
pub mod sources;
pub mod ssf;
pub mod ssf_streams;
pub mod subjects;
pub mod tenants;

use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::openapi::ApiDoc;
use crate::state::AppState;

/// The API's resources, with the OpenAPI document their handlers describe (`split_for_parts`
/// gives the router and the document).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(tenants::router())
        .merge(api_keys::router())
        .merge(events::router())
        .merge(catalog::router())
        .merge(endpoints::router())
        .merge(deliveries::router())
        .merge(subjects::router())
        .merge(hooks::router())
        .merge(blocking::router())
        .merge(sources::router())
        .merge(ingest::router())
        .merge(listen::router())
        .merge(ssf::router())
        .merge(ssf_streams::router())
}

#[cfg(test)]
mod tests;
