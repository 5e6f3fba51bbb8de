//! Endpoints: their health at a glance, their deliveries page by page, and the forms that pause,
//! resume and enable them or replay one event or every failed delivery (`endpoint_actions` does
//! what the forms ask).

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald_store::models::{DeliveryFilter, EndpointFilter, EndpointRecord};
use serde::Deserialize;

use crate::auth::TenantScope;
use crate::body::{JsonIn, QueryIn};
use crate::console::deliveries::delivery_rows;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{
    Chrome, button_form, csrf_field, document, escape, fragment, or_dash, segment,
};
use crate::console::session::ConsoleTenant;
use crate::routes::deliveries::parse_cursor;
use crate::routes::endpoints::EndpointIn;
use crate::routes::events::format_time;
use crate::state::AppState;

/// Rows per page of an endpoint's deliveries.
const PAGE_SIZE: usize = 50;

/// The endpoint's state in words: what a user must know before anything else.
pub fn health(endpoint: &EndpointRecord) -> String {
    if !endpoint.enabled {
        let reason = endpoint
            .disabled_reason
            .map(|reason| format!(": {}", escape(reason.as_str())))
            .unwrap_or_default();
        return format!("<span class=\"badge bad\">disabled</span>{reason}");
    }
    if endpoint.paused {
        return "<span class=\"badge muted\">paused</span>".to_owned();
    }
    match endpoint.failing_since {
        Some(since) => format!(
            "<span class=\"badge bad\">failing</span> since {}",
            escape(&format_time(since))
        ),
        None => "<span class=\"badge ok\">healthy</span>".to_owned(),
    }
}

/// The buttons that change an endpoint's state, as forms.
fn actions(console: &ConsoleTenant, endpoint: &EndpointRecord) -> String {
    let base = format!(
        "/console/t/{}/endpoints/{}",
        segment(&console.tenant_id),
        segment(endpoint.id.as_str())
    );
    let csrf = &console.session.csrf;
    let mut forms = String::new();
    if !endpoint.enabled {
        forms.push_str(&button_form(&format!("{base}/enable"), csrf, "Enable", ""));
    } else if endpoint.paused {
        forms.push_str(&button_form(&format!("{base}/resume"), csrf, "Resume", ""));
    } else {
        forms.push_str(&button_form(&format!("{base}/pause"), csrf, "Pause", ""));
    }
    forms.push_str(&button_form(
        &format!("{base}/replay-failed"),
        csrf,
        "Replay failed",
        "",
    ));
    // A link to the confirmation step, not a button that deletes.
    forms.push_str(&format!("<a href=\"{}/delete\">Delete</a>", escape(&base)));
    forms
}

pub async fn list(
    State(state): State<AppState>,
    console: ConsoleTenant,
) -> ConsoleResult<Response> {
    let endpoints = state.store.list_endpoints(&console.tenant_id).await?;
    let tenant = segment(&console.tenant_id);
    let mut rows = String::new();
    for endpoint in &endpoints {
        rows.push_str(&format!(
            "<tr><td><a href=\"/console/t/{tenant}/endpoints/{id_segment}\">{id}</a><br>\
             <span class=\"muted\">{description}</span></td><td class=\"mono\">{url}</td>\
             <td><code>{filters}</code></td><td>{health}</td><td>{actions}</td></tr>",
            id_segment = segment(endpoint.id.as_str()),
            id = escape(endpoint.id.as_str()),
            description = escape(&endpoint.description),
            url = escape(&endpoint.url),
            filters = escape(&EndpointFilter::texts(&endpoint.filters).join(", ")),
            health = health(endpoint),
            actions = actions(&console, endpoint),
        ));
    }
    if endpoints.is_empty() {
        rows.push_str(
            "<tr><td colspan=\"5\" class=\"muted\">No endpoint yet: create one below.</td></tr>",
        );
    }
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "endpoints",
    };
    Ok(document(
        StatusCode::OK,
        "Endpoints",
        Some(&chrome),
        &format!(
            "<table><thead><tr><th scope=\"col\">endpoint</th><th scope=\"col\">url</th>\
             <th scope=\"col\">filters</th><th scope=\"col\">state</th><th scope=\"col\">actions</th>\
             </tr></thead><tbody>{rows}</tbody></table><h2>New endpoint</h2>{create_form}",
            create_form = create_form(&console),
        ),
    ))
}

