//! The blocking-hook runner: calls a tenant's hooks for one event, in order, with deadlines, and
//! merges their answers by the Authgear contract.
//!
//! Each hook receives the Authgear envelope with the mutations of the hooks before it applied,
//! signed like a delivery. The first refusal stops the chain. A hook that times out, answers
//! non-2xx (redirects included: they are never followed), answers malformed JSON, or mutates a
//! member it may not, has failed, and its failure policy decides: `fail_closed` refuses the
//! operation, `fail_open` skips the hook. The final payload is validated against the schema.

use std::time::{Duration, Instant};

use bytes::Bytes;
use herald_catalog::definition::EventTypeDef;
use herald_catalog::envelope::{Event, RenderFormat, RenderOptions, render_bytes};
use herald_catalog::json::parse_strict;
use herald_core::hooks::{HookAnswer, apply_mutations, interpret_hook_response};
use herald_core::ids::HookId;
use herald_core::signing::{NativeSignature, SignatureScheme};
use herald_store::models::{FailurePolicy, HookRecord};
use serde_json::Value;

use crate::http_client::{HttpClient, OutboundError, OutboundResult};
use crate::outbound::{Outbound, signed_request};

/// The largest hook answer read; a mutated user or JWT is well within it.
pub const HOOK_ANSWER_LIMIT: usize = 256 * 1024;

/// A refusal's words, as the identity system shows them to the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    pub title: Option<String>,
    pub reason: Option<String>,
}

/// What happened at one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookOutcome {
    Allowed,
    /// Allowed, with mutations applied.
    Mutated,
    Denied,
    /// Failed, and its `fail_closed` policy refused the operation.
    Failed(String),
    /// Failed, and its `fail_open` policy skipped it.
    FailedOpen(String),
}

impl HookOutcome {
    /// The outcome's name in traces.
    pub fn as_str(&self) -> &'static str {
        match self {
            HookOutcome::Allowed => "allowed",
            HookOutcome::Mutated => "mutated",
            HookOutcome::Denied => "denied",
            HookOutcome::Failed(_) => "failed",
            HookOutcome::FailedOpen(_) => "failed_open",
        }
    }

    pub fn error(&self) -> Option<&str> {
        match self {
            HookOutcome::Failed(error) | HookOutcome::FailedOpen(error) => Some(error),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    pub hook_id: HookId,
    pub outcome: HookOutcome,
    pub status: Option<u16>,
    /// Time spent on this hook's HTTP exchange.
    pub latency: Duration,
}

/// The chain's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainDecision {
    pub is_allowed: bool,
    /// The payload with every accepted mutation applied (the original when refused).
    pub payload: Value,
    pub reasons: Vec<Reason>,
    pub trace: Vec<TraceEntry>,
}

