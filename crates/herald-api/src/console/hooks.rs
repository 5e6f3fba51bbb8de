//! Blocking hooks: each event type's chain in order, and the decision log with every hook's
//! outcome and latency.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_store::models::{FailurePolicy, HookRecord};
use serde::Deserialize;
use serde_json::Value;

use crate::auth::TenantScope;
use crate::body::{JsonIn, QueryIn};
use crate::console::catalog::tenant_types;
use crate::console::error::ConsoleResult;
use crate::console::html::{Chrome, csrf_field, document, escape, fragment, or_dash, segment};
use crate::console::session::ConsoleTenant;
use crate::routes::events::format_time;
use crate::routes::hooks::{HookIn, HookPatchIn};
use crate::state::AppState;

/// Decisions per page of the log.
const PAGE_SIZE: usize = 50;

#[derive(Debug, Deserialize)]
pub struct DecisionLogQuery {
    after: Option<String>,
    #[serde(default)]
    fragment: bool,
}

/// A string field of a JSON object, escaped, or a dash.
fn text_field(value: &Value, name: &str) -> String {
    match value.get(name) {
        Some(Value::String(text)) => escape(text),
        Some(Value::Null) | None => "—".to_owned(),
        Some(other) => escape(&other.to_string()),
    }
}

/// Each hook called for a decision: its id, outcome, status and latency.
fn trace_cell(trace: &Value) -> String {
    let entries = trace.as_array().map(Vec::as_slice).unwrap_or_default();
    if entries.is_empty() {
        return "<span class=\"muted\">no hook called</span>".to_owned();
    }
    let items: Vec<String> = entries
        .iter()
        .map(|entry| {
            format!(
                "<li><code>{hook}</code> {outcome} · status {status} · {latency} ms</li>",
                hook = text_field(entry, "hook_id"),
                outcome = text_field(entry, "outcome"),
                status = text_field(entry, "status"),
                latency = entry
                    .get("latency_ms")
                    .and_then(Value::as_f64)
                    .map_or_else(|| "—".to_owned(), |latency| format!("{latency:.1}")),
            )
        })
        .collect();
    format!("<ol>{}</ol>", items.join(""))
}

/// Why a decision refused: each reason's title and text.
fn reasons_cell(reasons: &Value) -> String {
    let entries = reasons.as_array().map(Vec::as_slice).unwrap_or_default();
    let items: Vec<String> = entries
        .iter()
        .map(|entry| {
            format!(
                "<li><strong>{}</strong> {}</li>",
                text_field(entry, "title"),
                text_field(entry, "reason")
            )
        })
        .collect();
    if items.is_empty() {
        String::new()
    } else {
        format!("<ul>{}</ul>", items.join(""))
    }
}

