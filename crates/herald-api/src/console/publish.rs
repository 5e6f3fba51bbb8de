//! Publishing an event from the console: a catalog type's native example (a fresh id, now),
//! editable, published through the API's one publish path, with every validation problem shown
//! at its JSON path.

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use herald_catalog::definition::EventTypeDef;
use herald_catalog::envelope::{Event, RenderFormat, RenderOptions, render};
use herald_catalog::validation::Problem;
use serde::Deserialize;

use crate::body::{QueryIn, parse_json};
use crate::console::catalog::tenant_types;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{Chrome, csrf_field, document, escape, see_other, segment};
use crate::console::session::ConsoleTenant;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct PublishQuery {
    #[serde(rename = "type")]
    event_type: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PublishForm {
    csrf: Option<String>,
    #[serde(default)]
    event_type: String,
    document: String,
}

/// The types a producer publishes to the log: blocking types are decided, not logged, and a
/// type without an example has nothing to prefill.
fn publishable(state: &AppState, tenant_id: &str) -> Vec<std::sync::Arc<EventTypeDef>> {
    tenant_types(state, tenant_id)
        .into_iter()
        .filter(|definition| !definition.is_blocking() && definition.example().is_some())
        .collect()
}

/// The type's example in its native envelope, as the tenant's endpoints would receive it, with
/// a fresh id and the current time (the catalog's fixed example id would be a duplicate the
/// second time).
async fn native_example(
    state: &AppState,
    tenant_id: &str,
    definition: &EventTypeDef,
) -> ConsoleResult<String> {
    let Some(payload) = definition.example().cloned() else {
        return Ok(String::new());
    };
    let issuer = state
        .store
        .get_tenant(tenant_id)
        .await?
        .map(|tenant| tenant.issuer_or_default())
        .unwrap_or_default();
    let event = Event {
        id: herald_core::ids::new_event_id(),
        seq: 0,
        taxonomy: definition.taxonomy(),
        event_type: definition.name().to_owned(),
        subject: definition.subject_of(&payload),
        occurred_at: state.clock.now(),
        payload,
        context: serde_json::Map::new(),
        producer: serde_json::Map::new(),
    };
    let options = RenderOptions {
        tenant_id,
        issuer: &issuer,
    };
    let envelope = render(&event, RenderFormat::Native, &options);
    Ok(serde_json::to_string_pretty(&envelope).unwrap_or_else(|_| envelope.to_string()))
}

/// The publish page: the type picker, the document, and the problems of the last try.
fn page(
    state: &AppState,
    console: &ConsoleTenant,
    status: StatusCode,
    chosen_type: &str,
    document_text: &str,
    problems: &[Problem],
) -> Response {
    let base = format!("/console/t/{}/publish", segment(&console.tenant_id));
    let mut options = String::new();
    for definition in publishable(state, &console.tenant_id) {
        let selected = if definition.name() == chosen_type {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!(
            "<option value=\"{name}\"{selected}>{name}</option>",
            name = escape(definition.name())
        ));
    }
    let problems_html = if problems.is_empty() {
        String::new()
    } else {
        let items: Vec<String> = problems
            .iter()
            .map(|problem| {
                format!(
                    "<li><code>{path}</code> {message}</li>",
                    path = escape(if problem.path.is_empty() {
                        "/"
                    } else {
                        &problem.path
                    }),
                    message = escape(&problem.message),
                )
            })
            .collect();
        format!(
            "<div role=\"alert\"><p class=\"error\">Not published: nothing was stored.</p>\
             <ul class=\"list\" id=\"problems\">{}</ul></div>",
            items.join("")
        )
    };
    let chrome = Chrome {
        tenant_id: &console.tenant_id,
        csrf: &console.session.csrf,
        is_admin: console.session.is_admin(),
        section: "publish",
    };
    document(
        status,
        "Publish an event",
        Some(&chrome),
        &format!(
            "<form class=\"filters\" method=\"get\" action=\"{base}\">\
             <div><label for=\"type\">Event type</label><select id=\"type\" name=\"type\">{options}</select></div>\
             <button type=\"submit\" class=\"secondary\">Load its example</button></form>\
             {problems_html}\
             <form class=\"stack\" method=\"post\" action=\"{base}\">{csrf}\
             <input type=\"hidden\" name=\"event_type\" value=\"{chosen}\">\
             <label for=\"document\">The event, in its vendor's envelope or Herald's canonical form</label>\
             <textarea id=\"document\" name=\"document\" rows=\"22\" spellcheck=\"false\" class=\"mono\" required>{text}</textarea>\
             <p class=\"hint\">Published exactly as <code>POST /v1/tenants/{tenant_text}/events</code> would: \
             every endpoint subscribed to the type gets it.</p>\
             <div><button type=\"submit\">Publish</button></div></form>",
            csrf = csrf_field(&console.session.csrf),
            chosen = escape(chosen_type),
            text = escape(document_text),
            tenant_text = escape(&console.tenant_id),
        ),
    )
}

pub async fn form(
    State(state): State<AppState>,
    console: ConsoleTenant,
    QueryIn(query): QueryIn<PublishQuery>,
) -> ConsoleResult<Response> {
    let types = publishable(&state, &console.tenant_id);
    let chosen = match query.event_type.as_deref().filter(|name| !name.is_empty()) {
        Some(name) => types
            .iter()
            .find(|definition| definition.name() == name)
            .ok_or_else(|| ConsoleError::NotFound(format!("event type {name:?}")))?,
        None => match types.first() {
            Some(first) => first,
            None => {
                return Ok(page(&state, &console, StatusCode::OK, "", "", &[]));
            }
        },
    };
    let example = native_example(&state, &console.tenant_id, chosen).await?;
    Ok(page(
        &state,
        &console,
        StatusCode::OK,
        chosen.name(),
        &example,
        &[],
    ))
}

/// Publishes the document through the API's publish path; on problems, the page again with
/// the text as it was and each problem at its path.
pub async fn publish(
    State(state): State<AppState>,
    console: ConsoleTenant,
    Form(form): Form<PublishForm>,
) -> ConsoleResult<Response> {
    console.session.check_csrf(form.csrf.as_deref())?;
    // The API's limit on an event's body holds here too: the form's own limit (axum's default
    // for any form) is larger, and the console must not be a way around it.
    let limit = state.settings.max_body_bytes;
    let outcome = if form.document.len() > limit {
        Err(ApiError::invalid(
            "",
            format!("the event is larger than the limit of {limit} bytes"),
        ))
    } else {
        match parse_json(form.document.as_bytes()) {
            Ok(document) => {
                crate::routes::events::publish_documents(
                    &state,
                    &console.tenant_id,
                    vec![(document, String::new())],
                    None,
                )
                .await
            }
            Err(error) => Err(error),
        }
    };
    let problems = match outcome {
        Ok(published) => {
            let event_id = published
                .first()
                .map(|outcome| outcome.id.clone())
                .unwrap_or_default();
            return Ok(see_other(&format!(
                "/console/t/{}/events/{}",
                segment(&console.tenant_id),
                segment(&event_id)
            )));
        }
        Err(ApiError::Validation { problems, .. }) => problems,
        Err(malformed @ ApiError::MalformedJson { .. }) => {
            vec![Problem::new("", malformed.to_string())]
        }
        Err(other) => return Err(ConsoleError::from(other)),
    };
    Ok(page(
        &state,
        &console,
        StatusCode::UNPROCESSABLE_ENTITY,
        &form.event_type,
        &form.document,
        &problems,
    ))
}
