//! The event log (filters, cursor paging, refresh in place) and one event with its deliveries.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use herald_catalog::envelope::{RenderOptions, render};
use herald_store::models::{DeliveryRecord, EventFilter, StoredEvent};
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::body::QueryIn;
use crate::console::chart::seq_before;
use crate::console::deliveries::delivery_rows;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{Chrome, document, escape, fragment, json_block, or_dash, segment};
use crate::console::session::ConsoleTenant;
use crate::routes::events::EventOut;
use crate::state::AppState;

/// Rows per page of the log.
const PAGE_SIZE: usize = 50;

#[derive(Debug, Deserialize)]
pub struct LogQuery {
    #[serde(default)]
    after_seq: i64,
    #[serde(rename = "type")]
    event_type: Option<String>,
    subject: Option<String>,
    /// Events received at or after this RFC 3339 time (when no `after_seq` is given).
    since: Option<String>,
    /// Only the list, for the script that refreshes it.
    #[serde(default)]
    fragment: bool,
}

/// The query string of a log page (filters kept, `after_seq` set).
fn log_query(query: &LogQuery, after_seq: i64) -> String {
    let mut parts = vec![format!("after_seq={after_seq}")];
    if let Some(event_type) = query.event_type.as_deref().filter(|text| !text.is_empty()) {
        parts.push(format!("type={}", segment(event_type)));
    }
    if let Some(subject) = query.subject.as_deref().filter(|text| !text.is_empty()) {
        parts.push(format!("subject={}", segment(subject)));
    }
    parts.join("&")
}

pub async fn list(
    State(state): State<AppState>,
    console: ConsoleTenant,
    QueryIn(query): QueryIn<LogQuery>,
) -> ConsoleResult<Response> {
    let since = query
        .since
        .as_deref()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned);
    let mut query = query;
    if let (Some(since), 0) = (since, query.after_seq) {
        let time = OffsetDateTime::parse(&since, &Rfc3339).map_err(|error| {
            ConsoleError::Invalid(format!(
                "received since: expected an RFC 3339 time such as 2026-01-31T09:00:00Z ({error})"
            ))
        })?;
        query.after_seq = seq_before(state.store.as_ref(), &console.tenant_id, time).await?;
    }
    let filter = EventFilter {
        after_seq: query.after_seq,
        limit: PAGE_SIZE,
        event_type: query.event_type.clone().filter(|text| !text.is_empty()),
        subject: query.subject.clone().filter(|text| !text.is_empty()),
    };
    let events = state.store.list_events(&console.tenant_id, &filter).await?;
    let tenant = segment(&console.tenant_id);
    let base = format!("/console/t/{tenant}/events");
    let mut rows = String::new();
    for stored in &events {
        let event = &stored.event;
        rows.push_str(&format!(
            "<tr><td class=\"num\">{seq}</td><td><a href=\"{base}/{id_segment}\">{id}</a></td>\
             <td><code>{event_type}</code></td><td>{subject}</td><td>{received}</td></tr>",
            seq = event.seq,
            id_segment = segment(&event.id),
            id = escape(&event.id),
            event_type = escape(&event.event_type),
            subject = or_dash(event.subject.as_deref()),
            received = escape(&crate::routes::events::format_time(stored.received_at)),
        ));
    }
    if events.is_empty() {
        rows.push_str("<tr><td colspan=\"5\" class=\"muted\">No events on this page.</td></tr>");
    }
    let next_after_seq = events
        .last()
        .map_or(query.after_seq, |stored| stored.event.seq);
    let pager = if events.len() == PAGE_SIZE {
        format!(
            "<a rel=\"next\" href=\"{base}?{}\">Next page</a>",
            escape(&log_query(&query, next_after_seq))
        )
    } else {
        String::new()
    };
    let this_page = escape(&log_query(&query, query.after_seq));
    let list = format!(
        "<div id=\"event-list\" data-refresh=\"{base}?{this_page}&amp;fragment=true\">\
         <table><caption class=\"muted\">Events after seq {after}, oldest first</caption>\
         <thead><tr><th scope=\"col\">seq</th><th scope=\"col\">id</th><th scope=\"col\">type</th>\
         <th scope=\"col\">subject</th><th scope=\"col\">received</th></tr></thead>\
         <tbody>{rows}</tbody></table><p class=\"pager\">{pager} \
         <a href=\"{base}?{this_page}\">Refresh</a></p></div>",
        after = query.after_seq,
    );
    if query.fragment {
        return Ok(fragment(list));
    }
    let filters = format!(
        "<form class=\"filters\" method=\"get\" action=\"{base}\">\
         <div><label for=\"type\">Type</label><input id=\"type\" name=\"type\" value=\"{event_type}\" placeholder=\"user.created\"></div>\
         <div><label for=\"subject\">Subject</label><input id=\"subject\" name=\"subject\" value=\"{subject}\"></div>\
         <div><label for=\"since\">Received since (RFC 3339)</label><input id=\"since\" name=\"since\" value=\"{since}\" placeholder=\"2026-01-31T09:00:00Z\"></div>\
         <div><label for=\"after_seq\">After seq</label><input id=\"after_seq\" name=\"after_seq\" type=\"number\" min=\"0\" value=\"{after}\"></div>\
         <button type=\"submit\">Filter</button></form>",
        event_type = escape(query.event_type.as_deref().unwrap_or_default()),
        subject = escape(query.subject.as_deref().unwrap_or_default()),
        since = escape(query.since.as_deref().unwrap_or_default()),
        after = query.after_seq,
    );
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "events",
    };
    Ok(document(
        StatusCode::OK,
        "Events",
        Some(&chrome),
        &format!("{filters}{list}"),
    ))
}