/// The form that creates an endpoint.
fn create_form(console: &ConsoleTenant) -> String {
    format!(
        "<form class=\"filters\" method=\"post\" action=\"/console/t/{tenant}/endpoints\">{csrf}\
         <div><label for=\"new_url\">URL</label><input id=\"new_url\" name=\"url\" type=\"url\" required size=\"40\" \
         placeholder=\"https://example.com/webhooks\"></div>\
         <div><label for=\"new_filters\">Filters, comma-separated</label><input id=\"new_filters\" name=\"filters\" value=\"*\"></div>\
         <div><label for=\"new_description\">Description</label><input id=\"new_description\" name=\"description\"></div>\
         <div><label for=\"new_format\">Format</label><select id=\"new_format\" name=\"format\">\
         <option value=\"native\">native</option><option value=\"canonical\">canonical</option></select></div>\
         <button type=\"submit\">Create endpoint</button></form>",
        tenant = segment(&console.tenant_id),
        csrf = csrf_field(&console.session.csrf),
    )
}

#[derive(Debug, Deserialize)]
pub struct CreateForm {
    csrf: Option<String>,
    url: String,
    #[serde(default)]
    filters: String,
    #[serde(default)]
    description: String,
    format: Option<String>,
}

/// A page that shows a new signing secret, once.
pub(super) fn secret_page(
    console: &ConsoleTenant,
    endpoint_id: &str,
    title: &str,
    secret: &str,
) -> Response {
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "endpoints",
    };
    document(
        StatusCode::OK,
        title,
        Some(&chrome),
        &format!(
            "<p>The endpoint's signing secret, shown this once: copy it to the receiver now.</p>\
             <pre class=\"json\" id=\"secret\">{secret}</pre>\
             <p><a href=\"/console/t/{tenant}/endpoints/{id}\">Open endpoint {id_text}</a></p>",
            secret = escape(secret),
            tenant = segment(&console.tenant_id),
            id = segment(endpoint_id),
            id_text = escape(endpoint_id),
        ),
    )
}

/// Creates an endpoint through the API's own handler, so its checks (the SSRF rules on the URL,
/// the filters) are the API's.
pub async fn create(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Form(form): Form<CreateForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let filters = split_filters(&form.filters);
    let input = EndpointIn {
        url: form.url.trim().to_owned(),
        filters,
        secret: None,
        format: form.format.filter(|format| !format.is_empty()),
        ordering: None,
        retry_schedule_s: None,
        timeout_ms: None,
        max_concurrency: None,
        rate_limit_per_s: None,
        headers: None,
        enabled: None,
        paused: None,
        description: Some(form.description.trim().to_owned()),
        signature_scheme: None,
    };
    let scope = TenantScope {
        tenant_id: console.tenant_id.clone(),
    };
    let (_, created) = crate::routes::endpoints::create(State(state), scope, JsonIn(input)).await?;
    let secret = created.0.secret.clone().unwrap_or_default();
    Ok(secret_page(
        &console,
        &created.0.id,
        &format!("Endpoint {} created", created.0.id),
        &secret,
    ))
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    after: Option<String>,
    #[serde(default)]
    fragment: bool,
}

pub(super) async fn find(
    state: &AppState,
    tenant_id: &str,
    endpoint_id: &str,
) -> ConsoleResult<EndpointRecord> {
    state
        .store
        .get_endpoint(tenant_id, endpoint_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("endpoint {endpoint_id:?}")))
}

