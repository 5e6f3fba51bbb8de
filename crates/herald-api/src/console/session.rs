//! The console's session: the API key in an HttpOnly cookie, authenticated on every request
//! exactly as a bearer key, and the CSRF token derived from it.
//!
//! Nothing is stored on the server: any node can check a cookie (it holds the key itself) and a
//! form's token (an HMAC keyed with that key), so a cluster needs no shared session table, and
//! revoking the key ends every session that uses it on the next request.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use herald_core::secret::constant_time_eq;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::auth::{Caller, TenantScope, authenticate_key};
use crate::console::error::{ConsoleError, ConsoleResult};
use crate::state::AppState;

/// The cookie holding the session's key (hex-encoded, so any key is a valid cookie value).
pub const COOKIE_NAME: &str = "herald_console";

/// What the CSRF token is for: bound into the HMAC so the token is good for nothing else.
const CSRF_PURPOSE: &[u8] = b"herald console form v1";

/// A signed-in browser: who the key belongs to, and the token its forms must carry.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    pub caller: Caller,
    pub csrf: String,
}

impl ConsoleSession {
    pub fn is_admin(&self) -> bool {
        self.caller == Caller::Admin
    }

    /// Refuses a state-changing form whose token is not this session's. The comparison is in
    /// constant time so the token cannot be guessed byte by byte from response timings.
    pub fn check_csrf(&self, presented: Option<&str>) -> ConsoleResult<()> {
        let presented = presented.unwrap_or_default();
        // An empty expected token (never made, see `csrf_token`) matches nothing.
        if !self.csrf.is_empty()
            && presented.len() == self.csrf.len()
            && constant_time_eq(presented.as_bytes(), self.csrf.as_bytes())
        {
            Ok(())
        } else {
            Err(ConsoleError::Forbidden(
                "this form is stale or did not come from the console: reload the page and try again",
            ))
        }
    }
}

/// The form token of a session whose key is `key`: HMAC-SHA256 keyed with the key itself, so
/// only a holder of the key (the browser that has the cookie, never a page on another site) can
/// produce it, and every node computes the same one.
pub fn csrf_token(key: &str) -> String {
    // HMAC accepts a key of any length (RFC 2104 §2), so `new_from_slice` cannot fail here.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(CSRF_PURPOSE);
    hex::encode(mac.finalize().into_bytes())
}

/// The key in the request's session cookie, if there is one.
fn cookie_key(headers: &HeaderMap) -> Option<String> {
    // RFC 6265 §5.4: a browser sends its cookies as `name=value` pairs separated by "; ",
    // possibly in several `Cookie` fields.
    let prefix = format!("{COOKIE_NAME}=");
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().strip_prefix(prefix.as_str()))
        .find_map(|encoded| hex::decode(encoded).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// Whether the browser reached us over https: directly never (Herald serves plain HTTP), so
/// only a proxy in front can say so, with `X-Forwarded-Proto` or `Forwarded: proto=https`.
fn came_over_https(headers: &HeaderMap) -> bool {
    let forwarded_proto = headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("https"));
    let forwarded = headers
        .get(header::FORWARDED)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.to_ascii_lowercase().contains("proto=https"));
    forwarded_proto || forwarded
}

/// The `Set-Cookie` value that starts a session with `key`: HttpOnly (no script reads it),
/// SameSite=Strict (no other site's page sends it), scoped to the console's paths, Secure when
/// the browser came over https, and a session cookie (no `Max-Age`: it ends with the browser).
pub fn session_cookie(key: &str, request_headers: &HeaderMap) -> ConsoleResult<HeaderValue> {
    let secure = if came_over_https(request_headers) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={}; HttpOnly; SameSite=Strict; Path=/console{secure}",
        hex::encode(key.as_bytes())
    ))
    .map_err(|error| ConsoleError::Internal(format!("session cookie: {error}")))
}

/// The `Set-Cookie` value that ends the session (RFC 6265 §3.1: an expiry in the past removes it).
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("herald_console=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0")
}

/// The caller behind a presented key, as the API would see it, with its session.
pub async fn session_for_key(key: &str, state: &AppState) -> ConsoleResult<ConsoleSession> {
    let caller = authenticate_key(key, state)
        .await
        .map_err(ConsoleError::from)?;
    Ok(ConsoleSession {
        caller,
        csrf: csrf_token(key),
    })
}

impl FromRequestParts<AppState> for ConsoleSession {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ConsoleResult<Self> {
        if let Some(session) = parts.extensions.get::<ConsoleSession>() {
            return Ok(session.clone());
        }
        let key = cookie_key(&parts.headers).ok_or(ConsoleError::SignIn)?;
        let session = session_for_key(&key, state).await?;
        // The API's own extractors (`TenantScope`) take the caller from here, so the console's
        // tenant pages are scoped by exactly the API's rule.
        parts.extensions.insert(session.caller.clone());
        parts.extensions.insert(session.clone());
        Ok(session)
    }
}

impl OptionalFromRequestParts<AppState> for ConsoleSession {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> ConsoleResult<Option<Self>> {
        if cookie_key(&parts.headers).is_none() {
            return Ok(None);
        }
        match <ConsoleSession as FromRequestParts<AppState>>::from_request_parts(parts, state).await
        {
            Ok(session) => Ok(Some(session)),
            Err(ConsoleError::SignIn) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// A signed-in browser on one tenant's pages: the session, and the tenant it may see.
#[derive(Debug, Clone)]
pub struct ConsoleTenant {
    pub session: ConsoleSession,
    pub tenant_id: String,
}

impl FromRequestParts<AppState> for ConsoleTenant {
    type Rejection = ConsoleError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ConsoleResult<Self> {
        let session =
            <ConsoleSession as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await?;
        let scope = TenantScope::from_request_parts(parts, state).await?;
        Ok(ConsoleTenant {
            session,
            tenant_id: scope.tenant_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{COOKIE_NAME, cookie_key, csrf_token};
    use axum::http::{HeaderMap, HeaderValue, header};

    #[test]
    fn the_key_comes_back_from_its_cookie_among_others() {
        let mut headers = HeaderMap::new();
        let cookie = format!("theme=dark; {COOKIE_NAME}={}; x=1", hex::encode("hk_abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_str(&cookie).expect("cookie"),
        );
        assert_eq!(cookie_key(&headers).as_deref(), Some("hk_abc"));
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("herald_console=zz"),
        );
        assert_eq!(cookie_key(&headers), None);
    }

    #[test]
    fn the_token_depends_on_the_key() {
        assert_eq!(csrf_token("a"), csrf_token("a"));
        assert_ne!(csrf_token("a"), csrf_token("b"));
        assert_eq!(csrf_token("a").len(), 64);
    }
}
