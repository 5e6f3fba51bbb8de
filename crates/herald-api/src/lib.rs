//! Herald's REST API: one axum router per resource under `/v1`, API-key authentication as
//! extractors, request bodies read with a size limit, and a single error type rendered as
//! `application/problem+json`. The only crate that serializes API JSON.

pub mod auth;
pub mod body;
pub mod console;
pub mod error;
pub mod openapi;
pub mod recorder;
pub mod routes;
pub mod state;

use axum::Router;
use axum::routing::get;
use utoipa::OpenApi;

pub use crate::recorder::DecisionRecorder;
pub use crate::state::{ApiSettings, AppState, CustomTypes, HooksCache};

/// Every route of the API, with its state.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(routes::health::router())
        .merge(routes::tenants::router())
        .merge(routes::api_keys::router())
        .merge(routes::events::router())
        .merge(routes::catalog::router())
        .merge(routes::endpoints::router())
        .merge(routes::deliveries::router())
        .merge(routes::subjects::router())
        .merge(routes::hooks::router())
        .merge(routes::blocking::router())
        .merge(routes::sources::router())
        .merge(routes::ingest::router())
        .merge(routes::listen::router())
        .merge(routes::ssf::router())
        .merge(routes::ssf_streams::router())
        .route(
            "/v1/openapi.json",
            get(|| async { axum::Json(openapi::ApiDoc::openapi()) }),
        )
        .merge(console::router())
        .fallback(|| async { error::ApiError::NotFound("route".to_owned()) })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
