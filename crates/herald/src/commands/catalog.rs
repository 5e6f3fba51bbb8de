//! `herald catalog list|show`: what event types Herald knows.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use herald_catalog::catalog::Catalog;
use herald_catalog::definition::EventTypeDef;
use herald_catalog::envelope::example_envelope;
use herald_catalog::taxonomy::Taxonomy;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// List event types, one a line (or as JSON).
    List(ListArgs),
    /// Show one event type: description, payload schema (with the definitions it uses), an example
    /// payload, that example in the taxonomy's native envelope, and the envelope's context schema
    /// where the taxonomy has one (Authgear).
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only this taxonomy (asgardeo, onewelcome, authgear, herald).
    #[arg(long)]
    taxonomy: Option<Taxonomy>,
    /// Only blocking types (those that run hooks before the operation).
    #[arg(long)]
    blocking: bool,
    /// Print `[{"type","taxonomy","blocking","module","description"}...]`.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The native type name, e.g. `user.created`, `UserCreatedEvent` or the full Asgardeo URI.
    #[arg(value_name = "TYPE")]
    event_type: String,
    /// Print the entry as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    match command {
        CatalogCommand::List(args) => list(&args),
        CatalogCommand::Show(args) => show(&args),
    }
}

fn list(args: &ListArgs) -> anyhow::Result<ExitCode> {
    let selected: Vec<&EventTypeDef> = Catalog::builtin()
        .iter()
        .map(AsRef::as_ref)
        .filter(|definition| {
            args.taxonomy
                .is_none_or(|wanted| definition.taxonomy() == wanted)
        })
        .filter(|definition| !args.blocking || definition.is_blocking())
        .collect();
    let mut out = std::io::stdout().lock();
    if args.json {
        let entries: Vec<_> = selected
            .iter()
            .map(|definition| {
                json!({
                    "type": definition.name(),
                    "taxonomy": definition.taxonomy().as_str(),
                    "blocking": definition.is_blocking(),
                    "module": definition.module(),
                    "description": definition.description(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &entries).context("failed to write the list")?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let name_width = selected
        .iter()
        .map(|definition| definition.name().len())
        .max()
        .unwrap_or(0);
    for definition in &selected {
        writeln!(
            out,
            "{:<10} {:<name_width$} {:<8} {}",
            definition.taxonomy().as_str(),
            definition.name(),
            if definition.is_blocking() {
                "blocking"
            } else {
                ""
            },
            definition.description(),
        )?;
    }
    writeln!(out, "{} event types", selected.len())?;
    Ok(ExitCode::SUCCESS)
}

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let catalog = Catalog::builtin();
    let Some(definition) = catalog.get(&args.event_type) else {
        let near: Vec<&str> = catalog
            .iter()
            .map(|definition| definition.name())
            .filter(|name| {
                name.to_lowercase()
                    .contains(&args.event_type.to_lowercase())
            })
            .take(5)
            .collect();
        if near.is_empty() {
            bail!(
                "unknown event type {:?}: see `herald catalog list`",
                args.event_type
            );
        }
        bail!(
            "unknown event type {:?}; did you mean: {}",
            args.event_type,
            near.join(", ")
        );
    };
    // The schema as shown carries only the shared definitions this type reaches, not its file's
    // whole set; validation still uses the full schema.
    let schema = definition.schema_with_used_definitions();
    let envelope = example_envelope(definition);
    let context_schema = catalog.context_schema(definition.taxonomy());
    let entry = json!({
        "type": definition.name(),
        "taxonomy": definition.taxonomy().as_str(),
        "module": definition.module(),
        "blocking": definition.is_blocking(),
        "description": definition.description(),
        "subject": definition.subject_pointer(),
        "schema": schema,
        "example": definition.example(),
        "example_envelope": envelope,
        "context_schema": context_schema,
    });
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &entry)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{}", definition.name())?;
    writeln!(out, "  {}", definition.description())?;
    writeln!(
        out,
        "  taxonomy: {}   module: {}   blocking: {}   subject: {}",
        definition.taxonomy(),
        definition.module(),
        if definition.is_blocking() {
            "yes"
        } else {
            "no"
        },
        definition.subject_pointer().unwrap_or("(none)"),
    )?;
    writeln!(out, "\nPayload schema:")?;
    serde_json::to_writer_pretty(&mut out, &schema)?;
    if let Some(example) = definition.example() {
        writeln!(out, "\n\nExample payload:")?;
        serde_json::to_writer_pretty(&mut out, example)?;
    }
    if let Some(envelope) = &envelope {
        writeln!(
            out,
            "\n\nExample envelope ({}, as Herald delivers it):",
            definition.taxonomy()
        )?;
        serde_json::to_writer_pretty(&mut out, envelope)?;
    }
    if let Some(context_schema) = context_schema {
        writeln!(out, "\n\nContext schema (the envelope's \"context\"):")?;
        serde_json::to_writer_pretty(&mut out, context_schema)?;
    }
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}
