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

pub use crate::recorder::DecisionRecorder;
pub use crate::state::{ApiSettings, AppState, CustomTypes, HooksCache};

/// Every route of the API, with its state.
pub fn router(state: AppState) -> Router {
    let (api, document) = routes::router().split_for_parts();
    Router::new()
        .merge(routes::health::router())
        .merge(api)
        .route(
            "/v1/openapi.json",
            get(move || {
                let document = document.clone();
                async move { axum::Json(document) }
            }),
        )
        .merge(console::router())
        .fallback(|| async { error::ApiError::NotFound("route".to_owned()) })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}
