//! Opening a database file: the one-process lock, the leases a dead process left behind, and the
//! store as a [`Backend`].

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use herald_store::{Backend, ChangeHandler, ChangeListener, Store, StoreError, StoreResult};
use rusqlite::Connection;

use crate::SqliteStore;
use crate::rows::map_backend;

/// SQLite's write-ahead log of the database at `path`.
pub(crate) fn wal_path(path: &Path) -> std::path::PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::path::PathBuf::from(wal)
}

/// Takes the exclusive lock on `<path>.lock`, or says which file another process holds.
pub(crate) fn lock_for_this_process(path: &Path) -> StoreResult<std::fs::File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|error| {
            StoreError::Backend(format!("cannot open {}: {error}", lock_path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Unavailable(format!(
            "{} is in use by another Herald process (it holds {})",
            path.display(),
            lock_path.display()
        ))),
        Err(std::fs::TryLockError::Error(error)) => Err(StoreError::Backend(format!(
            "cannot lock {}: {error}",
            lock_path.display()
        ))),
    }
}

/// Rows in flight are only left by a Herald that kept leases in the rows (leases are in memory
/// now, `leases.rs`). They are found through the partial index of unfinished deliveries, so the
/// open of a file with a long history does not scan it.
const RELEASE_ROWS_IN_FLIGHT: &str = "UPDATE deliveries INDEXED BY deliveries_unfinished_by_subject
     SET state = CASE WHEN n_attempts = 0 THEN 'pending' ELSE 'scheduled' END, lease_until = NULL
     WHERE state = 'in_flight'";

/// Hands back every delivery left `in_flight` by a process that died (SIGKILL, power cut): it is
/// due again at once, with its attempt count unchanged, since its attempt was never recorded.
pub(crate) fn release_leases_of_dead_processes(connection: &Connection) -> StoreResult<()> {
    let n_released = connection
        .execute(RELEASE_ROWS_IN_FLIGHT, [])
        .map_err(map_backend)?;
    if n_released > 0 {
        tracing::info!(
            n_released,
            "deliveries left in flight by a stopped process are due again"
        );
    }
    Ok(())
}

/// One process owns the file, so there are no other nodes to hear from.
#[async_trait]
impl Backend for SqliteStore {
    fn store(&self) -> Arc<dyn Store> {
        Arc::new(self.clone())
    }

    /// No other node to hear from; but `wakeup` is woken at the commit of every group of durable
    /// writes (publishes among them), before the sync: the dispatcher's claim reads the new
    /// deliveries while the disk syncs, and waits for the sync only to hand them out.
    async fn listen_for_changes(
        &self,
        wakeup: Arc<tokio::sync::Notify>,
        _on_change: ChangeHandler,
    ) -> StoreResult<Option<ChangeListener>> {
        self.writer.wake_at_commit(wakeup);
        Ok(None)
    }
}
