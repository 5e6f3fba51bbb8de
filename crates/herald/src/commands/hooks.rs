//! `herald hooks` and `herald evaluate`: blocking hooks and a blocking decision, over the REST API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use serde_json::json;

use crate::commands::client::{Api, Connection, TenantArgs, print_json, read_events, set_present};

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Add a blocking hook; prints it with its signing secret.
    Create(HookCreateArgs),
    /// List the tenant's hooks in call order.
    List(TenantArgs),
    /// Remove a hook.
    Delete(HookArgs),
}

#[derive(Debug, Args)]
pub struct HookCreateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// A blocking event type, e.g. user.pre_create.
    #[arg(long)]
    event_type: String,
    #[arg(long)]
    url: String,
    #[arg(long)]
    position: Option<i32>,
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// fail_closed (default) or fail_open.
    #[arg(long)]
    failure_policy: Option<String>,
    #[arg(long)]
    secret: Option<String>,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// The hook id (`hk_...`).
    hook: String,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// An Authgear envelope of a blocking type (or {type, payload}); `-` reads standard input.
    #[arg(value_name = "FILE|-")]
    file: PathBuf,
}

pub fn hooks(command: &HooksCommand) -> anyhow::Result<ExitCode> {
    match command {
        HooksCommand::Create(args) => {
            let api = Api::new(&args.connection)?;
            let mut body = json!({"event_type": args.event_type, "url": args.url});
            if let Some(position) = args.position {
                body["position"] = json!(position);
            }
            if let Some(timeout_ms) = args.timeout_ms {
                body["timeout_ms"] = json!(timeout_ms);
            }
            set_present(
                &mut body,
                [
                    ("failure_policy", &args.failure_policy),
                    ("secret", &args.secret),
                ],
            );
            let created = api.call(
                reqwest::Method::POST,
                &format!("/v1/tenants/{}/hooks", args.tenant),
                Some(&body),
            )?;
            print_json(&created)?;
        }
        HooksCommand::List(args) => {
            let api = Api::new(&args.connection)?;
            let listed = api.call(
                reqwest::Method::GET,
                &format!("/v1/tenants/{}/hooks", args.tenant),
                None,
            )?;
            for hook in listed["data"].as_array().into_iter().flatten() {
                println!(
                    "{}  {:<32} #{:<5} {:<11} {:>6} ms  {}{}",
                    hook["id"].as_str().unwrap_or_default(),
                    hook["event_type"].as_str().unwrap_or_default(),
                    hook["position"],
                    hook["failure_policy"].as_str().unwrap_or_default(),
                    hook["timeout_ms"],
                    hook["url"].as_str().unwrap_or_default(),
                    if hook["enabled"] == true {
                        ""
                    } else {
                        "  (disabled)"
                    },
                );
            }
        }
        HooksCommand::Delete(args) => {
            let api = Api::new(&args.connection)?;
            api.call(
                reqwest::Method::DELETE,
                &format!("/v1/tenants/{}/hooks/{}", args.tenant, args.hook),
                None,
            )?;
            println!("deleted {}", args.hook);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the decision; exits 0 when the operation is allowed and 1 when it is refused, so
/// scripts can branch on it.
pub fn evaluate(args: &EvaluateArgs) -> anyhow::Result<ExitCode> {
    let events = read_events(&args.file)?;
    let [event] = events.as_slice() else {
        bail!(
            "{}: expected one event, found {}",
            args.file.display(),
            events.len()
        );
    };
    let api = Api::new(&args.connection)?;
    let decision = api.call(
        reqwest::Method::POST,
        &format!("/v1/tenants/{}/blocking-events", args.tenant),
        Some(event),
    )?;
    print_json(&decision)?;
    Ok(if decision["is_allowed"] == true {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
