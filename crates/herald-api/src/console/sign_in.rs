//! Signing in with a key, and signing out.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::auth::Caller;
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::console::html::{document, escape, segment};
use crate::console::session::{ConsoleSession, clear_cookie, session_cookie, session_for_key};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    key: String,
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    csrf: Option<String>,
}

fn redirect(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response()
}

/// Where a session starts: its tenant's overview, or the list of tenants for an admin.
pub fn home(session: &ConsoleSession) -> String {
    match &session.caller {
        Caller::Tenant(tenant_id) => format!("/console/t/{}", segment(tenant_id)),
        Caller::Admin => "/console/tenants".to_owned(),
    }
}

fn sign_in_form(status: StatusCode, message: Option<&str>) -> Response {
    let message = message
        .map(|text| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(text)))
        .unwrap_or_default();
    document(
        status,
        "Sign in",
        None,
        &format!(
            "{message}<form class=\"stack narrow\" method=\"post\" action=\"/console/sign-in\">\
             <label for=\"key\">API key</label>\
             <input id=\"key\" name=\"key\" type=\"password\" autocomplete=\"off\" required autofocus>\
             <p class=\"hint\">A tenant's key opens that tenant; an admin key lets you pick one. \
             The key stays in an HttpOnly cookie of this browser until you sign out.</p>\
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

/// `/console`: the sign-in form, or straight on when already signed in.
pub async fn start(session: Option<ConsoleSession>) -> Response {
    match session {
        Some(session) => redirect(&home(&session)),
        None => sign_in_form(StatusCode::OK, None),
    }
}

/// Checks the key as the API would and keeps it in the session cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> ConsoleResult<Response> {
    let key = form.key.trim();
    let session = match session_for_key(key, &state).await {
        Ok(session) => session,
        Err(ConsoleError::SignIn) => {
            return Ok(sign_in_form(
                StatusCode::UNAUTHORIZED,
                Some("That key was not accepted: it is unknown, revoked or expired."),
            ));
        }
        Err(other) => return Err(other),
    };
    let mut response = redirect(&home(&session));
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(key, &headers)?);
    Ok(response)
}

/// Ends the session: the cookie is removed. A form of the console only (CSRF-checked), so
/// another site cannot sign the user out.
pub async fn sign_out(
    session: ConsoleSession,
    Form(form): Form<CsrfForm>,
) -> ConsoleResult<Response> {
    session.check_csrf(form.csrf.as_deref())?;
    let mut response = redirect("/console");
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_cookie());
    Ok(response)
}
