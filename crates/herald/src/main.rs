//! The `herald` binary: command-line parsing, configuration and wiring of the crates.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Herald, the identity event hub: validates identity events against a typed catalog, stores them
/// in an ordered log and delivers them, signed, to the systems that must know.
#[derive(Debug, Parser)]
#[command(name = "herald", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Explore the event catalog.
    #[command(subcommand)]
    Catalog(commands::catalog::CatalogCommand),
    /// Check that files are valid event envelopes of catalog types.
    Validate(commands::validate::ValidateArgs),
    /// Run Herald: the API and the delivery workers.
    Serve(herald::config::ServeArgs),
    /// Bring the database schema up to date (before a rolling restart of a cluster).
    Migrate(commands::migrate::MigrateArgs),
    /// Publish events to a running Herald (one envelope, a JSON array, or JSON lines).
    Publish(commands::client::PublishArgs),
    /// Create, list and revoke API keys (a tenant's with --tenant, the admin keys with --admin).
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Manage a tenant's endpoints.
    #[command(subcommand)]
    Endpoints(commands::endpoints::EndpointsCommand),
    /// Inspect deliveries.
    #[command(subcommand)]
    Deliveries(commands::endpoints::DeliveriesCommand),
    /// Manage a tenant's blocking hooks.
    #[command(subcommand)]
    Hooks(commands::hooks::HooksCommand),
    /// Manage a tenant's sources: the URLs Authgear, Asgardeo and OneWelcome send events to.
    #[command(subcommand)]
    Sources(commands::sources::SourcesCommand),
    /// Shared Signals: the tenant's signing keys (SET and `v1a`), receivers and streams.
    #[command(subcommand)]
    Ssf(commands::ssf::SsfCommand),
    /// Ask whether a blocking event's operation may happen (exit 0 allowed, 1 refused).
    Evaluate(commands::hooks::EvaluateArgs),
    /// Deliver events to an endpoint again.
    Replay(commands::endpoints::ReplayArgs),
    /// Check the signatures of a delivery you received.
    Verify(commands::verify::VerifyArgs),
    /// Run a small local webhook receiver that prints and saves what arrives.
    Receive(commands::receive::ReceiveArgs),
    /// Measure throughput and latency on this machine (loopback only).
    Bench(commands::bench::BenchArgs),
    /// Forward a tenant's deliveries to a receiver on this machine (a temporary endpoint).
    Listen(commands::listen::ListenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Catalog(command) => commands::catalog::run(command),
        Command::Validate(args) => commands::validate::run(&args),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Migrate(args) => commands::migrate::run(&args),
        Command::Publish(args) => commands::client::publish(&args),
        Command::Keys(command) => commands::keys::run(&command),
        Command::Endpoints(command) => commands::endpoints::endpoints(&command),
        Command::Deliveries(command) => commands::endpoints::deliveries(&command),
        Command::Replay(args) => commands::endpoints::replay(&args),
        Command::Hooks(command) => commands::hooks::hooks(&command),
        Command::Sources(command) => commands::sources::run(&command),
        Command::Ssf(command) => commands::ssf::run(&command),
        Command::Evaluate(args) => commands::hooks::evaluate(&args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Receive(args) => commands::receive::run(&args),
        Command::Bench(args) => commands::bench::run(&args),
        Command::Listen(args) => commands::listen::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
