//! Recording delivery attempts, a group at a time (see `group_commit.rs`).
//!
//! A group writes all its attempt rows in one statement and all its deliveries' next states in
//! another; each endpoint that the group's outcomes change gets one update, computed from its
//! outcomes in the order they were recorded ([`EndpointChange::fold`]), so the result is the
//! one recording them one by one would have left.

use std::collections::{BTreeMap, HashSet};

use deadpool_postgres::Pool;
use herald_core::delivery::DeliveryState;
use herald_store::models::{AttemptOutcome, NextStep, Published};
use herald_store::{StoreError, StoreResult};

use crate::group_commit::GroupWork;
use crate::rows::{map_pool, ms, to_i64};
use crate::statements::{PipelinedTransaction, Sql};
use crate::{prepare, publish, wakeups};

/// Attempt outcomes, grouped.
pub(crate) struct Attempts;

impl GroupWork for Attempts {
    type Request = AttemptOutcome;
    type Answer = Vec<Published>;

    const MAX_GROUP_SIZE: usize = 512;

    fn size(_: &AttemptOutcome) -> usize {
        1
    }

    async fn commit(
        pool: &Pool,
        outcomes: &[AttemptOutcome],
    ) -> StoreResult<Vec<StoreResult<Vec<Published>>>> {
        let published = record_in_one_transaction(pool, outcomes).await?;
        Ok(published.into_iter().map(Ok).collect())
    }
}

/// What a run of outcomes does to its endpoint's failure state, whatever that state was.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct EndpointChange {
    /// An attempt succeeded: the failure streak before it no longer counts.
    pub(crate) reset: bool,
    /// When the first failure after the last success (or of the whole run) started, in ms.
    pub(crate) first_failure_at: Option<i64>,
    /// The last reason given to disable the endpoint.
    pub(crate) disable: Option<&'static str>,
}

impl EndpointChange {
    /// Folds one endpoint's outcomes, in recording order. One by one, a success clears
    /// `failing_since` and a failure sets it when it is clear; so after the run it is the first
    /// failure after the last success, or, without a success, what it was or else the run's
    /// first failure.
    pub(crate) fn fold<'a>(outcomes: impl IntoIterator<Item = &'a AttemptOutcome>) -> Self {
        let mut change = EndpointChange::default();
        for outcome in outcomes {
            if outcome.next == NextStep::Delivered {
                change.reset = true;
                change.first_failure_at = None;
            } else if change.first_failure_at.is_none() {
                change.first_failure_at = Some(ms(outcome.attempt.started_at));
            }
            if let Some(reason) = outcome.disable_endpoint {
                change.disable = Some(reason.as_str());
            }
        }
        change
    }
}

/// Writes the row only when something changes: a success while it was not failing, or a
/// failure while it already was, leaves it alone. Every group writing it would make all of an
/// endpoint's concurrent groups queue for that row lock, one commit at a time.
///
/// The row is found by its primary key alone; the tenant is checked on the row found
/// (`IS NOT DISTINCT FROM` is not an index condition, and `tenant_id` is never NULL), so a cached
/// plan cannot look the endpoint up by `endpoints_by_tenant` and read all of its tenant's
/// endpoints (see `statements::KEYED_PLANS`).
const UPDATE_ENDPOINT: &str = "UPDATE endpoints SET
         failing_since = CASE WHEN $3 THEN $4 ELSE COALESCE(failing_since, $4) END,
         enabled = CASE WHEN $5::text IS NULL THEN enabled ELSE FALSE END,
         disabled_reason = COALESCE($5, disabled_reason)
     WHERE id = $2 AND tenant_id IS NOT DISTINCT FROM $1::text
       AND ($5::text IS NOT NULL
            OR failing_since IS DISTINCT FROM
               (CASE WHEN $3 THEN $4 ELSE COALESCE(failing_since, $4) END))";

