//! `herald sources create|list|show|update|delete|rotate-secret --tenant T`: a tenant's sources,
//! the URLs a vendor's console is given so that it sends its events to Herald its own way.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::commands::client::{Api, Connection, print_json};

#[derive(Debug, Subcommand)]
pub enum SourcesCommand {
    /// Make a source; prints its ingest URL and its secret (shown this once).
    Create(SourceCreateArgs),
    /// List the tenant's sources with their counters.
    List(SourceTenantArgs),
    /// Show one source: settings, counters, lease, latest errors.
    Show(SourceIdArgs),
    /// Change a source's name, credentials or accepted topics.
    Update(SourceUpdateArgs),
    /// Delete a source: its URL answers 404 from then on.
    Delete(SourceIdArgs),
    /// Replace the secret (generated, or --secret); prints the new one once.
    RotateSecret(SourceRotateArgs),
}

#[derive(Debug, Args)]
pub struct SourceTenantArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
}

#[derive(Debug, Args)]
pub struct SourceIdArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The source's id (`src_...`).
    source: String,
}

/// Settings a source may have; which apply depends on its kind.
#[derive(Debug, Args)]
pub struct SourceSettings {
    #[arg(long)]
    name: Option<String>,
    /// The vendor's secret (Authgear's signing secret, the one typed into Asgardeo, OneWelcome's
    /// header value or password); generated when absent on create.
    #[arg(long)]
    secret: Option<String>,
    /// OneWelcome: the header the exporter sends the secret in.
    #[arg(long)]
    header_name: Option<String>,
    /// OneWelcome: the basic-auth username (the secret is the password).
    #[arg(long)]
    username: Option<String>,
    /// Asgardeo: a WebSub topic to accept (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
}

impl SourceSettings {
    /// `body` with the settings the user gave added; the server's defaults cover the rest.
    fn add_to(&self, mut body: Value) -> Value {
        for (name, value) in [
            ("name", &self.name),
            ("secret", &self.secret),
            ("header_name", &self.header_name),
            ("username", &self.username),
        ] {
            if let Some(value) = value {
                body[name] = json!(value);
            }
        }
        if !self.topics.is_empty() {
            body["accepted_topics"] = json!(self.topics);
        }
        body
    }
}

#[derive(Debug, Args)]
pub struct SourceCreateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// authgear, asgardeo or onewelcome.
    #[arg(long)]
    kind: String,
    #[command(flatten)]
    settings: SourceSettings,
}

#[derive(Debug, Args)]
pub struct SourceUpdateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The source's id (`src_...`).
    source: String,
    #[command(flatten)]
    settings: SourceSettings,
}

#[derive(Debug, Args)]
pub struct SourceRotateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The source's id (`src_...`).
    source: String,
    /// The new secret, as configured in the vendor; generated when absent.
    #[arg(long)]
    secret: Option<String>,
}

fn sources_path(tenant: &str) -> String {
    format!("/v1/tenants/{tenant}/sources")
}

/// The source as the server answered, with the full URL to paste into the vendor's console.
fn with_ingest_url(api: &Api, mut source: Value) -> Value {
    if let Some(path) = source["ingest_path"].as_str() {
        source["ingest_url"] = json!(format!("{}{path}", api.base()));
    }
    source
}

pub fn run(command: &SourcesCommand) -> anyhow::Result<ExitCode> {
    match command {
        SourcesCommand::Create(args) => {
            let api = Api::new(&args.connection)?;
            let body = args.settings.add_to(json!({"kind": args.kind}));
            let created = api.call(
                reqwest::Method::POST,
                &sources_path(&args.tenant),
                Some(&body),
            )?;
            print_json(&with_ingest_url(&api, created))?;
        }
        SourcesCommand::List(args) => {
            let api = Api::new(&args.connection)?;
            let listed = api.call(reqwest::Method::GET, &sources_path(&args.tenant), None)?;
            for source in listed["data"].as_array().into_iter().flatten() {
                println!("{}", list_line(&api, source));
            }
        }
        SourcesCommand::Show(args) => {
            let api = Api::new(&args.connection)?;
            let path = format!("{}/{}", sources_path(&args.tenant), args.source);
            let source = api.call(reqwest::Method::GET, &path, None)?;
            print_json(&with_ingest_url(&api, source))?;
        }
        SourcesCommand::Update(args) => {
            let api = Api::new(&args.connection)?;
            let body = args.settings.add_to(json!({}));
            let path = format!("{}/{}", sources_path(&args.tenant), args.source);
            let updated = api.call(reqwest::Method::PATCH, &path, Some(&body))?;
            print_json(&with_ingest_url(&api, updated))?;
        }
        SourcesCommand::Delete(args) => {
            let api = Api::new(&args.connection)?;
            let path = format!("{}/{}", sources_path(&args.tenant), args.source);
            api.call(reqwest::Method::DELETE, &path, None)?;
            println!("deleted {}", args.source);
        }
        SourcesCommand::RotateSecret(args) => {
            let api = Api::new(&args.connection)?;
            let path = format!(
                "{}/{}/secret/rotate",
                sources_path(&args.tenant),
                args.source
            );
            let body = match &args.secret {
                Some(secret) => json!({"secret": secret}),
                None => json!({}),
            };
            let rotated = api.call(reqwest::Method::POST, &path, Some(&body))?;
            print_json(&with_ingest_url(&api, rotated))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_line(api: &Api, source: &Value) -> String {
    let text = |name: &str| source[name].as_str().unwrap_or_default().to_owned();
    let count = |name: &str| source[name].as_u64().unwrap_or_default();
    format!(
        "{}  {:<10} accepted {} duplicates {} refused {}  last success {}  {}{}  {}",
        text("id"),
        text("kind"),
        count("n_accepted"),
        count("n_duplicates"),
        count("n_refused"),
        source["last_success_at"].as_str().unwrap_or("never"),
        api.base(),
        text("ingest_path"),
        text("name"),
    )
}
