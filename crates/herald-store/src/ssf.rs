//! Row models of Shared Signals (issue 14): tenants' SET signing keys, SSF receivers (the clients
//! that manage streams, with their hashed bearer tokens), streams, their subjects and the poll queue.
//!
//! A stream's settings are kept as one versioned JSON document (`config`) that the API layer
//! parses into its own types: the store only needs its id, tenant, receiver and status.

use time::OffsetDateTime;

/// One signing key of a tenant. The newest key not retired signs; retired keys stay published in
/// the JWKS until `retired_at` + the overlap so SETs signed just before a rotation still verify.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfSigningKeyRecord {
    pub kid: String,
    pub tenant_id: String,
    /// The JWS `alg`, e.g. `ES256`.
    pub algorithm: String,
    /// The private key in `herald_ssf::jws`'s stored form. Never shown by the API.
    pub private_key: String,
    pub created_at: OffsetDateTime,
    /// When a rotation replaced it (`None` while it signs).
    pub retired_at: Option<OffsetDateTime>,
}

/// A stream client: an SSF receiver the tenant lets manage its own streams with a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfReceiverRecord {
    pub id: String,
    pub tenant_id: String,
    pub name: Option<String>,
    /// SHA-256 of the token, hex: the token itself is shown once, at creation.
    pub token_hash: String,
    /// Whether this receiver may ask for every subject of the tenant (SSF `default_subjects: ALL`).
    pub may_receive_all_subjects: bool,
    pub created_at: OffsetDateTime,
}

/// One SSF stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfStreamRecord {
    pub id: String,
    pub tenant_id: String,
    pub receiver_id: String,
    /// The stream configuration as versioned JSON (`{"v": 1, ...}`), owned by the API layer.
    pub config: String,
    /// `enabled`, `paused` or `disabled`.
    pub status: String,
    pub status_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// A signed SET waiting in a poll stream's queue until the receiver acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfQueuedSet {
    pub stream_id: String,
    pub jti: String,
    /// The JWS compact serialization.
    pub token: String,
    pub created_at: OffsetDateTime,
}

// --- durable delivery: stream cursors on the event log, push leases and push attempts ---

/// A stream (enabled or paused) whose cursor is behind its tenant's event log: the events with
/// `cursor_seq < seq <= log_end_seq` have not been turned into SETs for it yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfStreamBehind {
    pub stream: SsfStreamRecord,
    pub cursor_seq: i64,
    pub log_end_seq: i64,
}

/// The SET at the head of an enabled stream's queue, due for a push, with the stream leased to
/// the caller until the lease it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfPushHead {
    pub stream: SsfStreamRecord,
    pub set: SsfQueuedSet,
    /// Push attempts of this SET so far (all failed, or it would not be queued).
    pub n_attempts: u32,
}

/// What one push attempt came to, and so what becomes of the SET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsfPushOutcome {
    /// The receiver accepted it: it leaves the queue.
    Accepted,
    /// The receiver rejected it for good (RFC 8935 §2.3, a 400): it leaves the queue.
    Rejected,
    /// It stays first in line and is pushed again at this time.
    Retry { next_attempt_at: OffsetDateTime },
    /// The retry schedule is used up: it leaves the queue.
    Exhausted,
}

impl SsfPushOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            SsfPushOutcome::Accepted => "accepted",
            SsfPushOutcome::Rejected => "rejected",
            SsfPushOutcome::Retry { .. } => "retry",
            SsfPushOutcome::Exhausted => "exhausted",
        }
    }

    /// Reads back what [`SsfPushOutcome::as_str`] wrote, with the retry time stored beside it.
    pub fn from_stored(name: &str, next_attempt_at: Option<OffsetDateTime>) -> Option<Self> {
        match (name, next_attempt_at) {
            ("accepted", _) => Some(SsfPushOutcome::Accepted),
            ("rejected", _) => Some(SsfPushOutcome::Rejected),
            ("exhausted", _) => Some(SsfPushOutcome::Exhausted),
            ("retry", Some(next_attempt_at)) => Some(SsfPushOutcome::Retry { next_attempt_at }),
            _ => None,
        }
    }

    pub fn next_attempt_at(self) -> Option<OffsetDateTime> {
        match self {
            SsfPushOutcome::Retry { next_attempt_at } => Some(next_attempt_at),
            _ => None,
        }
    }
}

/// One push of one SET to a stream's receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsfPushAttemptRecord {
    pub id: String,
    pub tenant_id: String,
    pub stream_id: String,
    pub jti: String,
    pub attempted_at: OffsetDateTime,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    pub latency_ms: u64,
    /// Why it failed: the transport error, or the receiver's RFC 8935 `err` code.
    pub error: Option<String>,
    pub outcome: SsfPushOutcome,
}

/// Which receivers a lookup reads: a tenant's (the API), or the one whose bearer token hashes to
/// this (authenticating a receiver's request, which names no tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SsfReceiverSelector<'a> {
    Tenant(&'a str),
    TokenHash(&'a str),
}
