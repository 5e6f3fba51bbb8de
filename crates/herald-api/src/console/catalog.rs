//! The catalog: search every event type the tenant can publish (built-in and its own), and one
//! type's schema and example envelope.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald_catalog::catalog::Catalog;
use herald_catalog::definition::EventTypeDef;
use herald_catalog::envelope::example_envelope;
use serde::Deserialize;

use crate::body::QueryIn;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{Chrome, document, escape, json_block, segment};
use crate::console::session::ConsoleTenant;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
}

/// Every type the tenant can publish: the built-in catalog, then its custom types.
pub fn tenant_types(state: &AppState, tenant_id: &str) -> Vec<Arc<EventTypeDef>> {
    let mut types: Vec<Arc<EventTypeDef>> = Catalog::builtin().iter().cloned().collect();
    if let Some(custom) = state.custom_types.lookup_for(tenant_id).custom() {
        types.extend(custom.iter().cloned());
    }
    types
}

pub async fn list(
    State(state): State<AppState>,
    console: ConsoleTenant,
    QueryIn(query): QueryIn<SearchQuery>,
) -> ConsoleResult<Response> {
    let needle = query.q.as_deref().unwrap_or_default().trim().to_lowercase();
    let types = tenant_types(&state, &console.tenant_id);
    let n_all = types.len();
    let tenant = segment(&console.tenant_id);
    let mut rows = String::new();
    let mut n_found = 0;
    for definition in types.iter().filter(|definition| {
        needle.is_empty()
            || definition.name().to_lowercase().contains(&needle)
            || definition.description().to_lowercase().contains(&needle)
            || definition.module().to_lowercase().contains(&needle)
    }) {
        n_found += 1;
        rows.push_str(&format!(
            "<tr><td><a href=\"/console/t/{tenant}/catalog/{name_segment}\"><code>{name}</code></a></td>\
             <td>{taxonomy}</td><td>{module}</td><td>{kind}</td><td>{description}</td></tr>",
            name_segment = segment(definition.name()),
            name = escape(definition.name()),
            taxonomy = escape(definition.taxonomy().as_str()),
            module = escape(definition.module()),
            kind = if definition.is_blocking() { "blocking" } else { "event" },
            description = escape(definition.description()),
        ));
    }
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "catalog",
    };
    Ok(document(
        StatusCode::OK,
        "Catalog",
        Some(&chrome),
        &format!(
            "<form class=\"filters\" method=\"get\" action=\"/console/t/{tenant}/catalog\" role=\"search\">\
             <div><label for=\"q\">Search types</label><input id=\"q\" name=\"q\" value=\"{q}\" \
             placeholder=\"password, user.created, webauthn\"></div><button type=\"submit\">Search</button></form>\
             <p class=\"muted\">{n_found} of {n_all} types</p>\
             <table><thead><tr><th scope=\"col\">type</th><th scope=\"col\">taxonomy</th>\
             <th scope=\"col\">module</th><th scope=\"col\">kind</th><th scope=\"col\">description</th>\
             </tr></thead><tbody>{rows}</tbody></table>",
            q = escape(query.q.as_deref().unwrap_or_default()),
        ),
    ))
}

pub async fn detail(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let name = path_ids.1;
    let definition = tenant_types(&state, &console.tenant_id)
        .into_iter()
        .find(|definition| definition.name() == name)
        .ok_or_else(|| ConsoleError::NotFound(format!("event type {name:?}")))?;
    let example = example_envelope(&definition).map_or_else(
        || "<p class=\"muted\">This type has no example.</p>".to_owned(),
        |example| json_block(&example),
    );
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "catalog",
    };
    Ok(document(
        StatusCode::OK,
        definition.name(),
        Some(&chrome),
        &format!(
            "<p>{description}</p><p class=\"muted\">{taxonomy} · {module}{blocking}</p>\
             <h2>Example, in the native envelope</h2>{example}<h2>Schema</h2>{schema}",
            description = escape(definition.description()),
            taxonomy = escape(definition.taxonomy().as_str()),
            module = escape(definition.module()),
            blocking = if definition.is_blocking() {
                " · blocking"
            } else {
                ""
            },
            schema = json_block(&definition.schema_with_used_definitions()),
        ),
    ))
}
