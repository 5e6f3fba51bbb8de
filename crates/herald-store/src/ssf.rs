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
