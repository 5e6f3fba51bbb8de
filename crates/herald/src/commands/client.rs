//! The commands that talk to a running Herald over its REST API: the connection options and the
//! client they share (`Api`), and `publish`. Endpoints, deliveries and replay are in
//! `commands::endpoints`, hooks in `commands::hooks`.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

/// Where the server is and who is calling.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// Base URL of the Herald server.
    #[arg(
        long,
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:8470",
        global = true
    )]
    server: String,
    /// API key (a tenant's, or the admin key).
    #[arg(long, env = "HERALD_API_KEY", global = true, hide_env_values = true)]
    key: Option<String>,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
    /// A JSON envelope, a JSON array of envelopes, or JSON lines (one envelope a line); `-` reads
    /// standard input.
    #[arg(value_name = "FILE|-")]
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[arg(long)]
    pub(crate) tenant: String,
}

pub(crate) struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
    runtime: tokio::runtime::Runtime,
}

impl Api {
    pub(crate) fn new(connection: &Connection) -> anyhow::Result<Self> {
        herald::install_tls_provider();
        let key = connection
            .key
            .clone()
            .context("an API key is needed: pass --key or set HERALD_API_KEY")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(Api {
            client: reqwest::Client::builder().build()?,
            base: connection.server.trim_end_matches('/').to_owned(),
            key,
            runtime,
        })
    }

    /// The server's base URL, without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// Sends a request; a problem+json answer becomes an error naming each problem and its path.
    pub(crate) fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        self.runtime.block_on(async {
            let mut request = self
                .client
                .request(method, format!("{}{path}", self.base))
                .bearer_auth(&self.key);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body.to_string());
            }
            let response = request
                .send()
                .await
                .with_context(|| format!("failed to reach {}", self.base))?;
            let status = response.status();
            let text = response.text().await.context("failed to read the answer")?;
            let value: Value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or(Value::String(text))
            };
            if status.is_success() {
                return Ok(value);
            }
            let mut message = format!(
                "{} {}",
                status.as_u16(),
                value["detail"]
                    .as_str()
                    .unwrap_or(status.canonical_reason().unwrap_or(""))
            );
            for problem in value["errors"].as_array().into_iter().flatten() {
                let path = problem["path"]
                    .as_str()
                    .filter(|path| !path.is_empty())
                    .unwrap_or("/");
                message.push_str(&format!(
                    "\n  {path}: {}",
                    problem["message"].as_str().unwrap_or_default()
                ));
            }
            bail!(message)
        })
    }
}

/// Adds the options the user gave to a request body; the server's defaults cover the rest.
pub(crate) fn set_present<const N: usize>(body: &mut Value, options: [(&str, &Option<String>); N]) {
    for (name, value) in options {
        if let Some(value) = value {
            body[name] = json!(value);
        }
    }
}

pub(crate) fn print_json(value: &Value) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Reads the events of a file: one JSON document (an envelope or an array), or JSON lines.
pub(crate) fn read_events(file: &PathBuf) -> anyhow::Result<Vec<Value>> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("failed to read standard input")?;
    } else {
        text = std::fs::read_to_string(file)
            .with_context(|| format!("failed to read {}", file.display()))?;
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Array(events)) => Ok(events),
        Ok(event) => Ok(vec![event]),
        Err(whole_error) => {
            let mut events = Vec::new();
            for (index, line) in std::io::Cursor::new(&text).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                let event = serde_json::from_str(&line).map_err(|error| {
                    anyhow::anyhow!(
                        "{}:{}:{}: malformed JSON: {error}",
                        file.display(),
                        index + 1,
                        error.column()
                    )
                });
                match event {
                    Ok(event) => events.push(event),
                    // Not JSON lines either: report the error as a single document.
                    Err(_) if index == 0 => bail!(
                        "{}:{}:{}: malformed JSON: {whole_error}",
                        file.display(),
                        whole_error.line(),
                        whole_error.column()
                    ),
                    Err(error) => return Err(error),
                }
            }
            Ok(events)
        }
    }
}

pub fn publish(args: &PublishArgs) -> anyhow::Result<ExitCode> {
    let events = read_events(&args.file)?;
    let api = Api::new(&args.connection)?;
    let path = format!("/v1/tenants/{}", args.tenant);
    if let [event] = events.as_slice() {
        let published = api.call(
            reqwest::Method::POST,
            &format!("{path}/events"),
            Some(event),
        )?;
        print_json(&published)?;
        return Ok(ExitCode::SUCCESS);
    }
    let total = events.len();
    let mut n_done = 0;
    let mut n_duplicates = 0;
    for chunk in events.chunks(1000) {
        let answer = api
            .call(
                reqwest::Method::POST,
                &format!("{path}/events:batch"),
                Some(&json!({"events": chunk})),
            )
            .with_context(|| {
                format!(
                    "events {}..{} were refused (the ones before were published)",
                    n_done + 1,
                    n_done + chunk.len()
                )
            })?;
        n_duplicates += answer["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| item["duplicate"] == true)
            .count();
        n_done += chunk.len();
        eprintln!("published {n_done}/{total}");
    }
    println!("{total} events published ({n_duplicates} were already in the log)");
    Ok(ExitCode::SUCCESS)
}
