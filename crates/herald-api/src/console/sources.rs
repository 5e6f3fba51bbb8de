//! Sources (Authgear, Asgardeo and OneWelcome sending to Herald): each one's ingest path and how
//! its requests went. Read-only; secrets are never shown.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::console::error::ConsoleResult;
use crate::console::html::{Chrome, document, escape, or_dash};
use crate::console::session::ConsoleTenant;
use crate::routes::events::format_time;
use crate::state::AppState;

pub async fn page(
    State(state): State<AppState>,
    console: ConsoleTenant,
) -> ConsoleResult<Response> {
    let sources = state.store.list_sources(&console.tenant_id).await?;
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
             <td>{last_success}</td><td><ul>{errors}</ul></td></tr>",
            id = escape(&source.id),
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
        rows.push_str(
            "<tr><td colspan=\"8\" class=\"muted\">No source: create one with \
             <code>POST /v1/tenants/{tenant}/sources</code>.</td></tr>",
        );
    }
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "sources",
    };
    Ok(document(
        StatusCode::OK,
        "Sources",
        Some(&chrome),
        &format!(
            "<table><thead><tr><th scope=\"col\">source</th><th scope=\"col\">vendor</th>\
             <th scope=\"col\">ingest path</th><th scope=\"col\">accepted</th>\
             <th scope=\"col\">duplicates</th><th scope=\"col\">refused</th>\
             <th scope=\"col\">last success</th><th scope=\"col\">last errors</th></tr></thead>\
             <tbody>{rows}</tbody></table>"
        ),
    ))
}
