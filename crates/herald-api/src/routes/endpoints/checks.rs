//! The checks an endpoint's settings pass before they are stored, each parsing into the type the
//! record keeps and answering a 422 that points at the member at fault.

use std::collections::BTreeMap;

use herald_catalog::envelope::RenderFormat;
use herald_core::retry::RetrySchedule;
use herald_core::signing::SignatureScheme;
use herald_store::models::{EndpointFilter, Ordering};

use crate::error::{ApiError, ApiResult};

pub(super) const DEFAULT_TIMEOUT_MS: u64 = 15_000;
pub(super) const DEFAULT_MAX_CONCURRENCY: u32 = 16;

/// Headers Herald sets itself; an endpoint's custom headers may not replace them.
pub(super) const RESERVED_HEADERS: [&str; 9] = [
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-authgear-body-signature",
    "x-hub-signature",
    "content-type",
    "content-length",
    "host",
    "user-agent",
];

/// Headers about the connection and the message's framing rather than its content: the
/// hop-by-hop fields of RFC 9110 §7.6.1 (`Connection` and the fields it governs: `Keep-Alive`,
/// `TE`, `Transfer-Encoding`, `Upgrade`, `Proxy-Connection`, plus `Trailer`), `Expect`, and every
/// `Proxy-*` field. Set by a tenant, they could change how Herald's own HTTP client frames or
/// keeps a request (a second `Transfer-Encoding` is the classic start of request smuggling), so
/// they are refused rather than sent.
pub(super) const CONNECTION_HEADERS: [&str; 8] = [
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "proxy-connection",
];

/// Why a custom header name may not be used, if it may not.
pub(super) fn refused_header_reason(name: &str) -> Option<&'static str> {
    let lowercase = name.to_ascii_lowercase();
    if RESERVED_HEADERS.contains(&lowercase.as_str()) {
        Some("Herald sets this header itself")
    } else if CONNECTION_HEADERS.contains(&lowercase.as_str()) || lowercase.starts_with("proxy-") {
        Some("a hop-by-hop or framing header: it describes the connection, not the webhook")
    } else {
        None
    }
}

pub(super) fn parse_signature_scheme(name: &str) -> ApiResult<SignatureScheme> {
    SignatureScheme::parse(name).ok_or_else(|| {
        ApiError::invalid(
            "/signature_scheme",
            "expected \"v1\", \"v1a\" or \"v1a+v1\"",
        )
    })
}

pub(super) fn parse_filters(filters: &[String]) -> ApiResult<Vec<EndpointFilter>> {
    if filters.is_empty() {
        return Err(ApiError::invalid(
            "/filters",
            "at least one filter, e.g. \"*\" for every event",
        ));
    }
    if filters.len() > 100 {
        return Err(ApiError::invalid("/filters", "at most 100 filters"));
    }
    EndpointFilter::parse_all(filters)
        .map_err(|(index, error)| ApiError::invalid(format!("/filters/{index}"), error.to_string()))
}

pub(super) fn parse_format(format: &str) -> ApiResult<RenderFormat> {
    RenderFormat::parse(format)
        .ok_or_else(|| ApiError::invalid("/format", "expected \"native\" or \"canonical\""))
}

pub(super) fn parse_ordering(ordering: &str) -> ApiResult<Ordering> {
    ordering
        .parse()
        .map_err(|message: String| ApiError::invalid("/ordering", message))
}

pub(super) fn parse_schedule(delays_s: &[u64]) -> ApiResult<RetrySchedule> {
    RetrySchedule::from_seconds(delays_s)
        .map_err(|error| ApiError::invalid("/retry_schedule_s", error.to_string()))
}

pub(super) fn check_limits(
    timeout_ms: u64,
    max_concurrency: u32,
    rate_limit_per_s: Option<u32>,
) -> ApiResult<()> {
    if !(100..=60_000).contains(&timeout_ms) {
        return Err(ApiError::invalid(
            "/timeout_ms",
            "between 100 and 60000 milliseconds",
        ));
    }
    if !(1..=1_000).contains(&max_concurrency) {
        return Err(ApiError::invalid("/max_concurrency", "between 1 and 1000"));
    }
    if rate_limit_per_s.is_some_and(|rate| !(1..=100_000).contains(&rate)) {
        return Err(ApiError::invalid(
            "/rate_limit_per_s",
            "between 1 and 100000 per second",
        ));
    }
    Ok(())
}

pub(super) fn check_headers(headers: &BTreeMap<String, String>) -> ApiResult<()> {
    if headers.len() > 20 {
        return Err(ApiError::invalid("/headers", "at most 20 custom headers"));
    }
    for (name, value) in headers {
        let path = format!(
            "/headers/{}",
            herald_catalog::validation::escape_pointer_token(name)
        );
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(ApiError::invalid(path, "not a valid HTTP header name"));
        }
        if let Some(reason) = refused_header_reason(name) {
            return Err(ApiError::invalid(path, reason));
        }
        if http::HeaderValue::from_str(value).is_err() || value.len() > 4096 {
            return Err(ApiError::invalid(
                path,
                "not a valid HTTP header value (visible ASCII, at most 4096)",
            ));
        }
    }
    Ok(())
}