/// Runs `hooks` (already in position order, enabled only) for `event` of type `definition`,
/// answering within `chain_deadline`; `now` stamps the signatures.
pub async fn run_chain(
    client: &HttpClient,
    now: time::OffsetDateTime,
    event: &Event,
    tenant_id: &str,
    definition: &EventTypeDef,
    hooks: &[HookRecord],
    chain_deadline: Duration,
) -> ChainDecision {
    let started = Instant::now();
    let original = event.payload.clone();
    let mut current = event.clone();
    let mut trace = Vec::with_capacity(hooks.len());
    let refuse = |reasons: Vec<Reason>, trace: Vec<TraceEntry>| ChainDecision {
        is_allowed: false,
        payload: original.clone(),
        reasons,
        trace,
    };
    for hook in hooks {
        let remaining = chain_deadline.saturating_sub(started.elapsed());
        let (outcome, status, latency) = if remaining.is_zero() {
            (
                Err("the chain's deadline passed before this hook was called".to_owned()),
                None,
                Duration::ZERO,
            )
        } else {
            call_hook(client, now, &current, tenant_id, hook, remaining).await
        };
        let outcome = match outcome {
            Ok(HookAnswer::Deny { title, reason }) => {
                trace.push(TraceEntry {
                    hook_id: hook.id.clone(),
                    outcome: HookOutcome::Denied,
                    status,
                    latency,
                });
                return refuse(vec![Reason { title, reason }], trace);
            }
            Ok(HookAnswer::Allow { mutations: None }) => Ok(HookOutcome::Allowed),
            Ok(HookAnswer::Allow {
                mutations: Some(mutations),
            }) => match apply_mutations(&event.event_type, &current.payload, &mutations) {
                Ok(mutated) => {
                    current.payload = mutated;
                    Ok(HookOutcome::Mutated)
                }
                Err(error) => Err(format!("forbidden mutation: {error}")),
            },
            Err(error) => Err(error),
        };
        match outcome {
            Ok(outcome) => trace.push(TraceEntry {
                hook_id: hook.id.clone(),
                outcome,
                status,
                latency,
            }),
            Err(error) if hook.failure_policy == FailurePolicy::FailOpen => {
                trace.push(TraceEntry {
                    hook_id: hook.id.clone(),
                    outcome: HookOutcome::FailedOpen(error),
                    status,
                    latency,
                });
            }
            Err(error) => {
                trace.push(TraceEntry {
                    hook_id: hook.id.clone(),
                    outcome: HookOutcome::Failed(error.clone()),
                    status,
                    latency,
                });
                return refuse(
                    vec![Reason {
                        title: Some("A hook failed".to_owned()),
                        reason: Some(format!("hook {}: {error}", hook.id)),
                    }],
                    trace,
                );
            }
        }
    }
    if current.payload != original
        && let Err(problems) = definition.validate_payload(&current.payload)
    {
        let listed: Vec<String> = problems.iter().map(ToString::to_string).collect();
        return refuse(
            vec![Reason {
                title: Some("The mutated payload is invalid".to_owned()),
                reason: Some(listed.join("; ")),
            }],
            trace,
        );
    }
    ChainDecision {
        is_allowed: true,
        payload: current.payload,
        reasons: Vec::new(),
        trace,
    }
}

/// One hook's exchange: the parsed answer, or why it failed.
async fn call_hook(
    client: &HttpClient,
    now: time::OffsetDateTime,
    event: &Event,
    tenant_id: &str,
    hook: &HookRecord,
    remaining: Duration,
) -> (Result<HookAnswer, String>, Option<u16>, Duration) {
    let options = RenderOptions {
        tenant_id,
        issuer: "",
    };
    let body = Bytes::from(render_bytes(event, RenderFormat::Native, &options));
    let timeout = Duration::from_millis(hook.timeout_ms).min(remaining);
    // A hook is always sent Authgear's native envelope, so it carries Authgear's native
    // signature as well as the Standard Webhooks ones.
    let request = match signed_request(Outbound {
        url: &hook.url,
        extra_headers: &[],
        body,
        secrets: &[&hook.secret],
        ed25519_keys: &[],
        scheme: SignatureScheme::V1,
        native: NativeSignature::AuthgearBodyHex,
        msg_id: &event.id,
        timestamp_s: now.unix_timestamp(),
        timeout,
    }) {
        Ok(request) => request,
        Err(error) => return (Err(format!("cannot sign: {error}")), None, Duration::ZERO),
    };
    match client.send_reading(request, HOOK_ANSWER_LIMIT).await {
        OutboundResult::Responded {
            status,
            body_excerpt,
            latency,
            ..
        } => {
            let answer = if (200..300).contains(&status) {
                // The strict parser refuses a repeated member, so a hook cannot say
                // `"is_allowed": false` and `true` and be read as whichever came last.
                parse_strict(body_excerpt.as_bytes())
                    .map_err(|error| error.to_string())
                    .and_then(|document| {
                        interpret_hook_response(document).map_err(|error| error.to_string())
                    })
                    .map_err(|error| format!("malformed answer: {error}"))
            } else if (300..400).contains(&status) {
                Err(format!(
                    "answered HTTP {status}; redirects are not followed"
                ))
            } else {
                Err(format!("answered HTTP {status}"))
            };
            (answer, Some(status), latency)
        }
        OutboundResult::Failed {
            error: OutboundError::Timeout,
            latency,
        } => (
            Err(format!("timed out after {} ms", timeout.as_millis())),
            None,
            latency,
        ),
        OutboundResult::Failed { error, latency } => (Err(error.to_string()), None, latency),
    }
}