/// The event rendered as each endpoint it was delivered to receives it (its format, the
/// tenant's issuer): rendering is deterministic, so this is the body that was sent.
async fn as_each_endpoint_received_it(
    state: &AppState,
    tenant_id: &str,
    stored: &StoredEvent,
    deliveries: &[DeliveryRecord],
) -> ConsoleResult<String> {
    if deliveries.is_empty() {
        return Ok(String::new());
    }
    let issuer = state
        .store
        .get_tenant(tenant_id)
        .await?
        .map(|tenant| tenant.issuer_or_default())
        .unwrap_or_default();
    let options = RenderOptions {
        tenant_id,
        issuer: &issuer,
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut sections = String::new();
    for delivery in deliveries {
        if !seen.insert(delivery.endpoint_id.as_str()) {
            continue;
        }
        // An endpoint deleted since keeps no format to render with.
        let Some(endpoint) = state
            .store
            .get_endpoint(tenant_id, delivery.endpoint_id.as_str())
            .await?
        else {
            continue;
        };
        sections.push_str(&format!(
            "<h2>As {endpoint_id} receives it <span class=\"muted\">({format})</span></h2>{body}",
            endpoint_id = escape(endpoint.id.as_str()),
            format = escape(&format!("{:?}", endpoint.format).to_lowercase()),
            body = json_block(&render(&stored.event, endpoint.format, &options)),
        ));
    }
    Ok(sections)
}

pub async fn detail(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let event_id = path_ids.1;
    let stored = state
        .store
        .get_event(&console.tenant_id, &event_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("event {event_id:?}")))?;
    let deliveries = state
        .store
        .list_event_deliveries(&console.tenant_id, &event_id)
        .await?;
    let as_received =
        as_each_endpoint_received_it(&state, &console.tenant_id, &stored, &deliveries).await?;
    let event = EventOut::from(stored);
    let summary = format!(
        "<dl class=\"cards\"><div class=\"card\"><dt>type</dt><dd><code>{event_type}</code></dd></div>\
         <div class=\"card\"><dt>seq</dt><dd>{seq}</dd></div>\
         <div class=\"card\"><dt>subject</dt><dd>{subject}</dd></div>\
         <div class=\"card\"><dt>occurred</dt><dd>{occurred}</dd></div>\
         <div class=\"card\"><dt>received</dt><dd>{received}</dd></div></dl>",
        event_type = escape(&event.event_type),
        seq = event.seq,
        subject = or_dash(event.subject.as_deref()),
        occurred = escape(&event.occurred_at),
        received = escape(&event.received_at),
    );
    let erased = if event.erased {
        "<p class=\"bad\">The subject's data was erased on request.</p>"
    } else {
        ""
    };
    let payload = serde_json::to_value(&event).unwrap_or_default();
    let body = format!(
        "{summary}{erased}<h2>Deliveries</h2>{deliveries}<h2>As published</h2>{payload}{as_received}",
        deliveries = delivery_rows(&console.tenant_id, &deliveries),
        payload = json_block(&payload),
    );
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "events",
    };
    Ok(document(
        StatusCode::OK,
        &format!("Event {}", event.id),
        Some(&chrome),
        &body,
    ))
}
