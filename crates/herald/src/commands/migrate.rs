//! `herald migrate`: bring the database schema up to date, ahead of a rolling restart.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use herald::config::{Database, parse_database};

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
    runtime.block_on(async {
        match &database {
            Database::Postgres { url, .. } => herald_store_postgres::migrate(url)
                .await
                .context("failed to migrate the PostgreSQL schema")?,
            // Opening a SQLite file runs its migrations.
            Database::Sqlite(_) => {
                herald::server::open_store(&database).await?;
            }
        }
        anyhow::Ok(())
    })?;
    println!("the schema is up to date");
    Ok(ExitCode::SUCCESS)
}
