//! The commands that talk to a running Herald over its REST API: publish, endpoints,
//! deliveries, replay.

use std::io::{BufRead, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
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
pub struct TenantArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    tenant: String,
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
fn set_present<const N: usize>(body: &mut Value, options: [(&str, &Option<String>); N]) {
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
fn read_events(file: &PathBuf) -> anyhow::Result<Vec<Value>> {
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
