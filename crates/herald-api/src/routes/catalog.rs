//! `/v1/tenants/{tenant}/catalog`: the event types a tenant can publish, and its custom types.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use herald_catalog::catalog::{Catalog, CustomTypeSpec, compile_custom_type};
use herald_catalog::definition::EventTypeDef;
use herald_store::models::CustomTypeRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::TenantScope;
use crate::body::JsonIn;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(list, register))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventTypeOut {
    #[serde(rename = "type")]
    pub event_type: String,
    pub taxonomy: String,
    pub blocking: bool,
    pub module: String,
    pub description: String,
    pub subject: Option<String>,
    #[schema(value_type = Object)]
    pub schema: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogOut {
    pub data: Vec<EventTypeOut>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomTypeIn {
    /// Lowercase dotted name, e.g. `acme.badge.awarded`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub description: String,
    pub module: Option<String>,
    /// JSON pointer into the payload to the user the event concerns.
    pub subject: Option<String>,
    /// JSON Schema (draft 2020-12) of the payload.
    #[schema(value_type = Object)]
    pub schema: Value,
    #[schema(value_type = Object)]
    pub example: Option<Value>,
}

impl From<&EventTypeDef> for EventTypeOut {
    fn from(definition: &EventTypeDef) -> Self {
        EventTypeOut {
            event_type: definition.name().to_owned(),
            taxonomy: definition.taxonomy().as_str().to_owned(),
            blocking: definition.is_blocking(),
            module: definition.module().to_owned(),
            description: definition.description().to_owned(),
            subject: definition.subject_pointer().map(str::to_owned),
            schema: definition.schema().clone(),
        }
    }
}

/// Every event type the tenant can publish: the built-in catalog and its custom types.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/catalog", tag = "catalog", responses((status = 200, body = CatalogOut)))]
pub async fn list(
    State(state): State<AppState>,
    scope: TenantScope,
) -> ApiResult<Json<CatalogOut>> {
    let tenant_types = state.custom_types.lookup_for(&scope.tenant_id);
    let mut data: Vec<EventTypeOut> = Catalog::builtin()
        .iter()
        .map(|definition| EventTypeOut::from(definition.as_ref()))
        .collect();
    if let Some(custom) = tenant_types.custom() {
        data.extend(
            custom
                .iter()
                .map(|definition| EventTypeOut::from(definition.as_ref())),
        );
    }
    Ok(Json(CatalogOut { data }))
}

/// Register a custom event type with a JSON Schema of its payload.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/catalog", tag = "catalog", request_body = CustomTypeIn,
    responses((status = 201, body = EventTypeOut), (status = 409), (status = 422)))]
pub async fn register(
    State(state): State<AppState>,
    scope: TenantScope,
    JsonIn(input): JsonIn<CustomTypeIn>,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    let spec = CustomTypeSpec {
        name: input.event_type,
        description: input.description,
        module: input.module,
        subject_pointer: input.subject,
        schema: input.schema,
        example: input.example,
    };
    let definition = compile_custom_type(spec.clone())
        .map_err(|error| ApiError::invalid("", error.to_string()))?;
    let out = EventTypeOut::from(&definition);
    state
        .store
        .create_custom_type(CustomTypeRecord {
            tenant_id: scope.tenant_id.clone(),
            name: spec.name,
            description: spec.description,
            module: spec.module,
            subject_pointer: spec.subject_pointer,
            schema: spec.schema,
            example: spec.example,
            created_at: state.clock.now(),
        })
        .await?;
    state.custom_types.add(&scope.tenant_id, definition)?;
    Ok((StatusCode::CREATED, Json(out)))
}
