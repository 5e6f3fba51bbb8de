//! Connecting: the connection URL, migrations, and the pool with its group committers.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use herald_store::{StoreError, StoreResult};
use tokio_postgres::NoTls;

use crate::group_commit::GroupCommitter;
use crate::rows::map_backend;
use crate::{PostgresStore, schema};

/// How long a request waits for a free pooled connection before the database counts as
/// unavailable: short, so that while PostgreSQL is down a publish is answered 503 promptly
/// instead of hanging.
const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long opening one connection may take when the URL does not say.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Publish committers per node. One would do for throughput (a group takes every queued
/// publish); several keep tenants from queueing behind one another's row locks.
const PUBLISH_COMMITTERS: usize = 4;

/// Parses a `postgres://` URL (or a `key=value` connection string). The URL is never repeated in
/// an error, as it may hold a password.
pub(crate) fn parse_config(url: &str) -> StoreResult<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|error| {
        StoreError::Backend(format!("the PostgreSQL connection URL is invalid: {error}"))
    })?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("herald");
    }
    // Every execution is planned for its own parameters. A statement prepared while its tables
    // were still empty (a new installation, a fresh test database) would otherwise keep the
    // generic plan made for an empty table, such as scanning all of a tenant's events through
    // the wrong index, until the next ANALYZE: measured at 10 ms per id lookup after 20,000
    // events, and half the delivery rate (BENCHMARKS.md). Statements are written per group and
    // per claim, so the planning is paid once per many rows.
    // Options the URL gives are kept; a plan_cache_mode among them wins.
    let options = match config.get_options() {
        Some(given) if given.contains("plan_cache_mode") => None,
        Some(given) => Some(format!("{given} -c plan_cache_mode=force_custom_plan")),
        None => Some("-c plan_cache_mode=force_custom_plan".to_owned()),
    };
    if let Some(options) = options {
        config.options(&options);
    }
    Ok(config)
}

/// Brings the database's schema up to date (for `herald migrate`); safe to run from several
/// nodes at once.
pub async fn migrate(url: &str) -> StoreResult<()> {
    migrate_with(&parse_config(url)?).await
}

pub(crate) async fn migrate_with(config: &tokio_postgres::Config) -> StoreResult<()> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(map_backend)?;
    let driver = tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %map_backend(error), "the migration connection ended");
        }
    });
    let migrated = schema::migrate(&mut client).await;
    // Dropping the client closes the connection, which ends the driver task.
    drop(client);
    let _ = driver.await;
    migrated
}

impl PostgresStore {
    /// Connects to the database at `url`, brings its schema up to date, and keeps a pool of at
    /// most `pool_size` connections.
    pub async fn connect(url: &str, pool_size: usize) -> StoreResult<Self> {
        let config = parse_config(url)?;
        migrate_with(&config).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A connection is reused after a cheap liveness check, not a round trip.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|error| StoreError::Backend(format!("connection pool: {error}")))?;
        Ok(PostgresStore {
            publishes: (0..PUBLISH_COMMITTERS)
                .map(|_| GroupCommitter::start(pool.clone()))
                .collect(),
            attempts: Arc::new(GroupCommitter::start(pool.clone())),
            pool,
            config,
            claim_turns: Arc::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::parse_config;

    fn options(url: &str) -> Option<String> {
        parse_config(url)
            .expect("a valid URL")
            .get_options()
            .map(str::to_owned)
    }

    #[test]
    fn connections_plan_each_execution_unless_the_url_says_otherwise() {
        assert_eq!(
            options("postgres://herald@db/herald").as_deref(),
            Some("-c plan_cache_mode=force_custom_plan")
        );
        assert_eq!(
            options("postgres://herald@db/herald?options=-c%20statement_timeout%3D5s").as_deref(),
            Some("-c statement_timeout=5s -c plan_cache_mode=force_custom_plan")
        );
        assert_eq!(
            options("postgres://herald@db/herald?options=-c%20plan_cache_mode%3Dauto").as_deref(),
            Some("-c plan_cache_mode=auto")
        );
    }
}
