//! Connection settings and schema migrations, tracked with SQLite's `user_version`.

use herald_store::{StoreError, StoreResult};
use rusqlite::Connection;
use rusqlite::config::DbConfig;

use crate::rows::map_backend;

/// The migrations, in order; `user_version` counts how many have run.
const MIGRATIONS: [&str; 14] = [
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_hooks.sql"),
    include_str!("../migrations/0003_rate_buckets.sql"),
    include_str!("../migrations/0004_endpoint_pause.sql"),
    include_str!("../migrations/0005_claim_by_endpoint.sql"),
    include_str!("../migrations/0006_api_key_lifecycle.sql"),
    include_str!("../migrations/0007_sources.sql"),
    include_str!("../migrations/0008_ssf.sql"),
    include_str!("../migrations/0011_unfinished_by_subject.sql"),
    include_str!("../migrations/0013_endpoint_v1a.sql"),
    include_str!("../migrations/0012_ssf_delivery.sql"),
    include_str!("../migrations/0014_unfinished_index_without_list.sql"),
    include_str!("../migrations/0015_no_in_flight_index.sql"),
    include_str!("../migrations/0016_partial_endpoint_indexes.sql"),
];

/// Per-connection settings. WAL lets readers proceed while the writer commits; `synchronous =
/// FULL` makes every commit durable before it returns, which is what a 202 promises (the writer
/// connection changes that: see `writer.rs`). A new file gets 2 KiB pages rather than 4 KiB:
/// every commit writes each page it touched whole to the WAL, and a delivery's commits touch
/// many pages a little (its row, its index entries), so smaller pages halve what is written;
/// measured, saturation went from about 6,900 to 9,000 deliveries/s (BENCHMARKS.md). A file
/// made earlier keeps the page size it was made with.
///
/// The query planner stability guarantee is on: without it, SQLite plans a statement for the
/// values bound to some of its parameters (an equality followed by an `ORDER BY`, as in every
/// claim query) and prepares a cached statement anew whenever one of them is bound to another
/// value, which cost about a twentieth of a delivery's instructions. Herald's queries are written
/// for their one plan, and the plan tests check it.
pub(crate) fn configure(connection: &Connection) -> StoreResult<()> {
    connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(map_backend)?;
    connection
        .execute_batch(
            "PRAGMA page_size = 2048;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;",
        )
        .map_err(map_backend)
}

/// Runs the migrations this file has not seen yet, each in its own transaction.
pub(crate) fn migrate(connection: &Connection) -> StoreResult<()> {
    let applied: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(map_backend)?;
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > MIGRATIONS.len() {
        return Err(StoreError::Backend(format!(
            "the database schema (version {applied}) is newer than this Herald (version {}): upgrade Herald",
            MIGRATIONS.len()
        )));
    }
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        connection
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {migration}; PRAGMA user_version = {}; COMMIT;",
                index + 1
            ))
            .map_err(map_backend)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every insert and update of a delivery evaluates the partial indexes' conditions; none may
    /// need a temporary table per run (an IN list of three constants did, migration 0014).
    #[test]
    fn writing_a_delivery_builds_no_temporary_table() {
        let directory = tempfile::tempdir().expect("tempdir");
        let connection = Connection::open(directory.path().join("schema.db")).expect("opened");
        configure(&connection).expect("configured");
        migrate(&connection).expect("migrated");
        for write in [
            "INSERT INTO deliveries (id, tenant_id, endpoint_id, event_seq, event_id, event_type,
                 subject, state, n_attempts, next_attempt_at, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', 0, ?8, ?8, ?8)",
            "UPDATE deliveries SET state = ?2, lease_until = ?3 WHERE id = ?1",
        ] {
            let mut explained = connection
                .prepare(&format!("EXPLAIN {write}"))
                .expect("explained");
            let unbound = vec![rusqlite::types::Null; explained.parameter_count()];
            let opcodes: Vec<String> = explained
                .query_map(rusqlite::params_from_iter(unbound), |row| row.get(1))
                .expect("program")
                .collect::<Result<_, _>>()
                .expect("opcodes");
            assert!(
                !opcodes.iter().any(|opcode| opcode == "OpenEphemeral"),
                "{write}: {opcodes:?}"
            );
        }
    }
}
