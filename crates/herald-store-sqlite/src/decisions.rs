//! Blocking decisions: the audit trail of evaluated blocking events.

use async_trait::async_trait;
use herald_store::DecisionStore;
use herald_store::StoreResult;
use herald_store::models::DecisionRecord;
use rusqlite::{OptionalExtension, params};

use crate::SqliteStore;
use crate::rows::{DECISION_COLUMNS, json_text, map_backend, ms, read_decision};

#[async_trait]
impl DecisionStore for SqliteStore {
    async fn record_decisions(&self, decisions: Vec<DecisionRecord>) -> StoreResult<()> {
        self.write(move |transaction| {
            let mut statement = transaction
                .prepare_cached(&format!(
                    "INSERT INTO decisions ({DECISION_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ))
                .map_err(map_backend)?;
            for decision in &decisions {
                statement
                    .execute(params![
                        decision.id.as_str(),
                        decision.tenant_id,
                        decision.event_type,
                        decision.event_id,
                        decision.is_allowed,
                        json_text(&decision.reasons),
                        json_text(&decision.trace),
                        i64::try_from(decision.latency_us).unwrap_or(i64::MAX),
                        ms(decision.created_at),
                    ])
                    .map_err(map_backend)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_decisions(
        &self,
        tenant_id: &str,
        after_id: Option<&str>,
        limit: usize,
    ) -> StoreResult<Vec<DecisionRecord>> {
        let (tenant_id, after_id) = (tenant_id.to_owned(), after_id.map(str::to_owned));
        self.read(move |connection| {
            let after_rowid: i64 = match &after_id {
                None => 0,
                Some(after_id) => connection
                    .query_row(
                        "SELECT rowid_ FROM decisions WHERE tenant_id = ?1 AND id = ?2",
                        params![tenant_id, after_id],
                        |row| row.get(0),
                    )
                    .optional()
                    .map_err(map_backend)?
                    .unwrap_or(0),
            };
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {DECISION_COLUMNS} FROM decisions WHERE tenant_id = ?1 AND rowid_ > ?2
                     ORDER BY rowid_ LIMIT ?3"
                ))
                .map_err(map_backend)?;
            let rows = statement
                .query_map(
                    params![
                        tenant_id,
                        after_rowid,
                        i64::try_from(limit).unwrap_or(i64::MAX)
                    ],
                    read_decision,
                )
                .map_err(map_backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(map_backend)
        })
        .await
    }
}
