//! What endpoints and hooks share: a URL Herald will call (checked by the SSRF guard where it can
//! tell at once) and the secret it signs those calls with.

use herald_core::secret::SigningSecret;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The URL as it will be called, or a 422 at `/url` saying why it may not be.
pub fn check_url(state: &AppState, url: &str) -> ApiResult<String> {
    state
        .network_policy
        .check_url(url)
        .map(|target| target.as_str().to_owned())
        .map_err(|refused| ApiError::invalid("/url", refused.to_string()))
}

/// The secret as given (`whsec_...` or a vendor's plain secret), or a new `whsec_` one.
pub fn parse_secret(secret: Option<String>) -> ApiResult<SigningSecret> {
    match secret {
        None => Ok(SigningSecret::generate()),
        Some(text) => SigningSecret::parse(&text)
            .map_err(|error| ApiError::invalid("/secret", error.to_string())),
    }
}
