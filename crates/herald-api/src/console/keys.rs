//! A tenant's API keys, for an admin: made (the key shown once, never again: Herald keeps only
//! its hash), listed by prefix and name, and revoked after a confirmation step. All through the
//! API's own handlers, so the rules are the API's.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::{Admin, TenantScope};
use crate::body::OptionalJsonIn;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{
    Chrome, confirm_page, csrf_field, document, escape, or_dash, see_other, segment,
};
use crate::console::session::ConsoleTenant;
use crate::routes::api_keys::ApiKeyIn;
use crate::state::AppState;

fn chrome(console: &ConsoleTenant) -> Chrome<'_> {
    Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "keys",
    }
}

/// Only an admin key manages keys (the API's rule).
fn require_admin(console: &ConsoleTenant) -> ConsoleResult<(Admin, TenantScope)> {
    if !console.session.is_admin() {
        return Err(ConsoleError::Forbidden(
            "only an admin key manages API keys",
        ));
    }
    Ok((
        Admin,
        TenantScope {
            tenant_id: console.tenant_id.clone(),
        },
    ))
}

fn base(console: &ConsoleTenant) -> String {
    format!("/console/t/{}/keys", segment(&console.tenant_id))
}

pub async fn list(
    State(state): State<AppState>,
    console: ConsoleTenant,
) -> ConsoleResult<Response> {
    let (admin, scope) = require_admin(&console)?;
    let keys = crate::routes::api_keys::list_tenant_keys(State(state), admin, scope)
        .await?
        .0
        .data;
    let base = base(&console);
    let mut rows = String::new();
    for key in &keys {
        rows.push_str(&format!(
            "<tr><td class=\"mono\">{prefix}…</td><td>{name}</td><td>{created}</td><td>{used}</td>\
             <td><a href=\"{base}/{id_segment}/revoke\">Revoke {id}</a></td></tr>",
            prefix = escape(&key.prefix),
            name = or_dash(key.name.as_deref()),
            created = escape(&key.created_at),
            used = or_dash(key.last_used_at.as_deref()),
            id_segment = segment(&key.id),
            id = escape(&key.id),
        ));
    }
    if keys.is_empty() {
        rows.push_str("<tr><td colspan=\"5\" class=\"muted\">No key: make one below.</td></tr>");
    }
    Ok(document(
        StatusCode::OK,
        "API keys",
        Some(&chrome(&console)),
        &format!(
            "<p class=\"hint\">A tenant key reaches this tenant only: give it to the producers that \
             publish events and to the people who use this console for the tenant.</p>\
             <table><thead><tr><th scope=\"col\">key</th><th scope=\"col\">name</th>\
             <th scope=\"col\">created</th><th scope=\"col\">last used</th><th scope=\"col\">revoke</th>\
             </tr></thead><tbody>{rows}</tbody></table><h2>New key</h2>\
             <form class=\"filters\" method=\"post\" action=\"{base}\">{csrf}\
             <div><label for=\"key_name\">What it is for</label><input id=\"key_name\" name=\"name\" maxlength=\"200\" \
             placeholder=\"signup service\"></div><button type=\"submit\">Create key</button></form>",
            csrf = csrf_field(&console.session.csrf),
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub struct CreateKeyForm {
    csrf: Option<String>,
    #[serde(default)]
    name: String,
}

/// Makes a key and shows it this once.
pub async fn create(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Form(form): Form<CreateKeyForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let (admin, scope) = require_admin(&console)?;
    let name = Some(form.name.trim().to_owned()).filter(|name| !name.is_empty());
    let (_, created) = crate::routes::api_keys::create_tenant_key(
        State(state),
        admin,
        scope,
        OptionalJsonIn(ApiKeyIn { name }),
    )
    .await?;
    Ok(document(
        StatusCode::OK,
        &format!("Key {} created", created.0.summary.id),
        Some(&chrome(&console)),
        &format!(
            "<p>The key, shown this once: Herald keeps only its hash. Copy it now.</p>\
             <pre class=\"json\" id=\"secret\">{key}</pre>\
             <p><a href=\"{base}\">Back to the keys</a></p>",
            key = escape(&created.0.key),
            base = base(&console),
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

/// The confirmation step before a key is revoked.
pub async fn confirm_revoke(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let (admin, scope) = require_admin(&console)?;
    let key_id = path_ids.1;
    let keys = crate::routes::api_keys::list_tenant_keys(State(state), admin, scope)
        .await?
        .0
        .data;
    let key = keys
        .iter()
        .find(|key| key.id == key_id)
        .ok_or_else(|| ConsoleError::NotFound(format!("API key {key_id:?}")))?;
    let base = base(&console);
    Ok(confirm_page(
        &chrome(&console),
        &format!("Revoke key {}?", key.id),
        &format!(
            "The key {}… ({}) is refused from its next request on, on every node. This cannot be undone.",
            key.prefix,
            key.name.as_deref().unwrap_or("no name"),
        ),
        &format!("{base}/{}/revoke", segment(&key.id)),
        "Revoke the key",
        &base,
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let (admin, scope) = require_admin(&console)?;
    crate::routes::api_keys::revoke_tenant_key(
        State(state),
        admin,
        scope,
        Path((console.tenant_id.clone(), path_ids.1)),
    )
    .await?;
    Ok(see_other(&base(&console)))
}
