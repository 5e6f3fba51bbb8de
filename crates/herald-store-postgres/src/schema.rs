//! Schema migrations, tracked in the `herald_migrations` table.
//!
//! Several nodes may start at once against one database. Each runs the migrations inside one
//! transaction that first takes a transaction-scoped advisory lock, so the nodes queue up: the
//! first applies what is missing, the others then find nothing left to do. PostgreSQL's DDL is
//! transactional, so a migration that fails leaves the schema as it was.

use herald_store::{StoreError, StoreResult};
use tokio_postgres::Client;

use crate::rows::{get, map_backend};

/// The migrations, in order: (version, name, SQL). Versions are never reused or rewritten.
const MIGRATIONS: [(i32, &str, &str); 13] = [
    (
        1,
        "0001_initial",
        include_str!("../migrations/0001_initial.sql"),
    ),
    (
        2,
        "0002_hooks",
        include_str!("../migrations/0002_hooks.sql"),
    ),
    (
        3,
        "0003_rate_buckets",
        include_str!("../migrations/0003_rate_buckets.sql"),
    ),
    (
        4,
        "0004_endpoint_pause",
        include_str!("../migrations/0004_endpoint_pause.sql"),
    ),
    (
        5,
        "0005_claim_by_endpoint",
        include_str!("../migrations/0005_claim_by_endpoint.sql"),
    ),
    (
        6,
        "0006_api_key_lifecycle",
        include_str!("../migrations/0006_api_key_lifecycle.sql"),
    ),
    (
        7,
        "0007_sources",
        include_str!("../migrations/0007_sources.sql"),
    ),
    (8, "0008_ssf", include_str!("../migrations/0008_ssf.sql")),
    (
        9,
        "0009_ssf_delivery",
        include_str!("../migrations/0009_ssf_delivery.sql"),
    ),
    (
        10,
        "0010_endpoint_v1a",
        include_str!("../migrations/0010_endpoint_v1a.sql"),
    ),
    (
        11,
        "0011_hot_foreign_keys",
        include_str!("../migrations/0011_hot_foreign_keys.sql"),
    ),
    (
        12,
        "0012_claim_function",
        include_str!("../migrations/0012_claim_function.sql"),
    ),
    (
        13,
        "0013_waiting_index_partial",
        include_str!("../migrations/0013_waiting_index_partial.sql"),
    ),
];

/// The advisory lock key migrations hold ("herald" in ASCII). It uses PostgreSQL's one-`bigint`
/// key space; the per-endpoint claim locks use the two-`int4` one, so the two never collide.
const MIGRATION_LOCK: i64 = 0x6865_7261_6c64;

/// Applies the migrations this database has not seen yet.
pub(crate) async fn migrate(client: &mut Client) -> StoreResult<()> {
    let transaction = client.transaction().await.map_err(map_backend)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(map_backend)?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS herald_migrations (
                 version     INTEGER PRIMARY KEY,
                 name        TEXT NOT NULL,
                 applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
             )",
        )
        .await
        .map_err(map_backend)?;
    let applied: Vec<i32> = transaction
        .query("SELECT version FROM herald_migrations", &[])
        .await
        .map_err(map_backend)?
        .iter()
        .map(|row| get(row, 0))
        .collect::<StoreResult<_>>()?;
    // Versions are reserved per change and may be merged out of order, so each migration is
    // applied by whether its own version ran, not by comparison with the newest one: a gap, or a
    // lower version merged after a higher one ran, is still applied. A version this Herald does
    // not know means the database was migrated by a newer Herald.
    if let Some(unknown) = applied
        .iter()
        .find(|version| !MIGRATIONS.iter().any(|(known, _, _)| known == *version))
    {
        return Err(StoreError::Backend(format!(
            "the database schema has migration {unknown}, which this Herald does not know: upgrade Herald"
        )));
    }
    for (version, name, sql) in MIGRATIONS {
        if applied.contains(&version) {
            continue;
        }
        transaction.batch_execute(sql).await.map_err(map_backend)?;
        transaction
            .execute(
                "INSERT INTO herald_migrations (version, name) VALUES ($1, $2)",
                &[&version, &name],
            )
            .await
            .map_err(map_backend)?;
        tracing::info!(version, name, "applied a PostgreSQL migration");
    }
    transaction.commit().await.map_err(map_backend)
}
