//! Public: the transmitter configuration metadata (SSF 1.0 §7) and the tenant's JWKS, and the
//! issuer both are named by.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use herald_ssf::jws::jwk_set;
use herald_ssf::stream::{POLL_METHOD, PUSH_METHOD};
use serde_json::{Value, json};

use super::keys::load_key;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Where receivers reach Herald: the transmitter's issuer and its endpoints are built from it.
/// `--public-url` when configured. Without it, the request's Host header, but only when it names
/// a loopback address: that is development on one machine, where nobody else can choose the
/// name; anywhere else a Host header chosen by the caller would become the issuer of SETs.
fn base_url(state: &AppState, headers: &HeaderMap) -> ApiResult<String> {
    if let Some(public_url) = &state.settings.public_url {
        return Ok(public_url.clone());
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("localhost");
    if !is_loopback_host(host) {
        return Err(ApiError::BadRequest(
            "this Herald has no public URL (--public-url or HERALD_PUBLIC_URL), so it cannot name \
             its Shared Signals issuer: the Host header is trusted for that only on loopback"
                .to_owned(),
        ));
    }
    let scheme = match headers
        .get("x-forwarded-proto")
        .and_then(|value| value.to_str().ok())
    {
        Some("https") => "https",
        _ => "http",
    };
    Ok(format!("{scheme}://{host}"))
}

/// Whether a Host header value (`name[:port]`) names this machine: `localhost` or a loopback IP.
fn is_loopback_host(host: &str) -> bool {
    let Ok(authority) = host.parse::<http::uri::Authority>() else {
        return false;
    };
    let name = authority.host();
    let name = name
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

pub(super) fn issuer(state: &AppState, headers: &HeaderMap, tenant_id: &str) -> ApiResult<String> {
    Ok(format!("{}/ssf/{tenant_id}", base_url(state, headers)?))
}

async fn require_tenant(state: &AppState, tenant_id: &str) -> ApiResult<()> {
    match state.store.get_tenant(tenant_id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("tenant {tenant_id:?}"))),
    }
}

/// SSF 1.0 §7.1: transmitter configuration metadata, at the issuer's well-known URL (§7.2.1:
/// `/.well-known/ssf-configuration` inserted between the host and the issuer's path).
pub(super) async fn configuration(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, &tenant_id).await?;
    let issuer = issuer(&state, &headers, &tenant_id)?;
    Ok(Json(json!({
        "spec_version": "1_0",
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "delivery_methods_supported": [PUSH_METHOD, POLL_METHOD],
        "configuration_endpoint": format!("{issuer}/streams"),
        "status_endpoint": format!("{issuer}/streams/status"),
        "add_subject_endpoint": format!("{issuer}/streams/subjects/add"),
        "remove_subject_endpoint": format!("{issuer}/streams/subjects/remove"),
        "verification_endpoint": format!("{issuer}/streams/verify"),
        "critical_subject_members": [],
        "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6750"}],
        // Receivers name the subjects they want; "all subjects" is granted per receiver.
        "default_subjects": "NONE",
    })))
}

/// The tenant's public signing keys: the current one and those retired within the overlap.
pub(super) async fn jwks(
    State(state): State<AppState>,
    Path(tenant_id): Path<String>,
) -> ApiResult<Json<Value>> {
    require_tenant(&state, &tenant_id).await?;
    let now = state.clock.now();
    let overlap = state.settings.secret_overlap;
    let keys = state
        .store
        .list_ssf_signing_keys(&tenant_id)
        .await?
        .iter()
        .filter(|record| {
            record
                .retired_at
                .is_none_or(|retired_at| retired_at + overlap > now)
        })
        .map(load_key)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(jwk_set(&keys)))
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_hosts_may_name_the_issuer() {
        fn check(host: &str, expected: bool) {
            assert_eq!(is_loopback_host(host), expected, "{host}");
        }
        check("localhost", true);
        check("LOCALHOST:8470", true);
        check("127.0.0.1:40123", true);
        check("127.8.9.10", true);
        check("[::1]:8470", true);
        check("herald.example.com", false);
        check("localhost.evil.example", false);
        check("10.0.0.1:8470", false);
        check("[::2]", false);
        check("", false);
        check("a b", false);
    }
}
