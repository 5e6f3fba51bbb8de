//! `herald endpoints`, `herald deliveries` and `herald replay`: an endpoint's life and its
//! deliveries, over the REST API.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::commands::client::{Api, Connection, TenantArgs, print_json, set_present};

#[derive(Debug, Subcommand)]
pub enum EndpointsCommand {
    /// Create an endpoint; prints it with its signing secret.
    Create(EndpointCreateArgs),
    /// List the tenant's endpoints.
    List(TenantArgs),
    /// Pause or resume, disable or enable an endpoint; prints it.
    Update(EndpointUpdateArgs),
    /// Delete an endpoint and its deliveries.
    Delete(EndpointArgs),
}

#[derive(Debug, Args)]
pub struct EndpointArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The endpoint id (`ep_...`).
    endpoint: String,
}

#[derive(Debug, Args)]
pub struct EndpointCreateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    url: String,
    /// Event filter (repeatable): exact type, `prefix.*`, a taxonomy name, or `*`.
    #[arg(long = "filter", default_value = "*")]
    filters: Vec<String>,
    /// `whsec_...` or a vendor's plain secret; generated when absent.
    #[arg(long)]
    secret: Option<String>,
    /// none, subject or strict.
    #[arg(long)]
    ordering: Option<String>,
    /// native or canonical.
    #[arg(long)]
    format: Option<String>,
    /// Create it paused: deliveries queue up until `endpoints update --paused false`.
    #[arg(long)]
    paused: bool,
    /// v1 (HMAC, the default), v1a (Ed25519 with the tenant's key) or v1a+v1.
    #[arg(long)]
    signature_scheme: Option<String>,
}

#[derive(Debug, Args)]
pub struct EndpointUpdateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The endpoint id (`ep_...`).
    endpoint: String,
    /// `true` queues deliveries without sending them; `false` sends what queued up.
    #[arg(long, value_name = "true|false")]
    paused: Option<bool>,
    /// `false` stops creating deliveries for it; `true` re-enables it.
    #[arg(long, value_name = "true|false")]
    enabled: Option<bool>,
    /// v1, v1a or v1a+v1.
    #[arg(long)]
    signature_scheme: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// List an endpoint's deliveries.
    List(DeliveriesListArgs),
}

#[derive(Debug, Args)]
pub struct DeliveriesListArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    endpoint: String,
    /// pending, in_flight, delivered, scheduled, exhausted or cancelled.
    #[arg(long)]
    state: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    endpoint: String,
    /// Replay one event.
    #[arg(long, group = "what")]
    event: Option<String>,
    /// Replay every exhausted delivery.
    #[arg(long, group = "what")]
    failed: bool,
    /// Replay every matching event after this seq.
    #[arg(long, group = "what")]
    since_seq: Option<i64>,
    /// Replay every matching event received since this RFC 3339 time.
    #[arg(long, group = "what")]
    since: Option<String>,
}

pub fn endpoints(command: &EndpointsCommand) -> anyhow::Result<ExitCode> {
    match command {
        EndpointsCommand::Create(args) => {
            let api = Api::new(&args.connection)?;
            let mut body = json!({"url": args.url, "filters": args.filters});
            set_present(
                &mut body,
                [
                    ("secret", &args.secret),
                    ("ordering", &args.ordering),
                    ("format", &args.format),
                    ("signature_scheme", &args.signature_scheme),
                ],
            );
            if args.paused {
                body["paused"] = json!(true);
            }
            let created = api.call(
                reqwest::Method::POST,
                &format!("/v1/tenants/{}/endpoints", args.tenant),
                Some(&body),
            )?;
            print_json(&created)?;
        }
        EndpointsCommand::List(args) => {
            let api = Api::new(&args.connection)?;
            let listed = api.call(
                reqwest::Method::GET,
                &format!("/v1/tenants/{}/endpoints", args.tenant),
                None,
            )?;
            for endpoint in listed["data"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}  {}  {}",
                    endpoint["id"].as_str().unwrap_or_default(),
                    match (&endpoint["enabled"], &endpoint["paused"]) {
                        (Value::Bool(true), Value::Bool(true)) => "paused  ",
                        (Value::Bool(true), _) => "enabled ",
                        _ => "disabled",
                    },
                    endpoint["url"].as_str().unwrap_or_default(),
                    endpoint["filters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                );
            }
        }
        EndpointsCommand::Update(args) => {
            let mut body = json!({});
            if let Some(paused) = args.paused {
                body["paused"] = json!(paused);
            }
            if let Some(enabled) = args.enabled {
                body["enabled"] = json!(enabled);
            }
            if let Some(scheme) = &args.signature_scheme {
                body["signature_scheme"] = json!(scheme);
            }
            if body.as_object().is_some_and(serde_json::Map::is_empty) {
                bail!(
                    "nothing to change: pass --paused true|false, --enabled true|false or --signature-scheme"
                );
            }
            let api = Api::new(&args.connection)?;
            let updated = api.call(
                reqwest::Method::PATCH,
                &format!("/v1/tenants/{}/endpoints/{}", args.tenant, args.endpoint),
                Some(&body),
            )?;
            print_json(&updated)?;
        }
        EndpointsCommand::Delete(args) => {
            let api = Api::new(&args.connection)?;
            api.call(
                reqwest::Method::DELETE,
                &format!("/v1/tenants/{}/endpoints/{}", args.tenant, args.endpoint),
                None,
            )?;
            println!("deleted {}", args.endpoint);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn deliveries(command: &DeliveriesCommand) -> anyhow::Result<ExitCode> {
    let DeliveriesCommand::List(args) = command;
    let api = Api::new(&args.connection)?;
    let mut path = format!(
        "/v1/tenants/{}/endpoints/{}/deliveries?limit=1000",
        args.tenant, args.endpoint
    );
    if let Some(state) = &args.state {
        path.push_str(&format!("&state={state}"));
    }
    let listed = api.call(reqwest::Method::GET, &path, None)?;
    if args.json {
        print_json(&listed)?;
        return Ok(ExitCode::SUCCESS);
    }
    for delivery in listed["data"].as_array().into_iter().flatten() {
        println!(
            "{}  seq {:<6} {:<10} attempts {:<2} last {}  {}",
            delivery["id"].as_str().unwrap_or_default(),
            delivery["event_seq"],
            delivery["state"].as_str().unwrap_or_default(),
            delivery["n_attempts"],
            delivery["last_status"],
            delivery["event_type"].as_str().unwrap_or_default(),
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn replay(args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let body = if let Some(event) = &args.event {
        json!({"event_id": event})
    } else if args.failed {
        json!({"failed": true})
    } else if let Some(seq) = args.since_seq {
        json!({"since_seq": seq})
    } else if let Some(since) = &args.since {
        json!({"since": since})
    } else {
        bail!("say what to replay: --event ID, --failed, --since-seq N or --since TIME");
    };
    let api = Api::new(&args.connection)?;
    eprintln!("replaying to {}...", args.endpoint);
    let answer = api.call(
        reqwest::Method::POST,
        &format!(
            "/v1/tenants/{}/endpoints/{}/replay",
            args.tenant, args.endpoint
        ),
        Some(&body),
    )?;
    println!("{} deliveries queued", answer["n_replayed"]);
    Ok(ExitCode::SUCCESS)
}
