//! Blocking hooks and the decisions their chains reached.

use std::str::FromStr;

use herald_core::ids::{HookDecisionId, HookId};
use herald_core::secret::SigningSecret;
use serde_json::Value;
use time::OffsetDateTime;

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
    pub id: HookId,
    pub tenant_id: String,
    pub event_type: String,
    pub url: String,
    pub position: i32,
    pub timeout_ms: u64,
    pub failure_policy: FailurePolicy,
    pub secret: SigningSecret,
    pub enabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// One evaluated blocking event, for the audit trail.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub id: HookDecisionId,
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
