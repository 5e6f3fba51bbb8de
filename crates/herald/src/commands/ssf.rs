//! `herald ssf keys|receivers|streams --tenant T`: a tenant's Shared Signals set-up through the
//! REST API: its signing keys (ES256/RS256 for SETs, EdDSA for endpoints' Standard Webhooks `v1a`
//! signatures), the receivers allowed to manage streams, and a look at the streams they made.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::commands::client::{Api, Connection, print_json};

#[derive(Debug, Subcommand)]
pub enum SsfCommand {
    /// The tenant's signing keys: the JWKS at /ssf/{tenant}/jwks.json publishes them.
    #[command(subcommand)]
    Keys(SsfKeysCommand),
    /// The receivers (relying parties) that may create and manage streams with their token.
    #[command(subcommand)]
    Receivers(SsfReceiversCommand),
    /// The streams the tenant's receivers made (read-only: receivers manage their own).
    #[command(subcommand)]
    Streams(SsfStreamsCommand),
}

#[derive(Debug, Subcommand)]
pub enum SsfKeysCommand {
    /// Make a key that signs from now on; the previous key of its kind stays published (and an
    /// Ed25519 key keeps signing `v1a` beside the new one) for the rotation overlap.
    Create(KeyCreateArgs),
    /// List keys, newest first: kid, algorithm, creation, retirement.
    List(TenantArgs),
    /// Retire a key now; it stays published for the rotation overlap.
    Retire(KeyRetireArgs),
}

#[derive(Debug, Subcommand)]
pub enum SsfReceiversCommand {
    /// Make a receiver; prints its bearer token once (Herald keeps only its hash).
    Create(ReceiverCreateArgs),
    /// List receivers; never their tokens.
    List(TenantArgs),
}

#[derive(Debug, Subcommand)]
pub enum SsfStreamsCommand {
    /// List streams: id, status, delivery method, receiver.
    List(TenantArgs),
    /// Show one stream: status, settings, number of subjects.
    Show(StreamShowArgs),
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// ES256 (the default) or RS256 sign SETs; EdDSA (Ed25519) signs `v1a` webhook signatures.
    #[arg(long)]
    alg: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyRetireArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The key's id (`sigkey_...`, from `herald ssf keys list`).
    kid: String,
}

#[derive(Debug, Args)]
pub struct ReceiverCreateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// What the receiver is, shown in lists.
    #[arg(long)]
    name: Option<String>,
    /// Let the receiver ask for events about every subject of the tenant.
    #[arg(long)]
    all_subjects: bool,
}

#[derive(Debug, Args)]
pub struct StreamShowArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The stream's id.
    stream: String,
}

fn ssf_path(tenant: &str, resource: &str) -> String {
    format!("/v1/tenants/{tenant}/ssf/{resource}")
}

pub fn run(command: &SsfCommand) -> anyhow::Result<ExitCode> {
    match command {
        SsfCommand::Keys(SsfKeysCommand::Create(args)) => {
            let api = Api::new(&args.connection)?;
            let body = match &args.alg {
                Some(alg) => json!({"alg": alg}),
                None => json!({}),
            };
            let created = api.call(
                reqwest::Method::POST,
                &ssf_path(&args.tenant, "keys"),
                Some(&body),
            )?;
            print_json(&created)?;
        }
        SsfCommand::Keys(SsfKeysCommand::List(args)) => {
            let api = Api::new(&args.connection)?;
            let listed = api.call(reqwest::Method::GET, &ssf_path(&args.tenant, "keys"), None)?;
            for key in listed["data"].as_array().into_iter().flatten() {
                println!("{}", key_line(key));
            }
        }
        SsfCommand::Keys(SsfKeysCommand::Retire(args)) => {
            let api = Api::new(&args.connection)?;
            let path = ssf_path(&args.tenant, &format!("keys/{}/retire", args.kid));
            let retired = api.call(reqwest::Method::POST, &path, None)?;
            println!("{}", key_line(&retired));
        }
        SsfCommand::Receivers(SsfReceiversCommand::Create(args)) => {
            let api = Api::new(&args.connection)?;
            let mut body = json!({"may_receive_all_subjects": args.all_subjects});
            if let Some(name) = &args.name {
                body["name"] = json!(name);
            }
            let created = api.call(
                reqwest::Method::POST,
                &ssf_path(&args.tenant, "receivers"),
                Some(&body),
            )?;
            print_json(&created)?;
        }
        SsfCommand::Receivers(SsfReceiversCommand::List(args)) => {
            let api = Api::new(&args.connection)?;
            let listed = api.call(
                reqwest::Method::GET,
                &ssf_path(&args.tenant, "receivers"),
                None,
            )?;
            for receiver in listed["data"].as_array().into_iter().flatten() {
                println!("{}", receiver_line(receiver));
            }
        }
        SsfCommand::Streams(SsfStreamsCommand::List(args)) => {
            let api = Api::new(&args.connection)?;
            let listed = api.call(
                reqwest::Method::GET,
                &ssf_path(&args.tenant, "streams"),
                None,
            )?;
            for stream in listed["data"].as_array().into_iter().flatten() {
                println!("{}", stream_line(stream));
            }
        }
        SsfCommand::Streams(SsfStreamsCommand::Show(args)) => {
            let api = Api::new(&args.connection)?;
            let path = ssf_path(&args.tenant, &format!("streams/{}", args.stream));
            print_json(&api.call(reqwest::Method::GET, &path, None)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn text(value: &Value, name: &str) -> String {
    value[name].as_str().unwrap_or_default().to_owned()
}

fn key_line(key: &Value) -> String {
    format!(
        "{}  {:<6} created {}  {}",
        text(key, "kid"),
        text(key, "alg"),
        text(key, "created_at"),
        match key["retired_at"].as_str() {
            Some(retired_at) => format!("retired {retired_at}"),
            None => "signing".to_owned(),
        },
    )
}

fn receiver_line(receiver: &Value) -> String {
    format!(
        "{}  created {}  {}{}",
        text(receiver, "id"),
        text(receiver, "created_at"),
        if receiver["may_receive_all_subjects"] == json!(true) {
            "all subjects  "
        } else {
            ""
        },
        text(receiver, "name"),
    )
}

fn stream_line(stream: &Value) -> String {
    format!(
        "{}  {:<8} {}  receiver {}  created {}",
        text(stream, "stream_id"),
        text(stream, "status"),
        stream["config"]["delivery_method"]
            .as_str()
            .unwrap_or_default(),
        text(stream, "receiver_id"),
        text(stream, "created_at"),
    )
}