pub async fn page(
    State(state): State<AppState>,
    console: ConsoleTenant,
    QueryIn(query): QueryIn<DecisionLogQuery>,
) -> ConsoleResult<Response> {
    // Decisions are recorded off the answer's path; the log shows every one made so far.
    state.decisions.flush().await;
    let decisions = state
        .store
        .list_decisions(&console.tenant_id, query.after.as_deref(), PAGE_SIZE)
        .await?;
    let base = format!("/console/t/{}/hooks", segment(&console.tenant_id));
    let mut rows = String::new();
    for decision in &decisions {
        let verdict = if decision.is_allowed {
            "<span class=\"badge ok\">allowed</span>"
        } else {
            "<span class=\"badge bad\">refused</span>"
        };
        rows.push_str(&format!(
            "<tr><td>{created}</td><td><code>{event_type}</code><br><span class=\"muted\">{event_id}</span></td>\
             <td>{verdict}{reasons}</td><td>{trace}</td><td class=\"num\">{latency:.1} ms</td></tr>",
            created = escape(&format_time(decision.created_at)),
            event_type = escape(&decision.event_type),
            event_id = or_dash(decision.event_id.as_deref()),
            reasons = reasons_cell(&decision.reasons),
            trace = trace_cell(&decision.trace),
            latency = decision.latency_us as f64 / 1000.0,
        ));
    }
    if decisions.is_empty() {
        rows.push_str("<tr><td colspan=\"5\" class=\"muted\">No decisions on this page.</td></tr>");
    }
    let after_query = query
        .after
        .as_deref()
        .map(|after| format!("after={}", segment(after)))
        .unwrap_or_default();
    let pager = match decisions.last() {
        Some(last) if decisions.len() == PAGE_SIZE => format!(
            "<a rel=\"next\" href=\"{base}?after={}\">Next page</a>",
            segment(last.id.as_str())
        ),
        _ => String::new(),
    };
    let log = format!(
        "<div id=\"decision-list\" data-refresh=\"{base}?{after_query}&amp;fragment=true\">\
         <table><thead><tr><th scope=\"col\">when</th><th scope=\"col\">event</th>\
         <th scope=\"col\">decision</th><th scope=\"col\">hooks called</th><th scope=\"col\">latency</th>\
         </tr></thead><tbody>{rows}</tbody></table>\
         <p class=\"pager\">{pager} <a href=\"{base}?{after_query}\">Refresh</a></p></div>"
    );
    if query.fragment {
        return Ok(fragment(log));
    }
    let hooks = state.store.list_hooks(&console.tenant_id).await?;
    let mut chain = String::new();
    for hook in &hooks {
        chain.push_str(&format!(
            "<tr><td><code>{event_type}</code></td><td class=\"num\">{position}</td>\
             <td>{id}</td><td class=\"mono\">{url}</td><td class=\"num\">{timeout} ms</td>\
             <td>{policy}</td><td>{enabled}</td><td>{edit}</td></tr>",
            edit = edit_form(&console, hook),
            event_type = escape(&hook.event_type),
            position = hook.position,
            id = escape(hook.id.as_str()),
            url = escape(&hook.url),
            timeout = hook.timeout_ms,
            policy = policy_label(hook.failure_policy),
            enabled = if hook.enabled { "enabled" } else { "disabled" },
        ));
    }
    if hooks.is_empty() {
        chain.push_str("<tr><td colspan=\"8\" class=\"muted\">No blocking hook.</td></tr>");
    }
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "hooks",
    };
    Ok(document(
        StatusCode::OK,
        "Blocking hooks",
        Some(&chrome),
        &format!(
            "<h2>Chains, in the order they run</h2><table><thead><tr><th scope=\"col\">event type</th>\
             <th scope=\"col\">position</th><th scope=\"col\">hook</th><th scope=\"col\">url</th>\
             <th scope=\"col\">timeout</th><th scope=\"col\">on failure</th><th scope=\"col\">state</th>\
             <th scope=\"col\">edit</th></tr></thead><tbody>{chain}</tbody></table>\
             <h2>New hook</h2>{create}<h2>Decision log, oldest first</h2>{log}",
            create = create_form(&state, &console),
        ),
    ))
}

/// What a hook's failure means, in words.
fn policy_label(policy: FailurePolicy) -> &'static str {
    if policy == FailurePolicy::FailOpen {
        "fail open"
    } else {
        "fail closed"
    }
}

/// The form that changes one hook: its place in the chain, timeout, failure policy and state.
fn edit_form(console: &ConsoleTenant, hook: &HookRecord) -> String {
    let id = escape(hook.id.as_str());
    let is_fail_open = hook.failure_policy == FailurePolicy::FailOpen;
    let option = |value: &str, label: &str, selected: bool| {
        format!(
            "<option value=\"{value}\"{}>{label}</option>",
            if selected { " selected" } else { "" }
        )
    };
    format!(
        "<form class=\"filters\" method=\"post\" action=\"/console/t/{tenant}/hooks/{hook_segment}\">{csrf}\
         <div><label for=\"position_{id}\">Position</label><input id=\"position_{id}\" name=\"position\" type=\"number\" value=\"{position}\" size=\"4\"></div>\
         <div><label for=\"timeout_{id}\">Timeout ms</label><input id=\"timeout_{id}\" name=\"timeout_ms\" type=\"number\" min=\"1\" value=\"{timeout}\" size=\"6\"></div>\
         <div><label for=\"policy_{id}\">On failure</label><select id=\"policy_{id}\" name=\"failure_policy\">{closed}{open}</select></div>\
         <div><label for=\"enabled_{id}\">State</label><select id=\"enabled_{id}\" name=\"enabled\">{on}{off}</select></div>\
         <button type=\"submit\">Save hook</button></form> <a href=\"/console/t/{tenant}/hooks/{hook_segment}/delete\">Delete</a>",
        tenant = segment(&console.tenant_id),
        hook_segment = segment(hook.id.as_str()),
        csrf = csrf_field(&console.session.csrf),
        position = hook.position,
        timeout = hook.timeout_ms,
        closed = option("fail_closed", "fail closed", !is_fail_open),
        open = option("fail_open", "fail open", is_fail_open),
        on = option("true", "enabled", hook.enabled),
        off = option("false", "disabled", !hook.enabled),
    )
}

