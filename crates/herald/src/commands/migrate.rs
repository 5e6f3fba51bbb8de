//! `herald migrate`: bring the database schema up to date, ahead of a rolling restart.

use std::process::ExitCode;

use clap::Args;
use herald::config::parse_database;

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database: a SQLite file path or a `postgres://` URL.
    #[arg(long, env = "HERALD_DB", default_value = "herald.db")]
    db: String,
}

pub fn run(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let database = parse_database(&args.db, 1)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Opening a database brings its schema up to date (on PostgreSQL under an advisory lock, so
    // nodes starting meanwhile wait for it).
    runtime.block_on(async { herald::server::open_backend(&database).await.map(drop) })?;
    println!("the schema is up to date");
    Ok(ExitCode::SUCCESS)
}