/// An attempt number recorded before (by a node whose lease expired mid-attempt) is replaced, as
/// recording it alone would.
///
/// Runs after [`UPDATE_DELIVERIES`] in the same transaction, which then holds the deliveries'
/// rows. The table has no foreign key (migration 0011), so the join does its work: an attempt of
/// a delivery that does not exist (never did, or an endpoint deleted meanwhile took it) gets a
/// NULL `delivery_id` and breaks the column's NOT NULL, failing its group as the foreign key did,
/// and the group is retried in halves until it fails alone.
const INSERT_ATTEMPTS: &str = "INSERT INTO attempts (delivery_id, attempt_number, started_at,
         status, latency_ms, response_excerpt, error)
     SELECT d.id, o.attempt_number, o.started_at, o.status, o.latency_ms, o.response_excerpt,
         o.error
     FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int4[], $5::int8[], $6::text[],
         $7::text[])
         AS o(delivery_id, attempt_number, started_at, status, latency_ms, response_excerpt, error)
     LEFT JOIN deliveries d ON d.id = o.delivery_id
     ON CONFLICT (delivery_id, attempt_number) DO UPDATE SET
         started_at = EXCLUDED.started_at, status = EXCLUDED.status,
         latency_ms = EXCLUDED.latency_ms, response_excerpt = EXCLUDED.response_excerpt,
         error = EXCLUDED.error";

const UPDATE_DELIVERIES: &str = "UPDATE deliveries d SET state = o.state,
         n_attempts = o.attempt_number, next_attempt_at = o.next_attempt_at, lease_until = NULL,
         last_status = o.status, last_error = o.error, updated_at = o.updated_at
     FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int4[], $6::text[],
         $7::int8[])
         AS o(id, state, attempt_number, next_attempt_at, status, error, updated_at)
     WHERE d.id = o.id";

/// The outcomes' columns, as the statements take them.
struct Columns<'a> {
    delivery_ids: Vec<&'a str>,
    attempt_numbers: Vec<i64>,
    started_at: Vec<i64>,
    statuses: Vec<Option<i32>>,
    latencies: Vec<i64>,
    excerpts: Vec<Option<&'a str>>,
    errors: Vec<Option<&'a str>>,
    states: Vec<&'static str>,
    next_attempt_at: Vec<Option<i64>>,
    updated_at: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn of(outcomes: &'a [AttemptOutcome]) -> Self {
        let (states, next_attempt_at) = outcomes
            .iter()
            .map(|outcome| match outcome.next {
                NextStep::Delivered => (DeliveryState::Delivered.as_str(), None),
                NextStep::RetryAt(at) => (DeliveryState::Scheduled.as_str(), Some(ms(at))),
                NextStep::Exhausted => (DeliveryState::Exhausted.as_str(), None),
            })
            .unzip();
        Columns {
            delivery_ids: outcomes
                .iter()
                .map(|o| o.attempt.delivery_id.as_str())
                .collect(),
            attempt_numbers: outcomes
                .iter()
                .map(|o| i64::from(o.attempt.attempt_number))
                .collect(),
            started_at: outcomes.iter().map(|o| ms(o.attempt.started_at)).collect(),
            statuses: outcomes
                .iter()
                .map(|o| o.attempt.status.map(i32::from))
                .collect(),
            latencies: outcomes
                .iter()
                .map(|o| to_i64(o.attempt.latency_ms))
                .collect(),
            excerpts: outcomes
                .iter()
                .map(|o| o.attempt.response_excerpt.as_deref())
                .collect(),
            errors: outcomes
                .iter()
                .map(|o| o.attempt.error.as_deref())
                .collect(),
            states,
            next_attempt_at,
            updated_at: outcomes.iter().map(|o| ms(o.now)).collect(),
        }
    }
}

/// Every statement an attempt group sends with its commit when no outcome has operational
/// events, for the plan test (`statements/tests.rs`). (With events, these go out with the
/// publish's reads, planned per execution, and the publish's writes with the commit.)
#[cfg(test)]
pub(crate) const GROUP_STATEMENTS: [&str; 3] =
    [UPDATE_DELIVERIES, INSERT_ATTEMPTS, UPDATE_ENDPOINT];

