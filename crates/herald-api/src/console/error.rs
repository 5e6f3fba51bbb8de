//! The console's one error type, rendered as an HTML page (or a redirect to sign in).

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::console::html::{document, escape};
use crate::console::session::clear_cookie;
use crate::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No session, or its key no longer authenticates (revoked): back to the sign-in form.
    #[error("sign in first")]
    SignIn,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Internal(String),
}

pub type ConsoleResult<T> = Result<T, ConsoleError>;

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        match error {
            ApiError::Unauthorized => ConsoleError::SignIn,
            ApiError::NotFound(what) => ConsoleError::NotFound(what),
            ApiError::Forbidden(why) => ConsoleError::Forbidden(why),
            // Every problem with its JSON path, not the API's "see `errors`" summary: a page
            // has no `errors` member to look at.
            ApiError::Validation { problems, .. } if !problems.is_empty() => ConsoleError::Invalid(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            ApiError::Validation { .. }
            | ApiError::Conflict(_)
            | ApiError::BadRequest(_)
            | ApiError::MalformedJson { .. } => ConsoleError::Invalid(error.to_string()),
            other => ConsoleError::Internal(other.to_string()),
        }
    }
}

impl From<herald_store::StoreError> for ConsoleError {
    fn from(error: herald_store::StoreError) -> Self {
        ConsoleError::from(ApiError::from(error))
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            ConsoleError::SignIn => {
                let mut response =
                    (StatusCode::SEE_OTHER, [(header::LOCATION, "/console")]).into_response();
                response
                    .headers_mut()
                    .append(header::SET_COOKIE, clear_cookie());
                return response;
            }
            ConsoleError::NotFound(_) => (StatusCode::NOT_FOUND, "Not found"),
            ConsoleError::Forbidden(_) => (StatusCode::FORBIDDEN, "Refused"),
            ConsoleError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "Not accepted"),
            ConsoleError::Internal(message) => {
                tracing::error!(error = %message, "console request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong")
            }
        };
        let detail = match &self {
            ConsoleError::Internal(_) => "The error was logged on the server.".to_owned(),
            other => other.to_string(),
        };
        document(
            status,
            title,
            None,
            &format!(
                "<p class=\"error\">{}</p><p><a href=\"/console\">Back to the console</a></p>",
                escape(&detail)
            ),
        )
    }
}

/// Any other path under `/console`.
pub async fn not_found() -> ConsoleError {
    ConsoleError::NotFound("page".to_owned())
}
