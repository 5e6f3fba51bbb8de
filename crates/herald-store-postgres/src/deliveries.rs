//! Deliveries: claiming (see `claims.rs`), releasing, listing, retrying and replaying them.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use herald_core::delivery::DeliveryState;
use herald_core::ids::{DeliveryId, EndpointId};
use herald_store::models::{
    AttemptMinute, AttemptOutcome, AttemptRecord, ClaimedDelivery, DeliveryFilter, DeliveryRecord,
    Published, ReplaySelector,
};
use herald_store::planner::{self, ReplayPlan};
use herald_store::{DeliveryQueue, DeliveryStore};
use herald_store::{StoreError, StoreResult};
use time::{Duration, OffsetDateTime};
use tokio_postgres::types::ToSql;

use crate::endpoints::endpoint_by_id_held;
use crate::rows::{
    ATTEMPT_COLUMNS, DELIVERY_COLUMNS, get, map_backend, ms, read_all, read_attempt, read_delivery,
    to_i64,
};
use crate::{
    PostgresStore, UNFINISHED, claims, execute, notify, query, query_one, query_opt, rows,
};

#[async_trait]
impl DeliveryQueue for PostgresStore {
    async fn claim_due(
        &self,
        now: OffsetDateTime,
        limit: usize,
        lease: Duration,
    ) -> StoreResult<Vec<ClaimedDelivery>> {
        let client = self.client().await?;
        let turn = self
            .claim_turns
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        claims::claim_due(&client, now, limit, lease, turn).await
    }

    async fn release(&self, delivery_id: &str, next_attempt_at: OffsetDateTime) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let released = execute(
            &transaction,
            "UPDATE deliveries SET
                 state = CASE WHEN n_attempts = 0 THEN 'pending' ELSE 'scheduled' END,
                 next_attempt_at = $2, lease_until = NULL
             WHERE id = $1 AND state = 'in_flight'",
            &[&delivery_id, &ms(next_attempt_at)],
        )
        .await?;
        if released > 0 {
            notify(&transaction).await?;
        }
        transaction.commit().await.map_err(map_backend)
    }

    /// Attempts wait for a group commit (`group_commit.rs`), which `attempts.rs` writes with the
    /// operational events they publish.
    async fn record_attempt(&self, outcome: AttemptOutcome) -> StoreResult<Vec<Published>> {
        self.attempts.submit(outcome).await
    }

    async fn next_due_at(&self) -> StoreResult<Option<OffsetDateTime>> {
        let client = self.client().await?;
        claims::next_due_at(&client).await
    }

    async fn count_pending(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = query_one(
            &client,
            &format!("SELECT COUNT(*) FROM deliveries WHERE state IN {UNFINISHED}"),
            &[],
        )
        .await?;
        let count: i64 = get(&row, 0)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}