/// Every statement of the group is prepared first (or found in the connection's cache), then
/// all are sent together: tokio-postgres pipelines them and the server runs them in the order
/// sent, so a group costs three round trips (begin, the writes, commit).
///
/// The outcomes' operational events are published last, in the same transaction, as a publish
/// group would (`publish.rs`): after the endpoints' updates, so an endpoint this group disables is
/// not routed to. Their tenants' rows are locked only then, after the group's delivery and
/// endpoint row locks; a publish group, which locks tenants first, takes only `FOR KEY SHARE` on
/// endpoints, which those updates do not block, and no delivery row locks, so neither waits for
/// the other in a cycle. Each outcome is answered with what publishing its events did.
async fn record_in_one_transaction(
    pool: &Pool,
    outcomes: &[AttemptOutcome],
) -> StoreResult<Vec<Vec<Published>>> {
    let mut seen = HashSet::with_capacity(outcomes.len());
    if !outcomes
        .iter()
        .all(|outcome| seen.insert(outcome.attempt.delivery_id.as_str()))
    {
        // One statement cannot update a row twice in order; failing the group has it recorded
        // outcome by outcome instead (a lease that expired mid-attempt, then taken again).
        return Err(StoreError::Backend(
            "a delivery has two outcomes in one group".into(),
        ));
    }
    let connection = pool.get().await.map_err(map_pool)?;
    let mut transaction = PipelinedTransaction::new(connection);
    let client = transaction.client()?;
    let insert_attempts = prepare(client, INSERT_ATTEMPTS).await?;
    let update_deliveries = prepare(client, UPDATE_DELIVERIES).await?;
    let update_endpoint = prepare(client, UPDATE_ENDPOINT).await?;
    let notify = prepare(client, wakeups::NOTIFY_STATEMENT).await?;

    let columns = Columns::of(outcomes);
    // Endpoint rows are written in key order, the same in every group on every node, so two
    // groups never wait for each other's row locks in a cycle.
    let mut by_endpoint: BTreeMap<(&str, &str), Vec<&AttemptOutcome>> = BTreeMap::new();
    for outcome in outcomes {
        by_endpoint
            .entry((&outcome.tenant_id, outcome.endpoint_id.as_str()))
            .or_default()
            .push(outcome);
    }
    let changes: Vec<((&str, &str), EndpointChange)> = by_endpoint
        .into_iter()
        .map(|(key, outcomes)| (key, EndpointChange::fold(outcomes)))
        .collect();

    let mut statements: Vec<Sql<'_>> = vec![
        (
            &update_deliveries,
            vec![
                &columns.delivery_ids,
                &columns.states,
                &columns.attempt_numbers,
                &columns.next_attempt_at,
                &columns.statuses,
                &columns.errors,
                &columns.updated_at,
            ],
        ),
        (
            &insert_attempts,
            vec![
                &columns.delivery_ids,
                &columns.attempt_numbers,
                &columns.started_at,
                &columns.statuses,
                &columns.latencies,
                &columns.excerpts,
                &columns.errors,
            ],
        ),
    ];
    for ((tenant_id, endpoint_id), change) in &changes {
        statements.push((
            &update_endpoint,
            vec![
                tenant_id,
                endpoint_id,
                &change.reset,
                &change.first_failure_at,
                &change.disable,
            ],
        ));
    }
    // The node that made an attempt looks at its queue again by itself; a retry scheduled for
    // later is announced so that the others know of it should this node die.
    if columns.next_attempt_at.iter().any(Option::is_some) {
        statements.push((&notify, Vec::new()));
    }
    publish_operational_events_and_commit(&mut transaction, &statements, outcomes).await
}

