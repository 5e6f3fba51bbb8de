//! Blocking decisions: the audit trail of evaluated blocking events.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use herald_store::DecisionStore;
use herald_store::StoreResult;
use herald_store::models::DecisionRecord;

use crate::rows::{DECISION_COLUMNS, json_text, map_backend, ms, read_all, read_decision, to_i64};
use crate::{PostgresStore, execute, query};

#[async_trait]
impl DecisionStore for PostgresStore {
    async fn record_decisions(&self, decisions: Vec<DecisionRecord>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(map_backend)?;
        for decision in &decisions {
            execute(
                &transaction,
                &format!(
                    "INSERT INTO decisions ({DECISION_COLUMNS})
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                ),
                &[
                    &decision.id.as_str(),
                    &decision.tenant_id,
                    &decision.event_type,
                    &decision.event_id,
                    &decision.is_allowed,
                    &json_text(&decision.reasons),
                    &json_text(&decision.trace),
                    &to_i64(decision.latency_us),
                    &ms(decision.created_at),
                ],
            )
            .await?;
        }
        transaction.commit().await.map_err(map_backend)
    }

    async fn list_decisions(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DecisionRecord>> {
        let client = self.client().await?;
        let rows = query(
            &client,
            &format!(
                "SELECT {DECISION_COLUMNS} FROM decisions
                 WHERE tenant_id = $1
                   AND rowid_ > COALESCE((SELECT rowid_ FROM decisions
                                          WHERE tenant_id = $1 AND id = $2), 0)
                 ORDER BY rowid_ LIMIT $3"
            ),
            &[&tenant_id, &after_id, &to_i64(limit)],
        )
        .await?;
        read_all(&rows, read_decision)
    }
}
