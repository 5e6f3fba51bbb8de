//! The shared storage conformance suite, run on a fresh SQLite file per test.

use std::sync::Arc;

use herald_store::Store;
use herald_store_sqlite::SqliteStore;

async fn fresh_store() -> Arc<dyn Store> {
    // The directory is leaked on purpose: it must outlive the store, and the OS cleans temp.
    let directory = tempfile::tempdir().expect("tempdir").keep();
    Arc::new(SqliteStore::open(&directory.join("herald.db")).expect("opens"))
}

herald_store::conformance_tests!(fresh_store());
