//! `herald validate FILE...`: are these files valid envelopes of catalog types?

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use herald_catalog::catalog::Catalog;
use herald_catalog::envelope::{EnvelopeError, parse_envelope_bytes};

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Files holding one event envelope each (`-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// Exits 0 only when every file is valid; each problem is printed with its file and JSON path.
pub fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut n_invalid = 0usize;
    let mut out = std::io::stdout().lock();
    for file in &args.files {
        let name = file.display();
        let body = if file.as_os_str() == "-" {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut body).map(|_| body)
        } else {
            std::fs::read(file)
        };
        let body = match body {
            Ok(body) => body,
            Err(error) => {
                n_invalid += 1;
                writeln!(out, "{name}: cannot read: {error}")?;
                continue;
            }
        };
        match parse_envelope_bytes(Catalog::builtin(), &body) {
            Ok(event) => writeln!(
                out,
                "{name}: ok ({} {}{})",
                event.taxonomy,
                event.event_type,
                event
                    .subject
                    .map(|subject| format!(", subject {subject}"))
                    .unwrap_or_default()
            )?,
            Err(EnvelopeError::Malformed {
                line,
                column,
                message,
            }) => {
                n_invalid += 1;
                writeln!(out, "{name}:{line}:{column}: malformed JSON: {message}")?;
            }
            Err(EnvelopeError::Invalid(problems)) => {
                n_invalid += 1;
                for problem in problems {
                    let path = if problem.path.is_empty() {
                        "/"
                    } else {
                        &problem.path
                    };
                    writeln!(out, "{name}: {path}: {}", problem.message)?;
                }
            }
        }
    }
    if n_invalid > 0 {
        writeln!(out, "{n_invalid} of {} files invalid", args.files.len())?;
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
