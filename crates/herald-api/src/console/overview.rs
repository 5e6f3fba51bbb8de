//! A tenant's overview: how many endpoints are healthy, failing, paused or disabled, and which;
//! events and delivery attempts per minute over the last hour, and the attempts' failure rate.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

use crate::console::chart;
use crate::console::endpoints::health;
use crate::console::error::ConsoleResult;
use crate::console::html::{Chrome, document, escape, segment};
use crate::console::session::ConsoleTenant;
use crate::state::AppState;

pub async fn page(
    State(state): State<AppState>,
    console: ConsoleTenant,
) -> ConsoleResult<Response> {
    let endpoints = state.store.list_endpoints(&console.tenant_id).await?;
    let hooks = state.store.list_hooks(&console.tenant_id).await?;
    // Sources appear once the tenant has one.
    let n_sources = state.store.list_sources(&console.tenant_id).await?.len();
    let n_disabled = endpoints
        .iter()
        .filter(|endpoint| !endpoint.enabled)
        .count();
    let n_paused = endpoints
        .iter()
        .filter(|endpoint| endpoint.enabled && endpoint.paused)
        .count();
    let n_failing = endpoints
        .iter()
        .filter(|endpoint| endpoint.enabled && endpoint.failing_since.is_some())
        .count();
    let now = state.clock.now();
    let since = now - time::Duration::minutes(chart::MINUTES as i64);
    let (received, is_capped) =
        chart::received_since(state.store.as_ref(), &console.tenant_id, since).await?;
    let mut events_chart =
        chart::bar_chart("Events per minute", &chart::per_minute(&received, now));
    if is_capped {
        events_chart
            .push_str("<p class=\"hint\">Only the hour's first 10,000 events are counted.</p>");
    }
    let attempt_minutes = state
        .store
        .count_attempts_per_minute(&console.tenant_id, since)
        .await?;
    let (attempts, failed) = chart::attempts_per_minute(&attempt_minutes, now);
    let deliveries_chart = chart::bar_chart("Delivery attempts per minute", &attempts);
    let failure_chart = chart::failure_rate_chart(&attempts, &failed);
    // SSF streams appear once the tenant has one.
    let n_streams = state
        .store
        .list_ssf_streams(&console.tenant_id)
        .await?
        .len();
    let tenant = segment(&console.tenant_id);
    let card = |label: &str, value: usize, href: &str| {
        format!(
            "<div class=\"card\"><div class=\"value\">{value}</div><a href=\"{href}\">{label}</a></div>"
        )
    };
    let cards = [
        card(
            "endpoints",
            endpoints.len(),
            &format!("/console/t/{tenant}/endpoints"),
        ),
        card(
            "failing",
            n_failing,
            &format!("/console/t/{tenant}/endpoints"),
        ),
        card(
            "paused",
            n_paused,
            &format!("/console/t/{tenant}/endpoints"),
        ),
        card(
            "disabled",
            n_disabled,
            &format!("/console/t/{tenant}/endpoints"),
        ),
        card(
            "blocking hooks",
            hooks.len(),
            &format!("/console/t/{tenant}/hooks"),
        ),
    ]
    .join("");
    let cards = if n_sources > 0 {
        format!(
            "{cards}{}",
            card(
                "sources",
                n_sources,
                &format!("/console/t/{tenant}/sources")
            )
        )
    } else {
        cards
    };
    let cards = if n_streams > 0 {
        format!(
            "{cards}{}",
            card(
                "SSF streams",
                n_streams,
                &format!("/console/t/{tenant}/ssf")
            )
        )
    } else {
        cards
    };
    // A tenant with nowhere to deliver yet gets the quickstart's steps, each a link.
    let getting_started = if endpoints.is_empty() {
        format!(
            "<h2>Getting started</h2><ol class=\"list\" id=\"getting-started\">\
             <li><a href=\"/console/t/{tenant}/endpoints\">Create an endpoint</a>: the URL that \
             receives this tenant's events (its signing secret is shown once).</li>\
             <li><a href=\"/console/t/{tenant}/publish\">Publish an event</a>: a catalog type's \
             example, as your identity platform would send it.</li>\
             <li>Follow it in the <a href=\"/console/t/{tenant}/events\">event log</a> to its \
             delivery and each attempt.</li></ol>"
        )
    } else {
        String::new()
    };
    let mut attention = String::new();
    for endpoint in endpoints
        .iter()
        .filter(|endpoint| !endpoint.enabled || endpoint.paused || endpoint.failing_since.is_some())
    {
        attention.push_str(&format!(
            "<li><a href=\"/console/t/{tenant}/endpoints/{}\">{}</a> {}</li>",
            segment(endpoint.id.as_str()),
            escape(endpoint.id.as_str()),
            health(endpoint),
        ));
    }
    if attention.is_empty() {
        attention.push_str("<li>Every endpoint is healthy.</li>");
    }
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "overview",
    };
    Ok(document(
        StatusCode::OK,
        "Overview",
        Some(&chrome),
        &format!(
            "{getting_started}<div class=\"cards\">{cards}</div><h2>The last hour</h2><div class=\"charts\">{events_chart}{deliveries_chart}{failure_chart}</div>\
             <h2>Endpoints that need attention</h2>\
             <ul class=\"list\">{attention}</ul><p><a href=\"/console/t/{tenant}/events\">Open the event log</a></p>"
        ),
    ))
}
