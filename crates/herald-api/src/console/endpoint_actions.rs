//! What the endpoint page's forms do: pause, resume and enable, replay, edit, rotate the secret
//! and send a test event. Changes that have API rules (a new URL, a new secret, publishing) go
//! through the API's own handlers.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_store::models::ReplaySelector;
use serde::Deserialize;

use crate::auth::TenantScope;
use crate::body::{JsonIn, OptionalJsonIn};
use crate::console::endpoints::{find, secret_page, split_filters};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::segment;
use crate::console::session::ConsoleTenant;
use crate::routes::endpoints::{EndpointPatchIn, RotateIn};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    csrf: Option<String>,
    event_id: Option<String>,
    event_type: Option<String>,
    url: Option<String>,
    filters: Option<String>,
    description: Option<String>,
}

/// One change to an endpoint, from a console form; back to the endpoint's page afterwards.
pub async fn act(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let (_, endpoint_id, action) = path_ids;
    let mut endpoint = find(&state, &console.tenant_id, &endpoint_id).await?;
    let now = state.clock.now();
    match action.as_str() {
        "pause" | "resume" | "enable" => {
            match action.as_str() {
                "pause" => endpoint.paused = true,
                "resume" => endpoint.paused = false,
                _ => {
                    // As the API's PATCH does: enabling starts a fresh run, failures forgotten.
                    if !endpoint.enabled {
                        endpoint.disabled_reason = None;
                        endpoint.failing_since = None;
                    }
                    endpoint.enabled = true;
                }
            }
            endpoint.updated_at = now;
            state.store.update_endpoint(endpoint).await?;
        }
        "replay-failed" | "replay-event" => {
            let selector = if action == "replay-failed" {
                ReplaySelector::Failed
            } else {
                let event_id = form
                    .event_id
                    .map(|text| text.trim().to_owned())
                    .filter(|text| !text.is_empty())
                    .ok_or_else(|| {
                        ConsoleError::Invalid("give the id of the event to replay".to_owned())
                    })?;
                ReplaySelector::Event(event_id)
            };
            state
                .store
                .replay(&console.tenant_id, &endpoint_id, &selector, now)
                .await?;
        }
        "edit" => {
            // Through the API's own handler, so a new URL passes the same SSRF rules.
            let patch = EndpointPatchIn {
                url: form.url.map(|url| url.trim().to_owned()),
                filters: form.filters.as_deref().map(split_filters),
                format: None,
                ordering: None,
                retry_schedule_s: None,
                timeout_ms: None,
                max_concurrency: None,
                rate_limit_per_s: None,
                headers: None,
                enabled: None,
                paused: None,
                description: form.description.map(|text| text.trim().to_owned()),
                signature_scheme: None,
            };
            let scope = TenantScope {
                tenant_id: console.tenant_id.clone(),
            };
            let _updated = crate::routes::endpoints::update(
                State(state.clone()),
                scope,
                Path((console.tenant_id.clone(), endpoint_id.clone())),
                JsonIn(patch),
            )
            .await?;
        }
        "rotate-secret" => {
            let scope = TenantScope {
                tenant_id: console.tenant_id.clone(),
            };
            let rotated = crate::routes::endpoints::rotate_secret(
                State(state),
                scope,
                Path((console.tenant_id.clone(), endpoint_id.clone())),
                OptionalJsonIn(RotateIn { secret: None }),
            )
            .await?;
            return Ok(secret_page(
                &console,
                &endpoint_id,
                &format!("New secret for {endpoint_id}"),
                &rotated.0.secret,
            ));
        }
        "send-test" => {
            let event_type = form.event_type.unwrap_or_default();
            let definition = crate::console::catalog::tenant_types(&state, &console.tenant_id)
                .into_iter()
                .find(|definition| definition.name() == event_type)
                .ok_or_else(|| ConsoleError::Invalid(format!("no event type {event_type:?}")))?;
            let payload = definition
                .example()
                .cloned()
                .ok_or_else(|| ConsoleError::Invalid(format!("{event_type:?} has no example")))?;
            // The canonical form without an id: Herald gives the test event a new one.
            let document = serde_json::json!({"type": event_type, "payload": payload});
            let published = crate::routes::events::publish_documents(
                &state,
                &console.tenant_id,
                vec![(document, String::new())],
                None,
            )
            .await?;
            let event_id = published
                .first()
                .map(|outcome| outcome.id.clone())
                .unwrap_or_default();
            let location = format!(
                "/console/t/{}/events/{}",
                segment(&console.tenant_id),
                segment(&event_id)
            );
            return Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response());
        }
        _ => return Err(ConsoleError::NotFound("action".to_owned())),
    }
    // Resumed, enabled or replayed work may be due now.
    state.delivery_wakeup.notify_one();
    let location = format!(
        "/console/t/{}/endpoints/{}",
        segment(&console.tenant_id),
        segment(&endpoint_id)
    );
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}