/// Writes `statements` and publishes the outcomes' operational events after them, one request
/// per outcome that has any, in one transaction, and commits: one round trip when no outcome has
/// events, two when some have (the publish reads its tenants, routes and known ids first). A
/// request that fails (its tenant is gone) fails the whole group, which is then retried in
/// halves: an attempt is never recorded without its events.
async fn publish_operational_events_and_commit(
    transaction: &mut PipelinedTransaction,
    statements: &[Sql<'_>],
    outcomes: &[AttemptOutcome],
) -> StoreResult<Vec<Vec<Published>>> {
    let requests: Vec<publish::Request> = outcomes
        .iter()
        .filter(|outcome| !outcome.operational_events.is_empty())
        .map(|outcome| publish::Request {
            tenant_id: outcome.tenant_id.clone(),
            events: outcome.operational_events.clone(),
            now: outcome.now,
        })
        .collect();
    let mut answers = if requests.is_empty() {
        transaction.round_trip(true, statements, true).await?;
        Vec::new()
    } else {
        publish::publish_and_commit(transaction, statements, &requests).await?
    }
    .into_iter();
    outcomes
        .iter()
        .map(|outcome| {
            if outcome.operational_events.is_empty() {
                return Ok(Vec::new());
            }
            answers.next().unwrap_or_else(|| {
                Err(StoreError::Backend(
                    "an operational event publish went unanswered".into(),
                ))
            })
        })
        .collect()
}

impl crate::PostgresStore {
    /// The tenant's delivery attempts since `since`, counted per minute (the console's charts).
    pub(crate) async fn attempts_per_minute(
        &self,
        tenant_id: &str,
        since: time::OffsetDateTime,
    ) -> StoreResult<Vec<herald_store::models::AttemptMinute>> {
        let client = self.client().await?;
        // Times are kept in milliseconds: a minute is `started_at / 60000`. A missing status (no
        // answer) is a failure like any status outside 2xx.
        let rows = crate::query(
            &client,
            "SELECT a.started_at / 60000 AS minute, COUNT(*)::BIGINT,
                 SUM(CASE WHEN a.status BETWEEN 200 AND 299 THEN 0 ELSE 1 END)::BIGINT
             FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
             WHERE d.tenant_id = $1 AND a.started_at >= $2
             GROUP BY minute ORDER BY minute",
            &[&tenant_id, &ms(since)],
        )
        .await?;
        crate::rows::read_all(&rows, |row| {
            Ok(herald_store::models::AttemptMinute {
                minute: crate::rows::from_ms(crate::rows::get::<i64>(row, 0)? * 60_000),
                n_attempts: u64::try_from(crate::rows::get::<i64>(row, 1)?).unwrap_or(0),
                n_failed: u64::try_from(crate::rows::get::<i64>(row, 2)?).unwrap_or(0),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use herald_core::ids::{DeliveryId, EndpointId};
    use herald_store::models::AttemptRecord;
    use herald_store::models::DisableReason;
    use time::OffsetDateTime;

    use super::*;

    fn outcome(second: i64, next: NextStep, disable: Option<DisableReason>) -> AttemptOutcome {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000 + second).expect("in range");
        AttemptOutcome {
            tenant_id: "t1".into(),
            endpoint_id: EndpointId::parse("ep_1").expect("an endpoint id"),
            attempt: AttemptRecord {
                delivery_id: DeliveryId::parse(&format!("dl_{second}")).expect("a delivery id"),
                attempt_number: 1,
                started_at: at,
                status: None,
                latency_ms: 1,
                response_excerpt: None,
                error: None,
            },
            next,
            disable_endpoint: disable,
            now: at,
            operational_events: Vec::new(),
        }
    }

    fn failed(second: i64) -> AttemptOutcome {
        outcome(second, NextStep::Exhausted, None)
    }

    fn succeeded(second: i64) -> AttemptOutcome {
        outcome(second, NextStep::Delivered, None)
    }

    fn ms_at(second: i64) -> Option<i64> {
        Some((1_800_000_000 + second) * 1000)
    }

    #[test]
    fn failures_alone_keep_the_first_recorded_start() {
        let change = EndpointChange::fold(&[failed(3), failed(1), failed(5)]);
        assert_eq!(
            change,
            EndpointChange {
                reset: false,
                first_failure_at: ms_at(3),
                disable: None,
            }
        );
    }

    #[test]
    fn a_success_clears_what_came_before_it() {
        let cleared = EndpointChange::fold(&[failed(1), succeeded(2)]);
        assert!(cleared.reset);
        assert_eq!(cleared.first_failure_at, None);

        let failing_again = EndpointChange::fold(&[failed(1), succeeded(2), failed(3), failed(4)]);
        assert!(failing_again.reset);
        assert_eq!(failing_again.first_failure_at, ms_at(3));
    }

    #[test]
    fn the_last_disable_reason_wins_and_survives_a_later_success() {
        let change = EndpointChange::fold(&[
            outcome(1, NextStep::Exhausted, Some(DisableReason::Gone)),
            outcome(2, NextStep::Exhausted, Some(DisableReason::FailingTooLong)),
            succeeded(3),
        ]);
        assert_eq!(change.disable, Some("failing_too_long"));
        assert!(change.reset);
    }

    #[test]
    fn no_outcomes_change_nothing() {
        assert_eq!(
            EndpointChange::fold(std::iter::empty()),
            EndpointChange::default()
        );
    }
}
