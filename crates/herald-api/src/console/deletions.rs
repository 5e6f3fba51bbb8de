//! Deleting an endpoint or a blocking hook: a confirmation page first (a link, so nothing is
//! lost to a stray click), then a CSRF-checked POST through the API's own handler.

use axum::Form;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use crate::auth::TenantScope;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{Chrome, confirm_page, see_other, segment};
use crate::console::session::ConsoleTenant;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

fn chrome<'a>(console: &'a ConsoleTenant, section: &'a str) -> Chrome<'a> {
    Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section,
    }
}

fn scope(console: &ConsoleTenant) -> TenantScope {
    TenantScope {
        tenant_id: console.tenant_id.clone(),
    }
}

pub async fn confirm_endpoint(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let endpoint_id = path_ids.1;
    let endpoint = state
        .store
        .get_endpoint(&console.tenant_id, &endpoint_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("endpoint {endpoint_id:?}")))?;
    let page = format!(
        "/console/t/{}/endpoints/{}",
        segment(&console.tenant_id),
        segment(endpoint.id.as_str())
    );
    Ok(confirm_page(
        &chrome(&console, "endpoints"),
        &format!("Delete endpoint {}?", endpoint.id),
        &format!(
            "{} gets nothing more, and its deliveries and their attempts are removed with it. \
             This cannot be undone.",
            endpoint.url
        ),
        &format!("{page}/delete"),
        "Delete the endpoint",
        &page,
    ))
}

pub async fn delete_endpoint(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    crate::routes::endpoints::delete(
        State(state),
        scope(&console),
        Path((console.tenant_id.clone(), path_ids.1)),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/t/{}/endpoints",
        segment(&console.tenant_id)
    )))
}

pub async fn confirm_hook(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let hook_id = path_ids.1;
    let hook = state
        .store
        .get_hook(&console.tenant_id, &hook_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("hook {hook_id:?}")))?;
    let hooks_page = format!("/console/t/{}/hooks", segment(&console.tenant_id));
    Ok(confirm_page(
        &chrome(&console, "hooks"),
        &format!("Delete hook {}?", hook.id),
        &format!(
            "{} is no longer asked about {} (its place in the chain goes to the next hook). \
             The decision log keeps its past answers. This cannot be undone.",
            hook.url, hook.event_type
        ),
        &format!("{hooks_page}/{}/delete", segment(hook.id.as_str())),
        "Delete the hook",
        &hooks_page,
    ))
}

pub async fn delete_hook(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    crate::routes::hooks::delete(
        State(state),
        scope(&console),
        Path((console.tenant_id.clone(), path_ids.1)),
    )
    .await?;
    Ok(see_other(&format!(
        "/console/t/{}/hooks",
        segment(&console.tenant_id)
    )))
}
