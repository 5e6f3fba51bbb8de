//! The shared storage conformance suite, then the checks only a shared database needs (in
//! `cluster`) and group commit needs (in `group_commit`), and rows whose ids were spoiled by hand
//! (`corrupt_ids`), each test on a fresh PostgreSQL database.
//!
//! The server is `postgres://postgres@127.0.0.1:5432/postgres` unless `HERALD_TEST_POSTGRES_URL`
//! names another. When it cannot be reached the tests fail with a message saying so: they never
//! skip, so a CI without PostgreSQL cannot pass by accident.

mod cluster;
mod corrupt_ids;
mod group_commit;
mod relations;
mod ssf_cluster;

use std::sync::Arc;

use herald_store::Store;
use herald_store_postgres::PostgresStore;
use time::OffsetDateTime;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

const DEFAULT_SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Test databases are named `herald_test_<unix seconds>_<random>`.
const DATABASE_PREFIX: &str = "herald_test_";

/// Test databases older than this are dropped when a run starts. A whole run takes seconds;
/// younger databases may belong to a run still going on in another process, so they are kept.
const STALE_AFTER_SECONDS: i64 = 15 * 60;

static CLEANED_UP: OnceCell<()> = OnceCell::const_new();

fn server_url() -> String {
    std::env::var("HERALD_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_SERVER_URL.to_owned())
}

/// A connection to the server's maintenance database; panics, saying why, when there is none.
async fn admin_client() -> tokio_postgres::Client {
    let url = server_url();
    let (client, connection) = match tokio_postgres::connect(&url, NoTls).await {
        Ok(connected) => connected,
        Err(error) => {
            let cause = std::error::Error::source(&error)
                .map_or_else(String::new, |cause| format!(": {cause}"));
            panic!(
                "PostgreSQL is not reachable at {url} ({error}{cause}). The herald-store-postgres \
                 tests need a running server: start it, or set HERALD_TEST_POSTGRES_URL to one."
            )
        }
    };
    tokio::spawn(connection);
    client
}

/// Drops the test databases earlier runs left behind.
async fn drop_stale_databases() {
    let admin = admin_client().await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let names: Vec<String> = admin
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&DATABASE_PREFIX],
        )
        .await
        .expect("list test databases")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for name in names {
        let created_at = name
            .strip_prefix(DATABASE_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|seconds| seconds.parse::<i64>().ok());
        if created_at.is_some_and(|created_at| now - created_at > STALE_AFTER_SECONDS) {
            // Another run may be dropping it at the same moment; either way it is gone.
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    CLEANED_UP.get_or_init(drop_stale_databases).await;
    let name = format!(
        "{DATABASE_PREFIX}{}_{}",
        OffsetDateTime::now_utc().unix_timestamp(),
        uuid::Uuid::new_v4().simple()
    );
    admin_client()
        .await
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create a test database");
    let mut url = url::Url::parse(&server_url()).expect("HERALD_TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

async fn fresh_store() -> Arc<dyn Store> {
    let url = fresh_database().await;
    Arc::new(PostgresStore::connect(&url, 4).await.expect("connects"))
}

herald_store::conformance_tests!(fresh_store());