/// The form that adds a hook to a blocking type's chain.
fn create_form(state: &AppState, console: &ConsoleTenant) -> String {
    let mut options = String::new();
    for definition in tenant_types(state, &console.tenant_id)
        .iter()
        .filter(|definition| definition.is_blocking())
    {
        options.push_str(&format!(
            "<option value=\"{name}\">{name}</option>",
            name = escape(definition.name())
        ));
    }
    format!(
        "<form class=\"filters\" method=\"post\" action=\"/console/t/{tenant}/hooks\">{csrf}\
         <div><label for=\"hook_type\">Blocking event type</label><select id=\"hook_type\" name=\"event_type\">{options}</select></div>\
         <div><label for=\"hook_url\">URL</label><input id=\"hook_url\" name=\"url\" type=\"url\" required size=\"40\"></div>\
         <button type=\"submit\">Add hook</button></form>",
        tenant = segment(&console.tenant_id),
        csrf = csrf_field(&console.session.csrf),
    )
}

#[derive(Debug, Deserialize)]
pub struct CreateHookForm {
    csrf: Option<String>,
    event_type: String,
    url: String,
}

/// Adds a hook through the API's own handler (its checks on the type and the URL), and shows
/// its secret once.
pub async fn create(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Form(form): Form<CreateHookForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let input = HookIn {
        event_type: form.event_type,
        url: form.url.trim().to_owned(),
        position: None,
        timeout_ms: None,
        failure_policy: None,
        secret: None,
        enabled: None,
    };
    let scope = TenantScope {
        tenant_id: console.tenant_id.clone(),
    };
    let (_, created) = crate::routes::hooks::create(State(state), scope, JsonIn(input)).await?;
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "hooks",
    };
    Ok(document(
        StatusCode::OK,
        &format!("Hook {} added", created.0.id),
        Some(&chrome),
        &format!(
            "<p>The hook's signing secret, shown this once: copy it to the hook now.</p>\
             <pre class=\"json\" id=\"secret\">{secret}</pre>\
             <p><a href=\"/console/t/{tenant}/hooks\">Back to the hooks</a></p>",
            secret = escape(created.0.secret.as_deref().unwrap_or_default()),
            tenant = segment(&console.tenant_id),
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub struct EditHookForm {
    csrf: Option<String>,
    position: Option<i32>,
    timeout_ms: Option<u64>,
    failure_policy: Option<String>,
    enabled: Option<bool>,
}

/// Changes a hook through the API's own handler.
pub async fn edit(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    Form(form): Form<EditHookForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let patch = HookPatchIn {
        url: None,
        position: form.position,
        timeout_ms: form.timeout_ms,
        failure_policy: form.failure_policy,
        secret: None,
        enabled: form.enabled,
    };
    let scope = TenantScope {
        tenant_id: console.tenant_id.clone(),
    };
    let _updated = crate::routes::hooks::update(
        State(state),
        scope,
        Path((console.tenant_id.clone(), path_ids.1)),
        JsonIn(patch),
    )
    .await?;
    let location = format!("/console/t/{}/hooks", segment(&console.tenant_id));
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}
