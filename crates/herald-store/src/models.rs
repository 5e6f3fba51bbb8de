//! The rows the store reads and writes. Times are `OffsetDateTime` in UTC; backends choose how to
//! keep them.

use std::collections::BTreeMap;
use std::str::FromStr;

use herald_catalog::envelope::{Event, RenderFormat};
use herald_catalog::taxonomy::Taxonomy;
use herald_core::delivery::DeliveryState;
use serde_json::{Map, Value};
use time::OffsetDateTime;

#[derive(Debug, Clone, PartialEq)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    /// Written into Asgardeo `iss` when a producer gave none.
    pub issuer: Option<String>,
    pub created_at: OffsetDateTime,
}

impl Tenant {
    /// The issuer Herald writes for this tenant.
    pub fn issuer_or_default(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("urn:herald:tenant:{}", self.id))
    }
}

/// An API key, kept only as its hash. A key without a tenant is an admin key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant_id: Option<String>,
    pub key_hash: String,
    /// The key's first characters, to recognise it in a list; empty for keys made before
    /// Herald kept them.
    pub prefix: String,
    /// What the key is for, as its creator put it.
    pub name: Option<String>,
    /// The admin key `herald serve` made at first start; a configured `HERALD_ADMIN_KEY`
    /// replaces it.
    pub generated_at_start: bool,
    pub created_at: OffsetDateTime,
    /// When the key was last presented, to the minute (see [`LAST_USED_PRECISION`]).
    pub last_used_at: Option<OffsetDateTime>,
}

/// How finely a key's last use is kept. Writing it on every request would turn every read into
/// a write; once a minute per key is enough to tell a key in use from a forgotten one.
pub const LAST_USED_PRECISION: time::Duration = time::Duration::minutes(1);

impl ApiKeyRecord {
    /// The record of a key just made: only its hash and its display prefix are kept.
    pub fn for_new_key(
        id: String,
        key: &str,
        owner: KeyOwner<'_>,
        name: Option<String>,
        generated_at_start: bool,
        now: OffsetDateTime,
    ) -> Self {
        ApiKeyRecord {
            id,
            tenant_id: owner.tenant_id(),
            key_hash: herald_core::secret::hash_api_key(key),
            prefix: herald_core::api_key::display_prefix(key),
            name,
            generated_at_start,
            created_at: now,
            last_used_at: None,
        }
    }

    /// Whether a use at `now` should be written down: the first use, or the first one a
    /// [`LAST_USED_PRECISION`] after the last one written. (A backend may apply the same rule
    /// in SQL instead.)
    pub fn use_is_worth_recording(&self, now: OffsetDateTime) -> bool {
        self.last_used_at
            .is_none_or(|last_used_at| now - last_used_at >= LAST_USED_PRECISION)
    }
}

/// Whose keys a call is about: the admin keys, or one tenant's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOwner<'a> {
    Admin,
    Tenant(&'a str),
}

impl KeyOwner<'_> {
    pub fn tenant_id(self) -> Option<String> {
        match self {
            KeyOwner::Admin => None,
            KeyOwner::Tenant(tenant_id) => Some(tenant_id.to_owned()),
        }
    }
}

/// What revoking a key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRevocation {
    Revoked,
    /// No key with that id belongs to that owner.
    NotFound,
    /// It is the only admin key left, and the caller asked to keep one.
    LastAdminKey,
}

/// A custom event type a tenant registered, stored as given and compiled on load.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomTypeRecord {
    pub tenant_id: String,
    pub name: String,
    pub description: String,
    pub module: Option<String>,
    pub subject_pointer: Option<String>,
    pub schema: Value,
    pub example: Option<Value>,
    pub created_at: OffsetDateTime,
}

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

#[derive(Debug, Clone, PartialEq)]
pub struct EndpointRecord {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub description: String,
    pub filters: Vec<String>,
    pub format: RenderFormat,
    /// The signing secret as the user gave it (`whsec_...` or a vendor's plain secret).
    pub secret: String,
    /// During a rotation the old secret still signs until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<OffsetDateTime>,
    pub ordering: Ordering,
    pub retry_schedule_s: Vec<u64>,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub rate_limit_per_s: Option<u32>,
    pub headers: BTreeMap<String, String>,
    /// A disabled endpoint gets no deliveries at all.
    pub enabled: bool,
    /// A paused endpoint (a maintenance window on the receiver's side) still gets its deliveries
    /// on publish, but none is attempted until it is resumed; then the queue drains.
    pub paused: bool,
    pub disabled_reason: Option<String>,
    /// Start of the current run of failures; cleared by a success.
    pub failing_since: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An event to append; `seq` is given by the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: String,
    pub taxonomy: Taxonomy,
    pub event_type: String,
    pub subject: Option<String>,
    pub occurred_at: OffsetDateTime,
    pub payload: Value,
    pub context: Map<String, Value>,
    pub producer: Map<String, Value>,
}

