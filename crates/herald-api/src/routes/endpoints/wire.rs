//! The endpoint API's wire types: what clients send (`...In`) and get back (`...Out`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointIn {
    pub url: String,
    /// Exact types, `*`-suffix wildcards (`user.*`), taxonomy names, or `*`.
    pub filters: Vec<String>,
    /// `whsec_<base64>` or a vendor's plain secret; generated when absent.
    pub secret: Option<String>,
    /// `native` (default) or `canonical`.
    pub format: Option<String>,
    /// `none` (default), `subject` or `strict`.
    pub ordering: Option<String>,
    pub retry_schedule_s: Option<Vec<u64>>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    pub rate_limit_per_s: Option<u32>,
    pub headers: Option<BTreeMap<String, String>>,
    /// `false` creates no deliveries at all; default `true`.
    pub enabled: Option<bool>,
    /// `true` queues deliveries without attempting them until the endpoint is resumed (a
    /// maintenance window on the receiver's side); default `false`.
    pub paused: Option<bool>,
    pub description: Option<String>,
    /// Standard Webhooks signatures in `webhook-signature`: `v1` (HMAC with the secret, the
    /// default), `v1a` (Ed25519 with the tenant's key; consumers verify with its `whpk_` public
    /// key) or `v1a+v1` (both, while consumers move over).
    pub signature_scheme: Option<String>,
}

/// A partial update: members left out keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointPatchIn {
    pub url: Option<String>,
    pub filters: Option<Vec<String>>,
    pub format: Option<String>,
    pub ordering: Option<String>,
    pub retry_schedule_s: Option<Vec<u64>>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<u32>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "deserialize_some")]
    pub rate_limit_per_s: Option<Option<u32>>,
    pub headers: Option<BTreeMap<String, String>>,
    pub enabled: Option<bool>,
    /// `false` resumes a paused endpoint: its queued deliveries go out.
    pub paused: Option<bool>,
    pub description: Option<String>,
    /// `v1`, `v1a` or `v1a+v1`.
    pub signature_scheme: Option<String>,
}

/// Distinguishes an explicit `null` (Some(None)) from a missing member (None).
fn deserialize_some<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointOut {
    pub id: String,
    pub url: String,
    pub description: String,
    pub filters: Vec<String>,
    pub format: String,
    pub ordering: String,
    pub retry_schedule_s: Vec<u64>,
    pub timeout_ms: u64,
    pub max_concurrency: u32,
    pub rate_limit_per_s: Option<u32>,
    pub headers: BTreeMap<String, String>,
    pub enabled: bool,
    /// Deliveries are queued but not attempted while `true`.
    pub paused: bool,
    pub disabled_reason: Option<String>,
    pub failing_since: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The signing secret: in the answers to create and rotate only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// `v1`, `v1a` or `v1a+v1`.
    pub signature_scheme: String,
    /// For `v1a` and `v1a+v1`: the `whpk_` public keys whose signatures deliveries carry now,
    /// newest first; consumers trust these. During a key rotation both old and new are listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature_public_keys: Option<Vec<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EndpointListOut {
    pub data: Vec<EndpointOut>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateIn {
    /// The new secret; generated when absent.
    pub secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RotateOut {
    pub secret: String,
    /// Until then the previous secret signs too.
    pub previous_secret_expires_at: String,
}

/// Exactly one of the members says what to replay.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayIn {
    pub event_id: Option<String>,
    /// Every exhausted delivery of the endpoint.
    pub failed: Option<bool>,
    pub since_seq: Option<i64>,
    /// RFC 3339: every matching event received since then.
    pub since: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayOut {
    pub n_replayed: u64,
}
