//! An admin's tenants: the list to pick one from, and a new tenant made in place, through the
//! API's own handler (its checks on the id and the name).

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::Admin;
use crate::body::JsonIn;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{csrf_field, document, escape, see_other, segment};
use crate::console::session::ConsoleSession;
use crate::console::sign_in::home;
use crate::routes::tenants::TenantIn;
use crate::state::AppState;

/// Only an admin key manages tenants (the API's rule); anyone else goes back to their tenant.
fn require_admin(session: &ConsoleSession) -> ConsoleResult<Admin> {
    if session.is_admin() {
        Ok(Admin)
    } else {
        Err(ConsoleError::Forbidden("only an admin key manages tenants"))
    }
}

/// An admin's list of tenants to open, and the form that adds one.
pub async fn list(
    State(state): State<AppState>,
    session: ConsoleSession,
) -> ConsoleResult<Response> {
    if !session.is_admin() {
        return Ok(see_other(&home(&session)));
    }
    let tenants = state.store.list_tenants().await?;
    let mut rows = String::new();
    for tenant in &tenants {
        rows.push_str(&format!(
            "<li><a href=\"/console/t/{}\">{}</a> <span class=\"muted\">{}</span></li>",
            segment(&tenant.id),
            escape(&tenant.id),
            escape(&tenant.name),
        ));
    }
    if tenants.is_empty() {
        rows.push_str("<li>No tenant yet: create the first one below.</li>");
    }
    let csrf = csrf_field(&session.csrf);
    Ok(document(
        StatusCode::OK,
        "Tenants",
        None,
        &format!(
            "<ul class=\"list\">{rows}</ul><h2>New tenant</h2>\
             <form class=\"filters\" method=\"post\" action=\"/console/tenants\">{csrf}\
             <div><label for=\"tenant_id\">Id (a-z, 0-9, - and _; used in URLs)</label>\
             <input id=\"tenant_id\" name=\"id\" required maxlength=\"64\"></div>\
             <div><label for=\"tenant_name\">Name</label><input id=\"tenant_name\" name=\"name\" required maxlength=\"200\"></div>\
             <button type=\"submit\">Create tenant</button></form>\
             <form method=\"post\" action=\"/console/sign-out\">{csrf}\
             <button type=\"submit\" class=\"secondary\">Sign out</button></form>"
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub struct CreateTenantForm {
    csrf: Option<String>,
    id: String,
    name: String,
}

/// Creates a tenant and opens it.
pub async fn create(
    State(state): State<AppState>,
    session: ConsoleSession,
    Form(form): Form<CreateTenantForm>,
) -> ConsoleResult<Response> {
    session.check_csrf(form.csrf.as_deref())?;
    let admin = require_admin(&session)?;
    let input = TenantIn {
        id: form.id.trim().to_owned(),
        name: form.name.trim().to_owned(),
        issuer: None,
    };
    let (_, created) = crate::routes::tenants::create(State(state), admin, JsonIn(input)).await?;
    Ok(see_other(&format!("/console/t/{}", segment(&created.0.id))))
}
