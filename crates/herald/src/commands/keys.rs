//! `herald keys create|list|revoke`: a tenant's API keys (`--tenant T`) or the admin keys
//! (`--admin`), through the REST API with an admin key. One of the two must be named, so an
//! admin key is never made by forgetting `--tenant`.

use std::process::ExitCode;

use anyhow::bail;
use clap::{Args, Subcommand};
use herald_core::api_key::is_well_formed_api_key;
use serde_json::{Value, json};

use crate::commands::client::{Api, Connection, print_json};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key; prints it once (Herald keeps only its hash).
    Create(KeyCreateArgs),
    /// List keys: id, prefix, name, creation and last use; never the keys.
    List(KeyOwnerArgs),
    /// Revoke a key: it is refused from the next request on, on every node.
    Revoke(KeyRevokeArgs),
}

/// Whose keys: one tenant's, or the admin keys.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Owner {
    /// A tenant's API keys.
    #[arg(long)]
    tenant: Option<String>,
    /// The admin keys.
    #[arg(long)]
    admin: bool,
}

impl Owner {
    fn path(&self) -> String {
        match &self.tenant {
            Some(tenant) => format!("/v1/tenants/{tenant}/api-keys"),
            None => "/v1/admin-keys".to_owned(),
        }
    }
}

#[derive(Debug, Args)]
pub struct KeyOwnerArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    owner: Owner,
}

#[derive(Debug, Args)]
pub struct KeyCreateArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    owner: Owner,
    /// What the key is for, shown in lists.
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeyRevokeArgs {
    #[command(flatten)]
    connection: Connection,
    #[command(flatten)]
    owner: Owner,
    /// The key's id (`key_...`, from `herald keys list`), not the key itself.
    key_id: String,
}

pub fn run(command: &KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Create(args) => {
            let api = Api::new(&args.connection)?;
            let body = match &args.name {
                Some(name) => json!({"name": name}),
                None => json!({}),
            };
            let created = api.call(reqwest::Method::POST, &args.owner.path(), Some(&body))?;
            print_json(&created)?;
        }
        KeysCommand::List(args) => {
            let api = Api::new(&args.connection)?;
            let listed = api.call(reqwest::Method::GET, &args.owner.path(), None)?;
            for key in listed["data"].as_array().into_iter().flatten() {
                println!("{}", list_line(key));
            }
        }
        KeysCommand::Revoke(args) => {
            // A key pasted here would travel in the URL (and into access logs): refuse it
            // without repeating it.
            if !args.key_id.starts_with("key_") {
                bail!(
                    "give the key's id (key_..., from `herald keys list`), not the key itself{}",
                    if is_well_formed_api_key(&args.key_id) {
                        ": that argument is a key; if it leaked, revoke it by its id"
                    } else {
                        ""
                    }
                );
            }
            let api = Api::new(&args.connection)?;
            api.call(
                reqwest::Method::DELETE,
                &format!("{}/{}", args.owner.path(), args.key_id),
                None,
            )?;
            println!("revoked {}", args.key_id);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn list_line(key: &Value) -> String {
    let text = |name: &str| key[name].as_str().unwrap_or_default().to_owned();
    let prefix = text("prefix");
    format!(
        "{}  {:<16} created {}  last used {}  {}",
        text("id"),
        if prefix.is_empty() {
            "(no prefix)".to_owned()
        } else {
            format!("{prefix}…")
        },
        text("created_at"),
        key["last_used_at"].as_str().unwrap_or("never"),
        text("name"),
    )
}
