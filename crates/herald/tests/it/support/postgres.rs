//! The machine's PostgreSQL server as the tests share it: a fresh database for each test that
//! needs one, and a lock so that a test stopping the server never does so under another.
//!
//! The server is `postgres://postgres@127.0.0.1:5432`, managed by `pg_ctlcluster`. When it cannot
//! be reached the tests fail saying so: they never skip, so a machine without PostgreSQL cannot
//! pass them by accident.

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio_postgres::NoTls;

use herald::config::Database;

use super::TestApp;

/// The server every test database lives on; databases are added as the path.
const SERVER_URL: &str = "postgres://postgres@127.0.0.1:5432";

/// Databases of a prefix older than this were left by a failed run and are dropped when the next
/// one of that prefix is made; younger ones may belong to a run still going on elsewhere.
const STALE_AFTER_SECONDS: i64 = 15 * 60;

/// All tests of this binary run on the threads of one process. A test that stops the server (or
/// measures what a small machine can do under load) holds this for writing; every test on
/// PostgreSQL holds it for reading, through its [`FreshPostgres`].
///
/// The lock is fair: a test must not take it twice (two `FreshPostgres` at once), or a writer
/// queued in between would wait for it while it waits for the writer.
static SERVER_USE: RwLock<()> = RwLock::const_new(());

/// How a test holds [`SERVER_USE`].
enum ServerUse {
    BesideOthers {
        _guard: RwLockReadGuard<'static, ()>,
    },
    Alone {
        _guard: RwLockWriteGuard<'static, ()>,
    },
}

/// A connection to `database` on the test server, with its driver running.
async fn connect(database: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) =
        tokio_postgres::connect(&format!("{SERVER_URL}/{database}"), NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A connection to the maintenance database; panics, saying why, when the server is not there.
async fn maintenance_client() -> tokio_postgres::Client {
    match connect("postgres").await {
        Ok(client) => client,
        Err(error) => {
            let cause = std::error::Error::source(&error)
                .map_or_else(String::new, |cause| format!(": {cause}"));
            panic!(
                "PostgreSQL is not reachable at {SERVER_URL} ({error}{cause}). These tests run \
                 Herald on it and never skip: start it with `pg_ctlcluster \
                 --skip-systemctl-redirect <version> main start`."
            )
        }
    }
}

/// A database of its own on the machine's PostgreSQL server, named
/// `<prefix>_<unix seconds>_<random>`; `remove` drops it once the test has passed (a failed test
/// leaves it to look at, for a while).
pub struct FreshPostgres {
    /// `postgres://…/<name>`, for `--db` or `Database::Postgres`.
    pub url: String,
    pub name: String,
    _server_use: ServerUse,
}

impl FreshPostgres {
    /// For a test that may run beside others: the server stays up until `remove`.
    pub async fn create(prefix: &str) -> Self {
        let server_use = ServerUse::BesideOthers {
            _guard: SERVER_USE.read().await,
        };
        Self::create_holding(prefix, server_use).await
    }

    /// For a test that runs alone until `remove`: it may stop and start the server, and nothing
    /// else on PostgreSQL competes with it.
    pub async fn create_alone(prefix: &str) -> Self {
        let server_use = ServerUse::Alone {
            _guard: SERVER_USE.write().await,
        };
        Self::create_holding(prefix, server_use).await
    }

    async fn create_holding(prefix: &str, server_use: ServerUse) -> Self {
        let maintenance = maintenance_client().await;
        let now = unix_seconds();
        drop_stale_databases(&maintenance, prefix, now).await;
        let name = format!("{prefix}_{now}_{:016x}", rand::random::<u64>());
        maintenance
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create a test database");
        FreshPostgres {
            url: format!("{SERVER_URL}/{name}"),
            name,
            _server_use: server_use,
        }
    }

    /// An in-process server on this database.
    pub async fn spawn(&self) -> TestApp {
        let url = self.url.clone();
        TestApp::spawn_with(move |options| {
            options.settings.database = Database::Postgres { url, pool_size: 4 };
        })
        .await
    }

    /// Drops the database, on a connection of its own: the server may have restarted since it
    /// was made.
    pub async fn remove(self) {
        maintenance_client()
            .await
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .await
            .expect("drop the test database");
    }
}

/// Drops the databases of `prefix` that earlier runs left behind.
async fn drop_stale_databases(maintenance: &tokio_postgres::Client, prefix: &str, now: i64) {
    let names: Vec<String> = maintenance
        .query(
            "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
            &[&format!("{prefix}_")],
        )
        .await
        .expect("list test databases")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for name in names {
        let created_at = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('_'))
            .and_then(|rest| rest.split('_').next())
            .and_then(|seconds| seconds.parse::<i64>().ok());
        if created_at.is_some_and(|created_at| now - created_at > STALE_AFTER_SECONDS) {
            // Another run may drop it at the same moment; either way it is gone.
            let _ = maintenance
                .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
}

fn unix_seconds() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_secs()).expect("seconds fit")
}
