//! The behaviour every storage backend must have, written once and run against each.
//!
//! A backend's test file calls [`conformance_tests!`](crate::conformance_tests) with an async
//! expression that makes a fresh, empty store; every check becomes one test of that name.
//!
//! The checks live in one submodule per resource area ([`tenants`], [`publish`], [`claims`],
//! [`attempts`], [`operational`], [`endpoints`], [`hooks`], [`retention`], [`sources`],
//! [`ssf_poll`], [`ssf_push`]); this module keeps the macro and the fixtures they share.
//!
//! # The rule that keeps the list whole
//!
//! Every `pub async fn` in an area module is a check and takes the store
//! (`store: Arc<dyn Store>`); every check is named in the `conformance_tests!` list under its
//! module (`area: [check, ...]`). Helpers stay private or synchronous. A unit test in this
//! crate (`conformance/tests.rs`) reads these sources and fails when a check is missing from the
//! list or a listed name is no check of that module, so a new check cannot be forgotten: write
//! it, then add its name to the list. A new area module needs a `pub mod` line here and its own
//! `area: [...]` entry.

pub mod attempts;
pub mod claims;
pub mod endpoints;
pub mod hooks;
pub mod operational;
pub mod publish;
pub mod retention;
pub mod sources;
pub mod ssf_poll;
pub mod ssf_push;
pub mod tenants;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use herald_catalog::envelope::RenderFormat;
use herald_catalog::taxonomy::Taxonomy;
use herald_core::ids::{DeliveryId, EndpointId};
use herald_core::retry::RetrySchedule;
use herald_core::secret::SigningSecret;
use herald_core::signing::SignatureScheme;
use serde_json::{Map, json};
use time::{Duration, OffsetDateTime};

use crate::Store;
use crate::models::{
    AttemptOutcome, AttemptRecord, EndpointFilter, EndpointRecord, NewEvent, NextStep, Ordering,
    Tenant,
};

/// Expands to one `#[tokio::test]` per conformance check, each on a store from `$make`.
///
/// Each check is listed under the module that holds it; the test is named after the check alone.
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::conformance_tests!(@each $make;
            tenants: [
                tenants_and_api_keys,
                api_keys_are_listed_used_and_revoked,
                custom_types_are_per_tenant,
                tenants_never_see_each_other,
            ],
            publish: [
                publish_orders_and_deduplicates,
                publish_delivers_to_matching_enabled_endpoints,
                publish_to_an_unknown_tenant_stores_nothing,
                events_page_by_cursor_and_filter,
                an_events_deliveries_are_listed_within_its_tenant,
            ],
            claims: [
                claims_lease_and_expired_leases_come_back,
                subject_ordering_holds_one_subject_and_lets_others_flow,
                strict_ordering_and_concurrency_limits,
                rate_limits_spread_claims_over_time,
                work_that_returns_after_an_idle_claim_is_claimed,
                a_subject_claim_reads_past_any_number_of_blocked_deliveries,
            ],
            attempts: [
                attempts_move_deliveries_through_their_states,
                retry_and_replay,
                attempts_are_counted_per_minute_within_the_tenant,
            ],
            operational: [
                an_attempt_publishes_its_operational_events_in_its_own_transaction,
            ],
            endpoints: [
                endpoints_update_and_delete,
                a_gone_endpoint_is_disabled_and_its_work_waits,
                a_paused_endpoint_queues_its_deliveries_until_resumed,
                endpoints_keep_their_signature_scheme,
                a_signing_key_is_retired_alone_within_its_tenant,
            ],
            hooks: [
                hooks_are_ordered_per_event_type_and_tenant,
                decisions_are_listed_by_cursor_and_expire,
            ],
            retention: [
                retention_removes_old_events_in_batches,
                erasure_empties_a_subjects_events,
            ],
            sources: [
                sources_are_per_tenant_and_count_their_outcomes,
            ],
            ssf_poll: [
                ssf_keys_streams_subjects_and_poll_queue,
            ],
            ssf_push: [
                ssf_streams_follow_the_log_and_push_under_a_lease,
            ],
        );
    };
    (@each $make:expr; $($area:ident: [$($name:ident),+ $(,)?]),+ $(,)?) => {
        $($(
            #[tokio::test]
            async fn $name() {
                let store: std::sync::Arc<dyn $crate::Store> = $make.await;
                $crate::conformance::$area::$name(store).await;
            }
        )+)+
    };
}

