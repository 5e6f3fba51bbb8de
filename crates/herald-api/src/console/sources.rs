//! Sources (Authgear, Asgardeo and OneWelcome sending to Herald): each one's ingest path and how
//! its requests went; made (the secret shown once), given a new secret, and deleted, through the
//! API's own handlers. A stored secret is never shown again.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::auth::TenantScope;
use crate::body::{JsonIn, OptionalJsonIn};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{
    Chrome, confirm_page, csrf_field, document, escape, or_dash, see_other, segment,
};
use crate::console::session::ConsoleTenant;
use crate::routes::events::format_time;
use crate::routes::sources::{RotateSourceSecretIn, SourceIn, SourceOut};
use crate::state::AppState;

fn chrome(console: &ConsoleTenant) -> Chrome<'_> {
    Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "sources",
    }
}

fn scope(console: &ConsoleTenant) -> TenantScope {
    TenantScope {
        tenant_id: console.tenant_id.clone(),
    }
}

fn base(console: &ConsoleTenant) -> String {
    format!("/console/t/{}/sources", segment(&console.tenant_id))
}

pub async fn page(
    State(state): State<AppState>,
    console: ConsoleTenant,
) -> ConsoleResult<Response> {
    let sources = state.store.list_sources(&console.tenant_id).await?;
    let base = base(&console);
    let mut rows = String::new();
    for source in &sources {
        let errors: Vec<String> = source
            .last_errors
            .iter()
            .map(|error| {
                format!(
                    "<li>{at} · {status} · {detail}</li>",
                    at = escape(&format_time(error.at)),
                    status = error.status,
                    detail = escape(&error.detail),
                )
            })
            .collect();
        rows.push_str(&format!(
            "<tr><td>{id}<br><span class=\"muted\">{name}</span></td><td>{kind}</td>\
             <td class=\"mono\">/v1/ingest/{id}</td><td class=\"num\">{accepted}</td>\
             <td class=\"num\">{duplicates}</td><td class=\"num\">{refused}</td>\
             <td>{last_success}</td><td><ul>{errors}</ul></td>\
             <td><a href=\"{base}/{id_segment}/rotate\">New secret</a> \
             <a href=\"{base}/{id_segment}/delete\">Delete</a></td></tr>",
            id = escape(&source.id),
            id_segment = segment(&source.id),
            name = or_dash(source.name.as_deref()),
            kind = escape(source.kind.as_str()),
            accepted = source.n_accepted,
            duplicates = source.n_duplicates,
            refused = source.n_refused,
            last_success = or_dash(source.last_success_at.map(format_time).as_deref()),
            errors = errors.join(""),
        ));
    }
    if sources.is_empty() {
        rows.push_str("<tr><td colspan=\"9\" class=\"muted\">No source: add one below.</td></tr>");
    }
    Ok(document(
        StatusCode::OK,
        "Sources",
        Some(&chrome(&console)),
        &format!(
            "<table><thead><tr><th scope=\"col\">source</th><th scope=\"col\">vendor</th>\
             <th scope=\"col\">ingest path</th><th scope=\"col\">accepted</th>\
             <th scope=\"col\">duplicates</th><th scope=\"col\">refused</th>\
             <th scope=\"col\">last success</th><th scope=\"col\">last errors</th>\
             <th scope=\"col\">manage</th></tr></thead><tbody>{rows}</tbody></table>\
             <h2>New source</h2>\
             <form class=\"filters\" method=\"post\" action=\"{base}\">{csrf}\
             <div><label for=\"source_kind\">Vendor</label><select id=\"source_kind\" name=\"kind\">\
             <option value=\"authgear\">Authgear</option><option value=\"asgardeo\">Asgardeo</option>\
             <option value=\"onewelcome\">OneWelcome</option></select></div>\
             <div><label for=\"source_name\">Name</label><input id=\"source_name\" name=\"name\"></div>\
             <div><label for=\"source_topics\">Asgardeo: WebSub topics, comma-separated</label>\
             <input id=\"source_topics\" name=\"accepted_topics\" size=\"30\"></div>\
             <div><label for=\"source_header\">OneWelcome: token header</label>\
             <input id=\"source_header\" name=\"header_name\" placeholder=\"x-exporter-token\"></div>\
             <div><label for=\"source_username\">or basic-auth username</label>\
             <input id=\"source_username\" name=\"username\"></div>\
             <button type=\"submit\">Create source</button></form>\
             <p class=\"hint\">Herald generates the secret and shows it once: configure it in the \
             vendor with the ingest URL.</p>",
            csrf = csrf_field(&console.session.csrf),
        ),
    ))
}

