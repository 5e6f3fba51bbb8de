//! Endpoints (subscribers): where deliveries go, how they are signed, ordered and retried.
//!
//! The record holds what the API checked, already parsed: a backend that reads back a secret,
//! a schedule or a filter it cannot parse reports corrupt data instead of falling back on a
//! default.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use herald_catalog::envelope::RenderFormat;
use herald_catalog::filter::{FilterError, check_filter};
use herald_catalog::taxonomy::Taxonomy;
use herald_core::delivery::DisableReason;
use herald_core::ids::EndpointId;
use herald_core::retry::RetrySchedule;
use herald_core::secret::SigningSecret;
use herald_core::signing::SignatureScheme;
use time::OffsetDateTime;

/// How an endpoint's deliveries are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ordering {
    /// In parallel, no order promised.
    #[default]
    None,
    /// One subject's events one at a time, in `seq` order; other subjects are not held up.
    Subject,
    /// First in, first out for the whole endpoint.
    Strict,
}

impl Ordering {
    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::None => "none",
            Ordering::Subject => "subject",
            Ordering::Strict => "strict",
        }
    }
}

impl FromStr for Ordering {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "none" => Ok(Ordering::None),
            "subject" => Ok(Ordering::Subject),
            "strict" => Ok(Ordering::Strict),
            other => Err(format!(
                "unknown ordering {other:?}: expected none, subject or strict"
            )),
        }
    }
}

/// One of an endpoint's filters, its spelling checked (see [`herald_catalog::filter`]): an exact
/// type, a `*`-suffix wildcard, a taxonomy name, or `*`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EndpointFilter(String);

impl EndpointFilter {
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        check_filter(text)?;
        Ok(Self(text.to_owned()))
    }

    /// `*`, every event.
    pub fn everything() -> Self {
        Self("*".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this filter selects an event of `event_type` in `taxonomy`.
    pub fn matches(&self, event_type: &str, taxonomy: Taxonomy) -> bool {
        herald_catalog::filter::matches(&self.0, event_type, taxonomy)
    }

    /// Parses every filter of a list, or names the first that does not parse.
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Vec<Self>, (usize, FilterError)> {
        texts
            .iter()
            .enumerate()
            .map(|(index, text)| Self::parse(text.as_ref()).map_err(|error| (index, error)))
            .collect()
    }

    /// The filters as text, the form they are shown and stored in.
    pub fn texts(filters: &[Self]) -> Vec<String> {
        filters.iter().map(|filter| filter.0.clone()).collect()
    }
}

impl fmt::Debug for EndpointFilter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, formatter)
    }
}

impl fmt::Display for EndpointFilter {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRecord {
    pub id: EndpointId,
    pub tenant_id: String,
    pub url: String,
    pub description: String,
    pub filters: Vec<EndpointFilter>,
    pub format: RenderFormat,
    /// The signing secret (`whsec_...` or a vendor's plain secret), parsed when it was given.
    pub secret: SigningSecret,
    /// During a rotation the old secret still signs until `previous_secret_expires_at`.
    pub previous_secret: Option<SigningSecret>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub ordering: Ordering,
    /// Stored and shown in whole seconds (`retry_schedule_s`).
    pub retry_schedule: RetrySchedule,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub rate_limit_per_s: Option<u32>,
    pub headers: BTreeMap<String, String>,
    /// A disabled endpoint gets no deliveries at all.
    pub enabled: bool,
    /// A paused endpoint (a maintenance window on the receiver's side) still gets its deliveries
    /// on publish, but none is attempted until it is resumed; then the queue drains.
    pub paused: bool,
    /// Why Herald disabled it by itself; `None` when a person did, or when it is enabled.
    pub disabled_reason: Option<DisableReason>,
    /// Start of the current run of failures; cleared by a success.
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Which Standard Webhooks signatures its deliveries carry (`v1` HMAC by default; `v1a`
    /// signs with the tenant's Ed25519 key).
    pub signature_scheme: SignatureScheme,
}

impl EndpointRecord {
    /// The secrets that sign an attempt starting at `now`, newest first: the current one, and
    /// the previous one while its overlap lasts.
    pub fn live_secrets(&self, now: OffsetDateTime) -> Vec<&SigningSecret> {
        let mut secrets = vec![&self.secret];
        if let (Some(previous), Some(expires_at)) =
            (&self.previous_secret, self.previous_secret_expires_at)
            && expires_at > now
        {
            secrets.push(previous);
        }
        secrets
    }
}