#[async_trait]
impl DeliveryStore for PostgresStore {
    async fn list_deliveries(
        &self,
        tenant_id: &str,
        filter: &DeliveryFilter,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let client = self.client().await?;
        // An unknown cursor starts from the beginning, as in SQLite.
        let rows = query(
            &client,
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE tenant_id = $1
                   AND rowid_ > COALESCE((SELECT rowid_ FROM deliveries
                                          WHERE tenant_id = $1 AND id = $2), 0)
                   AND ($3::text IS NULL OR endpoint_id = $3)
                   AND ($4::text IS NULL OR state = $4)
                 ORDER BY rowid_ LIMIT $5"
            ),
            &[
                &tenant_id,
                &filter.after_id.as_ref().map(DeliveryId::as_str),
                &filter.endpoint_id.as_ref().map(EndpointId::as_str),
                &filter.state.map(DeliveryState::as_str),
                &to_i64(filter.limit),
            ],
        )
        .await?;
        read_all(&rows, read_delivery)
    }

    async fn get_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let client = self.client().await?;
        delivery_by_id(&client, tenant_id, delivery_id).await
    }

    async fn list_attempts(
        &self,
        tenant_id: &str,
        delivery_id: &str,
    ) -> StoreResult<Vec<AttemptRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
                 WHERE d.tenant_id = $1 AND a.delivery_id = $2 ORDER BY a.attempt_number"
            ),
            &[&tenant_id, &delivery_id],
        )
        .await?;
        read_all(&rows, read_attempt)
    }

    async fn retry_delivery(
        &self,
        tenant_id: &str,
        delivery_id: &str,
        now: OffsetDateTime,
    ) -> StoreResult<Option<DeliveryRecord>> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        let changed = execute(
            &transaction,
            "UPDATE deliveries SET state = 'pending', next_attempt_at = $3, updated_at = $3
             WHERE tenant_id = $1 AND id = $2 AND state != 'in_flight'",
            &[&tenant_id, &delivery_id, &ms(now)],
        )
        .await?;
        if changed > 0 {
            notify(&transaction).await?;
        }
        let delivery = delivery_by_id(&transaction, tenant_id, delivery_id).await?;
        transaction.commit().await.map_err(map_backend)?;
        Ok(delivery)
    }

    async fn replay(
        &self,
        tenant_id: &str,
        endpoint_id: &str,
        selector: &ReplaySelector,
        now: OffsetDateTime,
    ) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        // Holding the endpoint and the replayed events `FOR KEY SHARE` until commit keeps a
        // concurrent deletion of either from leaving deliveries behind that nothing could send.
        let Some(endpoint) = endpoint_by_id_held(&transaction, tenant_id, endpoint_id).await?
        else {
            return Err(StoreError::NotFound(format!("endpoint {endpoint_id:?}")));
        };
        let (after_seq, received_since, only_id) = match ReplayPlan::of(selector) {
            ReplayPlan::FailedAgain => {
                let changed = execute(
                    &transaction,
                    "UPDATE deliveries SET state = 'pending', next_attempt_at = $3, updated_at = $3
                     WHERE tenant_id = $1 AND endpoint_id = $2 AND state = 'exhausted'",
                    &[&tenant_id, &endpoint_id, &ms(now)],
                )
                .await?;
                if changed > 0 {
                    notify(&transaction).await?;
                }
                transaction.commit().await.map_err(map_backend)?;
                return Ok(changed);
            }
            ReplayPlan::FromLog {
                after_seq,
                received_since,
                only_event,
            } => (after_seq, received_since.map_or(i64::MIN, ms), only_event),
        };
        let selected = query(
            &transaction,
            "SELECT seq, id, taxonomy, event_type, subject FROM events
             WHERE tenant_id = $1 AND seq > $2 AND received_at >= $3 AND NOT erased
               AND ($4::text IS NULL OR id = $4)
             ORDER BY seq
             FOR KEY SHARE",
            &[&tenant_id, &after_seq, &received_since, &only_id],
        )
        .await?;
        if let Some(event_id) = only_id
            && selected.is_empty()
        {
            return Err(StoreError::NotFound(format!("event {event_id:?}")));
        }
        let mut deliveries = Vec::new();
        for row in &selected {
            let taxonomy: &str = get(row, 2)?;
            let event_type: &str = get(row, 3)?;
            let wanted = planner::replay_wants(
                only_id,
                &endpoint.filters,
                event_type,
                rows::parse_taxonomy(taxonomy)?,
            );
            if wanted {
                deliveries.push(NewDelivery {
                    tenant_id,
                    endpoint_id,
                    event_seq: get(row, 0)?,
                    event_id: get(row, 1)?,
                    event_type,
                    subject: get(row, 4)?,
                    created_at: now,
                });
            }
        }
        if !deliveries.is_empty() {
            let columns = DeliveryColumns::of(&deliveries);
            execute(&transaction, INSERT_DELIVERIES, &columns.params()).await?;
            notify(&transaction).await?;
        }
        transaction.commit().await.map_err(map_backend)?;
        Ok(u64::try_from(deliveries.len()).unwrap_or(u64::MAX))
    }

    async fn list_event_deliveries(
        &self,
        tenant_id: &str,
        event_id: &str,
    ) -> StoreResult<Vec<DeliveryRecord>> {
        let client = self.client().await?;
        // Through the event's seq, so `deliveries_by_event (tenant_id, event_seq)` answers.
        let rows = query(
            &client,
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries
                 WHERE tenant_id = $1
                   AND event_seq = (SELECT seq FROM events WHERE tenant_id = $1 AND id = $2)
                   AND event_id = $2
                 ORDER BY rowid_"
            ),
            &[&tenant_id, &event_id],
        )
        .await?;
        read_all(&rows, read_delivery)
    }

    async fn count_attempts_per_minute(
        &self,
        tenant_id: &str,
        since: OffsetDateTime,
    ) -> StoreResult<Vec<AttemptMinute>> {
        self.attempts_per_minute(tenant_id, since).await
    }
}

