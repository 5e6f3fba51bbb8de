//! One delivery with its attempts (status, latency, the start of the response), and retrying it.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use herald_store::models::DeliveryRecord;
use serde::Deserialize;

use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{Chrome, button_form, document, escape, or_dash, segment};
use crate::console::session::ConsoleTenant;
use crate::routes::events::format_time;
use crate::state::AppState;

/// A table of deliveries, each linked to its page.
pub fn delivery_rows(tenant_id: &str, deliveries: &[DeliveryRecord]) -> String {
    let tenant = segment(tenant_id);
    let mut rows = String::new();
    for delivery in deliveries {
        rows.push_str(&format!(
            "<tr><td><a href=\"/console/t/{tenant}/deliveries/{id_segment}\">{id}</a></td>\
             <td><a href=\"/console/t/{tenant}/endpoints/{endpoint_segment}\">{endpoint}</a></td>\
             <td><a href=\"/console/t/{tenant}/events/{event_segment}\">{event_type}</a></td>\
             <td>{state_badge}</td><td class=\"num\">{n_attempts}</td><td class=\"num\">{status}</td>\
             <td>{updated}</td></tr>",
            id_segment = segment(delivery.id.as_str()),
            id = escape(delivery.id.as_str()),
            endpoint_segment = segment(delivery.endpoint_id.as_str()),
            endpoint = escape(delivery.endpoint_id.as_str()),
            event_segment = segment(&delivery.event_id),
            event_type = escape(&delivery.event_type),
            state_badge = state_badge(delivery.state.as_str()),
            n_attempts = delivery.n_attempts,
            status = delivery
                .last_status
                .map_or_else(|| "—".to_owned(), |status| status.to_string()),
            updated = escape(&format_time(delivery.updated_at)),
        ));
    }
    if deliveries.is_empty() {
        rows.push_str("<tr><td colspan=\"7\" class=\"muted\">No deliveries.</td></tr>");
    }
    format!(
        "<table><thead><tr><th scope=\"col\">delivery</th><th scope=\"col\">endpoint</th>\
         <th scope=\"col\">event</th><th scope=\"col\">state</th><th scope=\"col\">attempts</th>\
         <th scope=\"col\">last status</th><th scope=\"col\">updated</th></tr></thead>\
         <tbody>{rows}</tbody></table>"
    )
}

/// A delivery state as a coloured badge (the word is always there, colour only adds to it).
pub fn state_badge(state: &str) -> String {
    let class = match state {
        "delivered" => "ok",
        "exhausted" | "cancelled" => "bad",
        _ => "muted",
    };
    format!("<span class=\"badge {class}\">{}</span>", escape(state))
}

pub async fn detail(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
) -> ConsoleResult<Response> {
    let delivery_id = path_ids.1;
    let delivery = state
        .store
        .get_delivery(&console.tenant_id, &delivery_id)
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("delivery {delivery_id:?}")))?;
    let attempts = state
        .store
        .list_attempts(&console.tenant_id, &delivery_id)
        .await?;
    let mut rows = String::new();
    for attempt in &attempts {
        let status_class = match attempt.status {
            Some(status) if (200..300).contains(&status) => "ok",
            _ => "bad",
        };
        rows.push_str(&format!(
            "<tr><td class=\"num\">{number}</td><td>{started}</td>\
             <td class=\"num {status_class}\">{status}</td><td class=\"num\">{latency} ms</td>\
             <td><pre class=\"json\">{response}</pre></td><td>{error}</td></tr>",
            number = attempt.attempt_number,
            started = escape(&format_time(attempt.started_at)),
            status = attempt
                .status
                .map_or_else(|| "—".to_owned(), |status| status.to_string()),
            latency = attempt.latency_ms,
            response = escape(attempt.response_excerpt.as_deref().unwrap_or_default()),
            error = or_dash(attempt.error.as_deref()),
        ));
    }
    if attempts.is_empty() {
        rows.push_str("<tr><td colspan=\"6\" class=\"muted\">Not attempted yet.</td></tr>");
    }
    let tenant = segment(&console.tenant_id);
    let retry = button_form(
        &format!(
            "/console/t/{tenant}/deliveries/{}/retry",
            segment(delivery.id.as_str())
        ),
        &console.session.csrf,
        "Retry now",
        "",
    );
    let next = delivery
        .next_attempt_at
        .map(format_time)
        .map_or_else(String::new, |at| format!(" · next attempt {}", escape(&at)));
    let body = format!(
        "{summary}<p>{badge}{next}</p><p>{retry}</p><h2>Attempts</h2>\
         <table><thead><tr><th scope=\"col\">#</th><th scope=\"col\">started</th>\
         <th scope=\"col\">status</th><th scope=\"col\">latency</th><th scope=\"col\">response</th>\
         <th scope=\"col\">error</th></tr></thead><tbody>{rows}</tbody></table>",
        summary = delivery_rows(&console.tenant_id, std::slice::from_ref(&delivery)),
        badge = state_badge(delivery.state.as_str()),
    );
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "endpoints",
    };
    Ok(document(
        StatusCode::OK,
        &format!("Delivery {}", delivery.id),
        Some(&chrome),
        &body,
    ))
}

#[derive(Debug, Deserialize)]
pub struct CsrfOnly {
    csrf: Option<String>,
}

pub async fn retry(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Path(path_ids): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    let delivery_id = path_ids.1;
    state
        .store
        .retry_delivery(&console.tenant_id, &delivery_id, state.clock.now())
        .await?
        .ok_or_else(|| ConsoleError::NotFound(format!("delivery {delivery_id:?}")))?;
    state.delivery_wakeup.notify_one();
    let location = format!(
        "/console/t/{}/deliveries/{}",
        segment(&console.tenant_id),
        segment(&delivery_id)
    );
    Ok((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response())
}