/// The page that shows a source's secret, once.
fn secret_page(console: &ConsoleTenant, title: &str, source: &SourceOut) -> Response {
    document(
        StatusCode::OK,
        title,
        Some(&chrome(console)),
        &format!(
            "<p>The source's secret, shown this once: configure it in the vendor now, with the \
             ingest path <code>{path}</code> after Herald's address.</p>\
             <pre class=\"json\" id=\"secret\">{secret}</pre>\
             <p><a href=\"{base}\">Back to the sources</a></p>",
            path = escape(&source.ingest_path),
            secret = escape(source.secret.as_deref().unwrap_or_default()),
            base = base(console),
        ),
    )
}

#[derive(Debug, Deserialize)]
pub struct CreateSourceForm {
    csrf: Option<String>,
    kind: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    accepted_topics: String,
    #[serde(default)]
    header_name: String,
    #[serde(default)]
    username: String,
}

/// A form field left empty is a setting not given.
fn given(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|text| !text.is_empty())
}

pub async fn create(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Form(form): Form<CreateSourceForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let topics: Vec<String> = form.accepted_topics.split(',').filter_map(given).collect();
    let input = SourceIn {
        kind: form.kind.trim().to_owned(),
        name: given(&form.name),
        secret: None,
        header_name: given(&form.header_name),
        username: given(&form.username),
        accepted_topics: Some(topics).filter(|topics| !topics.is_empty()),
    };
    let (_, created) =
        crate::routes::sources::create(State(state), scope(&console), JsonIn(input)).await?;
    Ok(secret_page(
        &console,
        &format!("Source {} created", created.0.id),
        &created.0,
    ))
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

async fn find(
    state: &AppState,
    console: &ConsoleTenant,
    source_id: &str,
) -> ConsoleResult<herald_store::models::SourceRecord> {
    state
        .store
        .get_source(&console.tenant_id, source_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("source {source_id:?}")))
}

pub async fn confirm_rotate(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let source = find(&state, &console, &path_ids.1).await?;
    let base = base(&console);
    Ok(confirm_page(
        &chrome(&console),
        &format!("A new secret for {}?", source.id),
        "The current secret stops working at once (a vendor signs with one secret at a time): \
         requests the vendor sends with it are refused until you configure the new one there.",
        &format!("{base}/{}/rotate", segment(&source.id)),
        "Make a new secret",
        &base,
    ))
}

pub async fn rotate(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let source_id = path_ids.1;
    let rotated = crate::routes::sources::rotate_secret(
        State(state),
        scope(&console),
        Path((console.tenant_id.clone(), source_id.clone())),
        OptionalJsonIn(RotateSourceSecretIn { secret: None }),
    )
    .await?;
    Ok(secret_page(
        &console,
        &format!("New secret for {source_id}"),
        &rotated.0,
    ))
}

pub async fn confirm_delete(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let source = find(&state, &console, &path_ids.1).await?;
    let base = base(&console);
    Ok(confirm_page(
        &chrome(&console),
        &format!("Delete source {}?", source.id),
        &format!(
            "Its ingest path /v1/ingest/{} stops accepting requests; the events it brought stay \
             in the log. This cannot be undone.",
            source.id
        ),
        &format!("{base}/{}/delete", segment(&source.id)),
        "Delete the source",
        &base,
    ))
}

pub async fn delete(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    crate::routes::sources::delete(
        State(state),
        scope(&console),
        Path((console.tenant_id.clone(), path_ids.1)),
    )
    .await?;
    Ok(see_other(&base(&console)))
}
