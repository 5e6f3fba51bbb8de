//! Blocking hooks: each event type's chain in order, and the decision log with every hook's
//! outcome and latency.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value;

use crate::body::QueryIn;
use crate::console::error::ConsoleResult;
use crate::console::html::{Chrome, document, escape, fragment, or_dash, segment};
use crate::console::session::ConsoleTenant;
use crate::routes::events::format_time;
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
                latency = text_field(entry, "latency_ms"),
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
            segment(&last.id)
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
             <td>{policy}</td><td>{enabled}</td></tr>",
            event_type = escape(&hook.event_type),
            position = hook.position,
            id = escape(&hook.id),
            url = escape(&hook.url),
            timeout = hook.timeout_ms,
            policy = escape(&format!("{:?}", hook.failure_policy).to_lowercase()),
            enabled = if hook.enabled { "enabled" } else { "disabled" },
        ));
    }
    if hooks.is_empty() {
        chain.push_str("<tr><td colspan=\"7\" class=\"muted\">No blocking hook.</td></tr>");
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
             </tr></thead><tbody>{chain}</tbody></table><h2>Decision log, oldest first</h2>{log}"
        ),
    ))
}
