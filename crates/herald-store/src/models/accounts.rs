//! Tenants, API keys and custom event types: who may call Herald, and what they registered.

use herald_core::ids::ApiKeyId;
use serde_json::Value;
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
    pub id: ApiKeyId,
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
        id: ApiKeyId,
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