pub async fn detail(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    QueryIn(query): QueryIn<DeliveriesQuery>,
) -> ConsoleResult<Response> {
    let endpoint = find(&state, &console.tenant_id, &path_ids.1).await?;
    let filter = DeliveryFilter {
        endpoint_id: Some(endpoint.id.clone()),
        state: None,
        after_id: parse_cursor(query.after.as_deref())?,
        limit: PAGE_SIZE,
    };
    let deliveries = state
        .store
        .list_deliveries(&console.tenant_id, &filter)
        .await?;
    let base = format!(
        "/console/t/{}/endpoints/{}",
        segment(&console.tenant_id),
        segment(endpoint.id.as_str())
    );
    let after_query = query
        .after
        .as_deref()
        .map(|after| format!("after={}", segment(after)))
        .unwrap_or_default();
    let pager = match deliveries.last() {
        Some(last) if deliveries.len() == PAGE_SIZE => format!(
            "<a rel=\"next\" href=\"{base}?after={}\">Next page</a>",
            segment(last.id.as_str())
        ),
        _ => String::new(),
    };
    let list = format!(
        "<div id=\"delivery-list\" data-refresh=\"{base}?{after_query}&amp;fragment=true\">{table}\
         <p class=\"pager\">{pager} <a href=\"{base}?{after_query}\">Refresh</a></p></div>",
        table = delivery_rows(&console.tenant_id, &deliveries),
    );
    if query.fragment {
        return Ok(fragment(list));
    }
    let replay_one = format!(
        "<form class=\"filters\" method=\"post\" action=\"{base}/replay-event\">{csrf}\
         <div><label for=\"event_id\">Event id</label><input id=\"event_id\" name=\"event_id\" required></div>\
         <button type=\"submit\">Replay this event</button></form>",
        csrf = csrf_field(&console.session.csrf),
    );
    let secret_note = if endpoint.previous_secret.is_some() {
        "<p class=\"muted\">A secret rotation is in progress: the previous secret still signs.</p>"
    } else {
        ""
    };
    let body = format!(
        "<dl class=\"cards\"><div class=\"card\"><dt>url</dt><dd class=\"mono\">{url}</dd></div>\
         <div class=\"card\"><dt>filters</dt><dd><code>{filters}</code></dd></div>\
         <div class=\"card\"><dt>format</dt><dd>{format}</dd></div>\
         <div class=\"card\"><dt>state</dt><dd>{health}</dd></div>\
         <div class=\"card\"><dt>description</dt><dd>{description}</dd></div></dl>{secret_note}\
         <p>{actions}</p><h2>Edit</h2>{edit}<h2>Replay one event</h2>{replay_one}<h2>Send a test event</h2>{test_event}\
         <h2>Signing secret</h2>{rotate}<h2>Deliveries</h2>{list}",
        test_event = test_event_form(&state, &console, &base),
        edit = edit_form(&console, &endpoint, &base),
        rotate = button_form(
            &format!("{base}/rotate-secret"),
            &console.session.csrf,
            "Rotate the secret",
            ""
        ),
        url = escape(&endpoint.url),
        filters = escape(&EndpointFilter::texts(&endpoint.filters).join(", ")),
        format = escape(&format!("{:?}", endpoint.format)),
        health = health(&endpoint),
        description = or_dash(Some(endpoint.description.as_str()).filter(|text| !text.is_empty())),
        actions = actions(&console, &endpoint),
    );
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "endpoints",
    };
    Ok(document(
        StatusCode::OK,
        &format!("Endpoint {}", endpoint.id),
        Some(&chrome),
        &body,
    ))
}

/// A choice of the tenant's non-blocking types with an example, to publish one as a test.
fn test_event_form(state: &AppState, console: &ConsoleTenant, base: &str) -> String {
    let mut options = String::new();
    for definition in crate::console::catalog::tenant_types(state, &console.tenant_id)
        .iter()
        .filter(|definition| !definition.is_blocking() && definition.example().is_some())
    {
        options.push_str(&format!(
            "<option value=\"{name}\">{name}</option>",
            name = escape(definition.name())
        ));
    }
    format!(
        "<form class=\"filters\" method=\"post\" action=\"{base}/send-test\">{csrf}\
         <div><label for=\"test_type\">Event type</label><select id=\"test_type\" name=\"event_type\">{options}</select></div>\
         <button type=\"submit\">Send test event</button></form>\
         <p class=\"hint\">Publishes the type's catalog example to the tenant's log, with a new id: every \
         endpoint subscribed to the type gets it, this one included.</p>",
        csrf = csrf_field(&console.session.csrf),
    )
}

/// The form that changes an endpoint's URL, filters and description.
fn edit_form(console: &ConsoleTenant, endpoint: &EndpointRecord, base: &str) -> String {
    format!(
        "<form class=\"filters\" method=\"post\" action=\"{base}/edit\">{csrf}\
         <div><label for=\"edit_url\">URL</label><input id=\"edit_url\" name=\"url\" type=\"url\" required size=\"40\" value=\"{url}\"></div>\
         <div><label for=\"edit_filters\">Filters, comma-separated</label><input id=\"edit_filters\" name=\"filters\" value=\"{filters}\"></div>\
         <div><label for=\"edit_description\">Description</label><input id=\"edit_description\" name=\"description\" value=\"{description}\"></div>\
         <button type=\"submit\">Save</button></form>",
        csrf = csrf_field(&console.session.csrf),
        url = escape(&endpoint.url),
        filters = escape(&EndpointFilter::texts(&endpoint.filters).join(", ")),
        description = escape(&endpoint.description),
    )
}

/// Comma-separated filters as a list.
pub(super) fn split_filters(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|filter| !filter.is_empty())
        .map(str::to_owned)
        .collect()
}
