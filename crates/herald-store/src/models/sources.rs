//! Sources: a tenant's inbound connections from identity vendors, with their counters.

use std::str::FromStr;

use serde_json::Value;
use time::OffsetDateTime;

/// Which vendor a source receives from; it decides how requests are authenticated and which
/// envelope is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Webhooks and blocking hooks signed with `x-authgear-body-signature`.
    Authgear,
    /// A WebSub hub: intent verification by GET, deliveries signed with `X-Hub-Signature`.
    Asgardeo,
    /// The event exporter over generic HTTP: a configured header value or basic credentials.
    Onewelcome,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Authgear => "authgear",
            SourceKind::Asgardeo => "asgardeo",
            SourceKind::Onewelcome => "onewelcome",
        }
    }
}

impl FromStr for SourceKind {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "authgear" => Ok(SourceKind::Authgear),
            "asgardeo" => Ok(SourceKind::Asgardeo),
            "onewelcome" => Ok(SourceKind::Onewelcome),
            other => Err(format!(
                "unknown source kind {other:?}: expected authgear, asgardeo or onewelcome"
            )),
        }
    }
}

/// How many of a source's latest errors are kept.
pub const SOURCE_ERRORS_KEPT: usize = 10;

/// One refused or failed ingest request, as the source's operator sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceErrorEntry {
    pub at: OffsetDateTime,
    /// The HTTP status Herald answered with.
    pub status: u16,
    pub detail: String,
}

/// A tenant's inbound connection for one vendor, at `/v1/ingest/{id}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    pub id: String,
    pub tenant_id: String,
    pub kind: SourceKind,
    pub name: Option<String>,
    /// The HMAC secret (Authgear, Asgardeo), or the header value or basic password (OneWelcome).
    pub secret: String,
    /// OneWelcome: the header that carries `secret`. `None` with a `username` means basic auth.
    pub header_name: Option<String>,
    /// OneWelcome: the basic-auth username.
    pub username: Option<String>,
    /// Asgardeo: the WebSub topics whose intent verification is confirmed.
    pub accepted_topics: Vec<String>,
    /// Asgardeo: when the hub's last confirmed subscription lapses (`None`: none, or unsubscribed).
    pub lease_expires_at: Option<OffsetDateTime>,
    pub n_accepted: u64,
    pub n_duplicates: u64,
    pub n_refused: u64,
    pub last_success_at: Option<OffsetDateTime>,
    pub last_error_at: Option<OffsetDateTime>,
    /// Newest first, at most [`SOURCE_ERRORS_KEPT`].
    pub last_errors: Vec<SourceErrorEntry>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What one ingest request did, to be added to its source's counters.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceOutcome {
    pub at: OffsetDateTime,
    pub n_accepted: u64,
    pub n_duplicates: u64,
    pub n_refused: u64,
    /// Set when the request was refused or failed; becomes the newest of the last errors.
    pub error: Option<SourceErrorEntry>,
}

impl SourceErrorEntry {
    /// The stored form of a list of entries (newest first): a JSON array of
    /// `{"at": unix ms, "status", "detail"}`, the same text on both backends.
    pub fn list_to_json(entries: &[SourceErrorEntry]) -> Value {
        Value::Array(entries.iter().map(SourceErrorEntry::to_json).collect())
    }

    pub fn to_json(&self) -> Value {
        let at_ms = i64::try_from(self.at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
        serde_json::json!({"at": at_ms, "status": self.status, "detail": self.detail})
    }

    /// Reads what [`SourceErrorEntry::list_to_json`] wrote; malformed entries are skipped.
    pub fn list_from_json(value: &Value) -> Vec<SourceErrorEntry> {
        let Some(items) = value.as_array() else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let at_ms = item.get("at")?.as_i64()?;
                let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
                    .ok()?;
                Some(SourceErrorEntry {
                    at,
                    status: u16::try_from(item.get("status")?.as_u64()?).ok()?,
                    detail: item.get("detail")?.as_str()?.to_owned(),
                })
            })
            .collect()
    }
}