/// The answer to one published event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub id: String,
    pub seq: i64,
    /// The id was already in the log: nothing was stored or delivered again.
    pub duplicate: bool,
    /// How many deliveries were created.
    pub n_deliveries: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub tenant_id: String,
    pub event: Event,
    pub received_at: OffsetDateTime,
    /// The payload was erased on request (GDPR); what is left is the envelope.
    pub erased: bool,
}

/// Which events to list: a page after a cursor, optionally of one type or subject.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub after_seq: i64,
    pub limit: usize,
    pub event_type: Option<String>,
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub id: String,
    pub tenant_id: String,
    pub endpoint_id: String,
    pub event_id: String,
    pub event_seq: i64,
    pub event_type: String,
    pub state: DeliveryState,
    pub n_attempts: u32,
    pub next_attempt_at: Option<OffsetDateTime>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub endpoint_id: Option<String>,
    pub state: Option<DeliveryState>,
    /// Deliveries created after this one (a cursor), in creation order.
    pub after_id: Option<String>,
    pub limit: usize,
}

/// A leased delivery with everything needed to attempt it.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery_id: String,
    pub n_attempts: u32,
    pub endpoint: EndpointRecord,
    pub event: Event,
    pub tenant_issuer: String,
    /// When the first attempt was due: for publish-to-delivery latency.
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub attempt_number: u32,
    pub started_at: OffsetDateTime,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The start of the response body, truncated.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    Delivered,
    RetryAt(OffsetDateTime),
    Exhausted,
}

/// What the worker learned from one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    pub tenant_id: String,
    pub endpoint_id: String,
    pub attempt: AttemptRecord,
    pub next: NextStep,
    /// Disable the endpoint (410 Gone, or failing for too long), with the reason shown to users.
    pub disable_endpoint: Option<String>,
    pub now: OffsetDateTime,
}

/// What to deliver again to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplaySelector {
    /// One event, by id, whatever the endpoint's filters say.
    Event(String),
    /// Every delivery of the endpoint that is exhausted or cancelled.
    Failed,
    /// Every matching event with a larger `seq`.
    SinceSeq(i64),
    /// Every matching event received at or after this time.
    SinceTime(OffsetDateTime),
}

/// What a blocking hook's failure (timeout, error, bad answer) means for the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FailurePolicy {
    /// The operation is refused: safe by default.
    #[default]
    FailClosed,
    /// The hook is skipped as if it had allowed without changes.
    FailOpen,
}

impl FailurePolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            FailurePolicy::FailClosed => "fail_closed",
            FailurePolicy::FailOpen => "fail_open",
        }
    }
}

impl FromStr for FailurePolicy {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "fail_closed" => Ok(FailurePolicy::FailClosed),
            "fail_open" => Ok(FailurePolicy::FailOpen),
            other => Err(format!(
                "unknown failure policy {other:?}: expected fail_closed or fail_open"
            )),
        }
    }
}

/// A blocking hook: called, in `position` order with the tenant's other hooks of the same event
/// type, before the operation happens.
#[derive(Debug, Clone, PartialEq)]
pub struct HookRecord {
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub url: String,
    pub position: i32,
    pub timeout_ms: u64,
    pub failure_policy: FailurePolicy,
    pub secret: String,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One evaluated blocking event, for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub event_id: Option<String>,
    pub is_allowed: bool,
    /// `[{"title","reason"}]` of a refusal.
    pub reasons: Value,
    /// `[{"hook_id","outcome","status","latency_ms"}]`, one entry per hook called.
    pub trace: Value,
    pub latency_us: u64,
    pub created_at: OffsetDateTime,
}

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

// --- the console's overview (issue 15) ---

/// The delivery attempts that started in one minute, and how many of them failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttemptMinute {
    /// The minute's start, UTC, on a whole minute.
    pub minute: OffsetDateTime,
    pub n_attempts: u64,
    /// Attempts that got no 2xx answer (another status, a timeout, a refused connection).
    pub n_failed: u64,
}
