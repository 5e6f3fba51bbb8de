//! The tenant's Shared Signals streams, read-only: each stream's status, delivery method and how
//! many SETs wait in its poll queue, and the tenant's signing keys (ids and dates, never a key).
//! Streams are managed by their receivers through the SSF API, not here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use crate::console::error::ConsoleResult;
use crate::console::html::{Chrome, document, escape, or_dash};
use crate::console::session::ConsoleTenant;
use crate::routes::events::format_time;
use crate::state::AppState;

/// At most this many queued SETs are counted per stream; past it the page says "or more".
const MAX_COUNTED: usize = 1000;

/// RFC 8936 (poll) and RFC 8935 (push) by name.
fn delivery_method(config: &Value) -> String {
    let method = config
        .get("delivery_method")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match method {
        "urn:ietf:rfc:8936" => "poll (RFC 8936)".to_owned(),
        "urn:ietf:rfc:8935" => {
            // The receiver's URL passed the SSRF rules and is the receiver's own; the
            // authorization header it asked for is a secret and stays out of the page.
            let url = config
                .get("push_endpoint_url")
                .and_then(Value::as_str)
                .map(|url| format!(" to <span class=\"mono\">{}</span>", escape(url)))
                .unwrap_or_default();
            format!("push (RFC 8935){url}")
        }
        other => escape(other),
    }
}

pub async fn page(
    State(state): State<AppState>,
    console: ConsoleTenant,
) -> ConsoleResult<Response> {
    let streams = state.store.list_ssf_streams(&console.tenant_id).await?;
    let mut rows = String::new();
    for stream in &streams {
        // The config is the SSF layer's versioned JSON: read what the page shows, and nothing
        // more, so a config version this page does not know still lists.
        let config: Value = serde_json::from_str(&stream.config).unwrap_or_default();
        let queued = state.store.peek_ssf_sets(&stream.id, MAX_COUNTED).await?;
        let queued = if queued.len() == MAX_COUNTED {
            format!("{MAX_COUNTED} or more")
        } else {
            queued.len().to_string()
        };
        let events = config
            .get("events_requested")
            .and_then(Value::as_array)
            .map(|events| events.len())
            .unwrap_or(0);
        let status_class = if stream.status == "enabled" {
            "ok"
        } else {
            "bad"
        };
        rows.push_str(&format!(
            "<tr><td>{id}<br><span class=\"muted\">{description}</span></td>\
             <td><span class=\"badge {status_class}\">{status}</span> {reason}</td>\
             <td>{method}</td><td class=\"num\">{queued}</td><td class=\"num\">{events}</td>\
             <td>{receiver}</td><td>{updated}</td></tr>",
            id = escape(&stream.id),
            description = or_dash(config.get("description").and_then(Value::as_str)),
            status = escape(&stream.status),
            reason = stream
                .status_reason
                .as_deref()
                .map(escape)
                .unwrap_or_default(),
            method = delivery_method(&config),
            receiver = escape(&stream.receiver_id),
            updated = escape(&format_time(stream.updated_at)),
        ));
    }
    if streams.is_empty() {
        rows.push_str(
            "<tr><td colspan=\"7\" class=\"muted\">No stream: an SSF receiver creates one through \
             the SSF API.</td></tr>",
        );
    }
    let keys = state
        .store
        .list_ssf_signing_keys(&console.tenant_id)
        .await?;
    let mut key_rows = String::new();
    for key in &keys {
        key_rows.push_str(&format!(
            "<tr><td class=\"mono\">{kid}</td><td>{algorithm}</td><td>{created}</td><td>{state}</td></tr>",
            kid = escape(&key.kid),
            algorithm = escape(&key.algorithm),
            created = escape(&format_time(key.created_at)),
            state = key.retired_at.map_or_else(
                || "<span class=\"badge ok\">signing</span>".to_owned(),
                |retired| format!("retired {}", escape(&format_time(retired)))
            ),
        ));
    }
    if keys.is_empty() {
        key_rows.push_str("<tr><td colspan=\"4\" class=\"muted\">No signing key yet.</td></tr>");
    }
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "ssf",
    };
    Ok(document(
        StatusCode::OK,
        "Shared Signals",
        Some(&chrome),
        &format!(
            "<h2>Streams</h2><table><thead><tr><th scope=\"col\">stream</th><th scope=\"col\">status</th>\
             <th scope=\"col\">delivery</th><th scope=\"col\">queued SETs</th>\
             <th scope=\"col\">event types</th><th scope=\"col\">receiver</th>\
             <th scope=\"col\">updated</th></tr></thead><tbody>{rows}</tbody></table>\
             <h2>Signing keys</h2><table><thead><tr><th scope=\"col\">kid</th>\
             <th scope=\"col\">algorithm</th><th scope=\"col\">created</th><th scope=\"col\">state</th>\
             </tr></thead><tbody>{key_rows}</tbody></table>"
        ),
    ))
}