pub(crate) fn at(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("in range")
}

async fn tenant(store: &Arc<dyn Store>, id: &str) {
    store
        .create_tenant(Tenant {
            id: id.to_owned(),
            name: format!("Tenant {id}"),
            issuer: None,
            created_at: at(0),
        })
        .await
        .expect("tenant created");
}

/// The secret the conformance records sign with.
pub(crate) fn test_secret() -> SigningSecret {
    SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("a valid secret")
}

/// The endpoint id a fixture names, such as `"ep_1"`: a literal that is not one is a mistake in
/// the test.
pub fn endpoint_id(text: &str) -> EndpointId {
    EndpointId::parse(text).unwrap_or_else(|error| panic!("a fixture's endpoint id: {error}"))
}

/// An endpoint of `tenant_id` with these filters and ordering, enabled, defaults elsewhere; `id`
/// is a valid endpoint id such as `"ep_1"`.
pub fn endpoint(tenant_id: &str, id: &str, filters: &[&str], ordering: Ordering) -> EndpointRecord {
    EndpointRecord {
        id: endpoint_id(id),
        tenant_id: tenant_id.to_owned(),
        url: format!("https://hooks.example.com/{id}"),
        description: String::new(),
        filters: EndpointFilter::parse_all(filters).expect("valid filters"),
        format: RenderFormat::Native,
        secret: test_secret(),
        previous_secret: None,
        previous_secret_expires_at: None,
        ordering,
        retry_schedule: RetrySchedule::from_seconds(&[5, 300]).expect("a schedule"),
        timeout_ms: 15_000,
        max_concurrency: 16,
        rate_limit_per_s: None,
        headers: BTreeMap::new(),
        enabled: true,
        paused: false,
        disabled_reason: None,
        failing_since: None,
        created_at: at(0),
        updated_at: at(0),
        signature_scheme: SignatureScheme::V1,
    }
}

/// An Authgear `user.*` event of `subject`.
pub fn event(id: &str, event_type: &str, subject: Option<&str>) -> NewEvent {
    NewEvent {
        id: id.to_owned(),
        taxonomy: Taxonomy::Authgear,
        event_type: event_type.to_owned(),
        subject: subject.map(str::to_owned),
        occurred_at: at(0),
        payload: json!({"user": {"id": subject}}),
        context: Map::new(),
        producer: Map::new(),
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|item| id(item).to_owned()).collect()
}

async fn claim_event_ids(store: &Arc<dyn Store>, now: OffsetDateTime) -> Vec<String> {
    let claimed = store
        .claim_due(now, 100, Duration::seconds(30))
        .await
        .expect("claim");
    let mut event_ids = ids(&claimed, |claim| claim.event.id.as_str());
    event_ids.sort();
    event_ids
}

pub(crate) fn outcome(
    tenant_id: &str,
    endpoint_id: &str,
    delivery_id: &DeliveryId,
    number: u32,
    next: NextStep,
    now: OffsetDateTime,
) -> AttemptOutcome {
    AttemptOutcome {
        tenant_id: tenant_id.to_owned(),
        endpoint_id: self::endpoint_id(endpoint_id),
        attempt: AttemptRecord {
            delivery_id: delivery_id.clone(),
            attempt_number: number,
            started_at: now,
            status: Some(if next == NextStep::Delivered {
                200
            } else {
                500
            }),
            latency_ms: 12,
            response_excerpt: Some("ok".to_owned()),
            error: None,
        },
        next,
        disable_endpoint: None,
        now,
        operational_events: Vec::new(),
    }
}