/// One delivery to create: the event it carries, for one endpoint.
pub(crate) struct NewDelivery<'a> {
    pub(crate) tenant_id: &'a str,
    pub(crate) endpoint_id: &'a str,
    pub(crate) event_seq: i64,
    pub(crate) event_id: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) subject: Option<&'a str>,
    /// When it was made, which is also when it is first due.
    pub(crate) created_at: OffsetDateTime,
}

/// Creates pending deliveries, each due when it was made, in one statement. `unnest` keeps
/// array order, so the rows get ascending `rowid_` in the order given.
pub(crate) const INSERT_DELIVERIES: &str =
    "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq,
         event_id, event_type, subject, state, n_attempts, next_attempt_at, created_at,
         updated_at)
     SELECT d.id, d.tenant_id, d.endpoint_id, d.event_seq, d.event_id, d.event_type, d.subject,
         'pending', 0, d.created_at, d.created_at, d.created_at
     FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::text[], $6::text[],
         $7::text[], $8::int8[])
         AS d(id, tenant_id, endpoint_id, event_seq, event_id, event_type, subject, created_at)";

/// The parameters of [`INSERT_DELIVERIES`], column by column, with a new id for each delivery.
pub(crate) struct DeliveryColumns<'a> {
    ids: Vec<String>,
    tenant_ids: Vec<&'a str>,
    endpoint_ids: Vec<&'a str>,
    event_seqs: Vec<i64>,
    event_ids: Vec<&'a str>,
    event_types: Vec<&'a str>,
    subjects: Vec<Option<&'a str>>,
    created_at: Vec<i64>,
}

impl<'a> DeliveryColumns<'a> {
    pub(crate) fn of(deliveries: &[NewDelivery<'a>]) -> Self {
        DeliveryColumns {
            ids: deliveries
                .iter()
                .map(|_| DeliveryId::new().into_string())
                .collect(),
            tenant_ids: deliveries.iter().map(|d| d.tenant_id).collect(),
            endpoint_ids: deliveries.iter().map(|d| d.endpoint_id).collect(),
            event_seqs: deliveries.iter().map(|d| d.event_seq).collect(),
            event_ids: deliveries.iter().map(|d| d.event_id).collect(),
            event_types: deliveries.iter().map(|d| d.event_type).collect(),
            subjects: deliveries.iter().map(|d| d.subject).collect(),
            created_at: deliveries.iter().map(|d| ms(d.created_at)).collect(),
        }
    }

    pub(crate) fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.ids,
            &self.tenant_ids,
            &self.endpoint_ids,
            &self.event_seqs,
            &self.event_ids,
            &self.event_types,
            &self.subjects,
            &self.created_at,
        ]
    }
}

pub(crate) async fn delivery_by_id<C: GenericClient>(
    client: &C,
    tenant_id: &str,
    delivery_id: &str,
) -> StoreResult<Option<DeliveryRecord>> {
    query_opt(
        client,
        &format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND id = $2"),
        &[&tenant_id, &delivery_id],
    )
    .await?
    .as_ref()
    .map(read_delivery)
    .transpose()
}
