//! `herald bench`: runs a Herald server as a child process, a loopback receiver and a load
//! generator, and reports publish and delivery rates, end-to-end latency, duplicates, errors and
//! the server's peak memory and CPU time. Everything is bounded in count and time and stays on
//! loopback. `backlog` instead queues deliveries behind a paused endpoint, then resumes it and
//! measures how fast the queue drains and how much memory the server needs meanwhile.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::commands::bench_callgrind;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    scenario: Scenario,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Concurrent publishers.
    #[arg(long, global = true, default_value_t = 64)]
    concurrency: usize,
    /// Stop waiting for deliveries after this many seconds.
    #[arg(long, global = true, default_value_t = 300)]
    max_seconds: u64,
    /// Run on PostgreSQL: a server URL such as postgres://postgres@127.0.0.1:5432; a fresh
    /// database is created for the run and dropped after it. SQLite in a temporary file otherwise.
    #[arg(long, global = true)]
    postgres: Option<String>,
    /// Herald processes sharing the database (PostgreSQL only); publishers spread over them.
    #[arg(long, global = true, default_value_t = 1)]
    nodes: usize,
    /// Delivered deliveries (one event and one attempt each) written into the store before the
    /// run, spread over the busy endpoints, as months of traffic would leave them.
    #[arg(long, global = true, default_value_t = 0)]
    history: usize,
    /// Enabled endpoints that get no traffic, beside the busy ones: spread over ten other tenants,
    /// each subscribed to a type nobody publishes.
    #[arg(long, global = true, default_value_t = 0)]
    idle_endpoints: usize,
    /// Run each server under `valgrind --tool=callgrind`, its profiles written to this directory,
    /// and report the instructions it executed from the first publish to the last delivery.
    #[arg(long, global = true)]
    callgrind: Option<std::path::PathBuf>,
}

/// The servers under test, and the PostgreSQL database made for them.
struct Cluster {
    nodes: Vec<ServerProcess>,
    /// The SQLite file or PostgreSQL URL every node serves.
    database: std::ffi::OsString,
    /// Where callgrind profiles go, when the nodes run under it.
    callgrind: Option<std::path::PathBuf>,
    postgres: Option<(String, String)>,
    _directory: tempfile::TempDir,
}

impl Cluster {
    async fn start(args: &BenchArgs, admin_key: &str) -> anyhow::Result<Self> {
        let directory = tempfile::tempdir()?;
        let Some(server_url) = &args.postgres else {
            if args.nodes != 1 {
                bail!("--nodes needs --postgres: one SQLite file belongs to one process");
            }
            let database = directory.path().join("bench.db");
            let node =
                ServerProcess::start(database.as_os_str(), admin_key, args.callgrind.as_deref())?;
            return Ok(Cluster {
                nodes: vec![node],
                database: database.into_os_string(),
                callgrind: args.callgrind.clone(),
                postgres: None,
                _directory: directory,
            });
        };
        let name = format!("herald_bench_{}", now_us());
        let (client, connection) = tokio_postgres::connect(server_url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("failed to connect to {server_url}"))?;
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        let mut url = url::Url::parse(server_url).context("--postgres is not a URL")?;
        url.set_path(&format!("/{name}"));
        let database_url = url.to_string();
        // One node first, so the schema is created once before the others connect.
        let mut nodes = vec![ServerProcess::start(
            std::ffi::OsStr::new(&database_url),
            admin_key,
            args.callgrind.as_deref(),
        )?];
        for _ in 1..args.nodes.max(1) {
            nodes.push(ServerProcess::start(
                std::ffi::OsStr::new(&database_url),
                admin_key,
                args.callgrind.as_deref(),
            )?);
        }
        Ok(Cluster {
            nodes,
            database: database_url.into(),
            callgrind: args.callgrind.clone(),
            postgres: Some((server_url.clone(), name)),
            _directory: directory,
        })
    }

    /// Stops every node, runs `work` on the database while nothing serves it (a SQLite file
    /// belongs to one process), and starts the same number of nodes again.
    async fn with_nodes_stopped<F: std::future::Future<Output = anyhow::Result<()>>>(
        &mut self,
        admin_key: &str,
        work: impl FnOnce(std::ffi::OsString) -> F,
    ) -> anyhow::Result<()> {
        let n_nodes = self.nodes.len();
        self.nodes.clear();
        work(self.database.clone()).await?;
        for _ in 0..n_nodes {
            self.nodes.push(ServerProcess::start(
                &self.database,
                admin_key,
                self.callgrind.as_deref(),
            )?);
        }
        Ok(())
    }

    fn bases(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("http://{}", node.address))
            .collect()
    }

    /// The largest current RSS of any node (MiB).
    fn current_rss(&self) -> Option<f64> {
        self.nodes
            .iter()
            .filter_map(ServerProcess::current_rss)
            .reduce(f64::max)
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|node| node.child.id()).collect()
    }

    /// The largest peak RSS of any node, and the CPU time of all of them.
    fn usage(&self) -> (Option<f64>, Option<f64>) {
        let usages: Vec<_> = self.nodes.iter().map(ServerProcess::usage).collect();
        let peak = usages.iter().filter_map(|(rss, _)| *rss).reduce(f64::max);
        let cpu = usages.iter().map(|(_, cpu)| *cpu).sum::<Option<f64>>();
        (peak, cpu)
    }

    async fn stop(mut self) {
        self.nodes.clear();
        if let Some((server_url, name)) = self.postgres.take()
            && let Ok((client, connection)) =
                tokio_postgres::connect(&server_url, tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            if let Err(error) = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
            {
                eprintln!("could not drop the benchmark database {name}: {error}");
            }
        }
    }
}

#[derive(Debug, Clone, Subcommand)]
enum Scenario {
    /// Publish as fast as the publishers can to one endpoint; measure what gets through.
    Saturation {
        #[arg(long, default_value_t = 20_000)]
        events: usize,
    },
    /// Publish to K endpoints at once.
    Fanout {
        #[arg(long, default_value_t = 5_000)]
        events: usize,
        #[arg(long, default_value_t = 10)]
        endpoints: usize,
    },
    /// Evaluate blocking events through a chain of three hooks that answer at once, and measure
    /// the time Herald adds around the hooks' own.
    Hooks {
        #[arg(long, default_value_t = 10_000)]
        evaluations: usize,
    },
    /// Publish at a fixed rate and measure latency.
    Steady {
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Queue N deliveries behind a paused endpoint (published in batches), then resume it and
    /// measure the drain and the server's memory while it holds the backlog.
    Backlog {
        /// Deliveries to queue up.
        #[arg(long, default_value_t = 1_000_000)]
        pending: usize,
        /// Events per `events:batch` request (at most 1000, the server's limit).
        #[arg(long, default_value_t = 200)]
        batch: usize,
    },
}

/// What the receiver saw.
#[derive(Debug, Default)]
struct Arrivals {
    latencies_us: Vec<u64>,
    seen: HashMap<(usize, u64), u32>,
    last_arrival: Option<Instant>,
}

#[derive(Clone)]
struct ReceiverState {
    arrivals: Arc<Mutex<Arrivals>>,
    progress: Arc<Notify>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() as u64)
        .unwrap_or(0)
}

async fn receive(
    State(state): State<ReceiverState>,
    axum::extract::Path(endpoint_index): axum::extract::Path<usize>,
    body: Bytes,
) -> StatusCode {
    let arrived_us = now_us();
    let Ok(event) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    let payload = &event["payload"];
    let (Some(sent_us), Some(number)) = (payload["sent_us"].as_u64(), payload["n"].as_u64()) else {
        return StatusCode::BAD_REQUEST;
    };
    if let Ok(mut arrivals) = state.arrivals.lock() {
        arrivals
            .latencies_us
            .push(arrived_us.saturating_sub(sent_us));
        *arrivals.seen.entry((endpoint_index, number)).or_default() += 1;
        arrivals.last_arrival = Some(Instant::now());
    }
    state.progress.notify_one();
    StatusCode::NO_CONTENT
}

/// The server under test, killed when dropped.
struct ServerProcess {
    child: Child,
    address: SocketAddr,
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProcess {
    fn start(
        database: &std::ffi::OsStr,
        admin_key: &str,
        callgrind: Option<&std::path::Path>,
    ) -> anyhow::Result<Self> {
        let herald = std::env::current_exe()?;
        let mut command = match callgrind {
            Some(directory) => {
                let (program, arguments) = bench_callgrind::wrapper(directory);
                let mut command = Command::new(program);
                command.args(arguments).arg(&herald);
                command
            }
            None => Command::new(&herald),
        };
        let mut child = command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--allow-network",
                "127.0.0.0/8",
                "--db",
            ])
            .arg(database)
            .env("HERALD_ADMIN_KEY", admin_key)
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("failed to start herald serve")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let address = loop {
            let Some(line) = lines.next().transpose()? else {
                bail!("herald serve exited before listening")
            };
            if let Some(rest) = line.strip_prefix("Herald listening on http://") {
                break rest.trim().parse()?;
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.map_while(Result::ok) {});
        Ok(ServerProcess { child, address })
    }

    /// Resident memory (MiB) of the server now, from /proc.
    fn current_rss(&self) -> Option<f64> {
        status_mib(self.child.id(), "VmRSS:")
    }

    /// Peak resident memory (MiB) and CPU seconds of the server so far, from /proc.
    fn usage(&self) -> (Option<f64>, Option<f64>) {
        let pid = self.child.id();
        let peak_rss_mib = status_mib(pid, "VmHWM:");
        let cpu_seconds = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks: f64 =
                    fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
                Some(ticks / 100.0)
            });
        (peak_rss_mib, cpu_seconds)
    }
}

/// A memory line of `/proc/PID/status` (`VmRSS:`, `VmHWM:`, in kB there), in MiB; `None` once
/// the process is gone or where there is no /proc.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// POSTs JSON to the server under test; anything but 2xx is an error carrying the answer.
async fn post_json(
    client: &reqwest::Client,
    url: String,
    key: String,
    body: Value,
) -> anyhow::Result<Value> {
    send_json(client, reqwest::Method::POST, url, key, body).await
}

/// Sends JSON with `method`; anything but 2xx is an error carrying the answer.
async fn send_json(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: String,
    body: Value,
) -> anyhow::Result<Value> {
    let response = client
        .request(method, url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("{status}: {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn percentile(sorted: &[u64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)] as f64 / 1000.0
}

pub fn run(args: &BenchArgs) -> anyhow::Result<ExitCode> {
    herald::install_tls_provider();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(run_scenario(args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(ExitCode::SUCCESS)
}

async fn run_scenario(args: &BenchArgs) -> anyhow::Result<Value> {
    let (name, n_events, n_endpoints, rate) = match &args.scenario {
        Scenario::Saturation { events } => ("saturation", *events, 1, None),
        Scenario::Fanout { events, endpoints } => ("fanout", *events, (*endpoints).max(1), None),
        Scenario::Steady { rate, seconds } => (
            "steady",
            (u64::from(*rate) * seconds) as usize,
            1,
            Some(*rate),
        ),
        Scenario::Hooks { evaluations } => return run_hooks(args, *evaluations).await,
        Scenario::Backlog { pending, batch } => {
            return run_backlog(args, *pending, *batch).await;
        }
    };
    let admin_key = format!("bench-admin-{}", now_us());
    let mut cluster = Cluster::start(args, &admin_key).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let (state, receiver_address) = start_receiver().await?;
    let first_base = cluster.bases()[0].clone();
    let key = bench_tenant(&client, &first_base, &admin_key).await?;
    let mut endpoint_ids = Vec::new();
    for index in 0..n_endpoints {
        let created = post_json(&client, format!("{first_base}/v1/tenants/bench/endpoints"), key.clone(), json!({"url": format!("http://{receiver_address}/hook/{index}"), "filters": ["bench.*"], "max_concurrency": 64})).await?;
        endpoint_ids.push(
            created["id"]
                .as_str()
                .context("an endpoint without id")?
                .to_owned(),
        );
    }
    if args.idle_endpoints > 0 {
        eprintln!("{name}: creating {} idle endpoints...", args.idle_endpoints);
        create_idle_endpoints(
            &client,
            &first_base,
            &admin_key,
            receiver_address,
            args.idle_endpoints,
        )
        .await?;
    }
    if args.history > 0 {
        eprintln!(
            "{name}: writing {} delivered deliveries of history...",
            args.history
        );
        let (history, ids) = (args.history, endpoint_ids.clone());
        cluster
            .with_nodes_stopped(&admin_key, |database| fill_history(database, ids, history))
            .await?;
    }
    let bases = cluster.bases();
    if cluster.callgrind.is_some() {
        for pid in cluster.pids() {
            bench_callgrind::zero(pid)?;
        }
    }

    eprintln!(
        "{name}: publishing {n_events} events to {n_endpoints} endpoint(s) with {} publishers...",
        args.concurrency
    );
    let started = Instant::now();
    let next_number = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut publishers = tokio::task::JoinSet::new();
    for publisher_index in 0..args.concurrency {
        let base = bases[publisher_index % bases.len()].clone();
        let (client, key) = (client.clone(), key.clone());
        let (next_number, errors) = (Arc::clone(&next_number), Arc::clone(&errors));
        publishers.spawn(async move {
            loop {
                let number = next_number.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if number >= n_events {
                    return;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(number as f64 / f64::from(rate));
                    tokio::time::sleep_until(due.into()).await;
                }
                let body = json!({"type": "bench.ping", "payload": {"n": number, "sent_us": now_us(), "pad": "identity-event-benchmark-payload"}});
                let sent = client.post(format!("{base}/v1/tenants/bench/events")).bearer_auth(&key).header("content-type", "application/json").body(body.to_string()).send().await;
                if !matches!(&sent, Ok(response) if response.status() == StatusCode::ACCEPTED) {
                    errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    while publishers.join_next().await.is_some() {}
    let publish_seconds = started.elapsed().as_secs_f64();
    let n_errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    let expected = (n_events - n_errors) * n_endpoints;
    let deadline = started + Duration::from_secs(args.max_seconds);
    loop {
        let received = state
            .arrivals
            .lock()
            .map(|arrivals| arrivals.seen.len())
            .unwrap_or(0);
        if received >= expected || Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), state.progress.notified()).await;
    }
    let (peak_rss_mib, cpu_seconds) = cluster.usage();
    let instructions = match &cluster.callgrind {
        Some(directory) => Some(
            cluster
                .pids()
                .into_iter()
                .map(|pid| bench_callgrind::dump_instructions(directory, pid))
                .sum::<anyhow::Result<u64>>()?,
        ),
        None => None,
    };
    cluster.stop().await;
    let arrivals = state
        .arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
    let delivered_unique = arrivals.seen.len();
    let duplicates: u32 = arrivals.seen.values().map(|count| count - 1).sum();
    let delivery_seconds = arrivals
        .last_arrival
        .map_or(f64::NAN, |last| (last - started).as_secs_f64());
    let mut latencies = arrivals.latencies_us.clone();
    latencies.sort_unstable();
    Ok(json!({
        "scenario": name,
        "backend": if args.postgres.is_some() { "postgres" } else { "sqlite" },
        "nodes": bases.len(),
        "events": n_events,
        "endpoints": n_endpoints,
        "idle_endpoints": args.idle_endpoints,
        "history_deliveries": args.history,
        "publishers": args.concurrency,
        "publish_errors": n_errors,
        "publish_rate_per_s": (n_events - n_errors) as f64 / publish_seconds,
        "deliveries": delivered_unique,
        "deliveries_missing": expected.saturating_sub(delivered_unique),
        "duplicates": duplicates,
        "delivery_rate_per_s": delivered_unique as f64 / delivery_seconds,
        "latency_ms": {"p50": percentile(&latencies, 0.50), "p90": percentile(&latencies, 0.90), "p99": percentile(&latencies, 0.99), "max": percentile(&latencies, 1.0)},
        "server_peak_rss_mib": peak_rss_mib,
        "server_cpu_seconds": cpu_seconds,
        "server_instructions": instructions,
        "instructions_per_delivery": instructions.map(|count| count as f64 / delivered_unique.max(1) as f64),
        "wall_seconds": delivery_seconds,
    }))
}

/// Writes `n_deliveries` of delivered history for the `bench` tenant's endpoints straight into
/// the store (see `herald_store_sqlite::history`).
async fn fill_history(
    database: std::ffi::OsString,
    endpoint_ids: Vec<String>,
    n_deliveries: usize,
) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let started = Instant::now();
    let database = database.to_string_lossy().into_owned();
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        herald_store_postgres::history::fill_delivered_history(
            &database,
            "bench",
            &endpoint_ids,
            n_deliveries,
            now,
        )
        .await?;
    } else {
        tokio::task::spawn_blocking(move || {
            herald_store_sqlite::history::fill_delivered_history(
                std::path::Path::new(&database),
                "bench",
                &endpoint_ids,
                n_deliveries,
                now,
            )
        })
        .await??;
    }
    eprintln!(
        "history written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Tenants the idle endpoints are spread over.
const IDLE_TENANTS: usize = 10;

/// Creates `n_endpoints` enabled endpoints over [`IDLE_TENANTS`] tenants, each subscribed to a
/// custom type nobody publishes: what a multi-tenant deployment's quiet majority looks like.
async fn create_idle_endpoints(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
    receiver_address: SocketAddr,
    n_endpoints: usize,
) -> anyhow::Result<()> {
    let mut keys = Vec::new();
    for tenant in 0..IDLE_TENANTS {
        let tenant_id = format!("idle-{tenant}");
        post_json(
            client,
            format!("{base}/v1/tenants"),
            admin_key.to_owned(),
            json!({"id": tenant_id, "name": "Idle"}),
        )
        .await?;
        let key = post_json(
            client,
            format!("{base}/v1/tenants/{tenant_id}/api-keys"),
            admin_key.to_owned(),
            json!({}),
        )
        .await?["key"]
            .as_str()
            .context("no key")?
            .to_owned();
        post_json(client, format!("{base}/v1/tenants/{tenant_id}/catalog"), key.clone(), json!({
            "type": "idle.never", "description": "A type nobody publishes.", "schema": {"type": "object"},
        })).await?;
        keys.push((tenant_id, key));
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, base, keys, next) = (
            client.clone(),
            base.to_owned(),
            keys.clone(),
            Arc::clone(&next),
        );
        creators.spawn(async move {
            loop {
                let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if index >= n_endpoints {
                    return anyhow::Ok(());
                }
                let (tenant_id, key) = &keys[index % keys.len()];
                post_json(&client, format!("{base}/v1/tenants/{tenant_id}/endpoints"), key.clone(), json!({"url": format!("http://{receiver_address}/idle/{index}"), "filters": ["idle.never"]})).await?;
            }
        });
    }
    while let Some(created) = creators.join_next().await {
        created??;
    }
    Ok(())
}

/// The loopback receiver the delivery scenarios send to, at `/hook/{endpoint index}`.
async fn start_receiver() -> anyhow::Result<(ReceiverState, SocketAddr)> {
    let state = ReceiverState {
        arrivals: Arc::new(Mutex::new(Arrivals::default())),
        progress: Arc::new(Notify::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let receiver = axum::Router::new()
        .route("/hook/{endpoint}", axum::routing::post(receive))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });
    Ok((state, address))
}

/// Creates the `bench` tenant, a key for it and the `bench.ping` custom type; returns the key.
async fn bench_tenant(
    client: &reqwest::Client,
    base: &str,
    admin_key: &str,
) -> anyhow::Result<String> {
    let call = |path: &str, key: &str, body: Value| {
        post_json(client, format!("{base}{path}"), key.to_owned(), body)
    };
    call(
        "/v1/tenants",
        admin_key,
        json!({"id": "bench", "name": "Benchmark"}),
    )
    .await?;
    let key = call("/v1/tenants/bench/api-keys", admin_key, json!({})).await?["key"]
        .as_str()
        .context("no key")?
        .to_owned();
    call("/v1/tenants/bench/catalog", &key, json!({
        "type": "bench.ping", "description": "A benchmark event carrying its send time.",
        "schema": {"type": "object", "properties": {"n": {"type": "integer"}, "sent_us": {"type": "integer"}}, "required": ["n", "sent_us"]},
    })).await?;
    Ok(key)
}

/// How many unique deliveries the receiver has seen.
fn n_received(state: &ReceiverState) -> usize {
    state
        .arrivals
        .lock()
        .map(|arrivals| arrivals.seen.len())
        .unwrap_or(0)
}

/// The servers' RSS, sampled every 500 ms in the background: the largest node's value each time.
struct RssSampler {
    samples: Arc<Mutex<Vec<(Instant, f64)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let recorded = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(Duration::from_millis(500));
            loop {
                ticks.tick().await;
                let rss = pids
                    .iter()
                    .filter_map(|pid| status_mib(*pid, "VmRSS:"))
                    .reduce(f64::max);
                if let (Some(rss), Ok(mut samples)) = (rss, recorded.lock()) {
                    samples.push((Instant::now(), rss));
                }
            }
        });
        RssSampler { samples, task }
    }

    /// The largest sample taken at or after `since`.
    fn max_since(&self, since: Instant) -> Option<f64> {
        let samples = self.samples.lock().ok()?;
        samples
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(_, rss)| *rss)
            .reduce(f64::max)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fills a paused endpoint's queue with `n_pending` deliveries, published in batches by
/// `--concurrency` publishers, then resumes the endpoint and waits for the queue to drain. The
/// drain is timed from the resuming PATCH to the last arrival. Latency percentiles would only
/// measure how long events waited behind the pause, so there are none.
async fn run_backlog(args: &BenchArgs, n_pending: usize, batch: usize) -> anyhow::Result<Value> {
    if n_pending == 0 {
        bail!("--pending must be at least 1");
    }
    if !(1..=1_000).contains(&batch) {
        bail!("--batch must be between 1 and 1000 (the server's batch limit)");
    }
    let admin_key = format!("bench-admin-{}", now_us());
    let cluster = Cluster::start(args, &admin_key).await?;
    let bases = cluster.bases();
    let base = bases[0].clone();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let (state, receiver_address) = start_receiver().await?;
    let key = bench_tenant(&client, &base, &admin_key).await?;
    let endpoint = post_json(&client, format!("{base}/v1/tenants/bench/endpoints"), key.clone(), json!({"url": format!("http://{receiver_address}/hook/0"), "filters": ["bench.*"], "max_concurrency": 64, "paused": true})).await?;
    let endpoint_id = endpoint["id"]
        .as_str()
        .context("no endpoint id")?
        .to_owned();
    let sampler = RssSampler::start(cluster.pids());

    eprintln!(
        "backlog: queueing {n_pending} deliveries behind a paused endpoint, {batch} events a batch, {} publishers...",
        args.concurrency
    );
    let rss_before_fill = cluster.current_rss();
    let fill_started = Instant::now();
    let n_batches = n_pending.div_ceil(batch);
    let next_batch = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n_published = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut publishers = tokio::task::JoinSet::new();
    for publisher_index in 0..args.concurrency.max(1) {
        let base = bases[publisher_index % bases.len()].clone();
        let (client, key) = (client.clone(), key.clone());
        let (next_batch, n_published, errors) = (
            Arc::clone(&next_batch),
            Arc::clone(&n_published),
            Arc::clone(&errors),
        );
        publishers.spawn(async move {
            loop {
                let batch_index = next_batch.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if batch_index >= n_batches {
                    return;
                }
                let numbers = batch_index * batch..((batch_index + 1) * batch).min(n_pending);
                let n_events = numbers.len();
                let events: Vec<Value> = numbers
                    .map(|number| json!({"type": "bench.ping", "payload": {"n": number, "sent_us": now_us(), "pad": "identity-event-benchmark-payload"}}))
                    .collect();
                let sent = client
                    .post(format!("{base}/v1/tenants/bench/events:batch"))
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(json!({"events": events}).to_string())
                    .send()
                    .await;
                if !matches!(&sent, Ok(response) if response.status() == StatusCode::ACCEPTED) {
                    errors.fetch_add(n_events, std::sync::atomic::Ordering::Relaxed);
                }
                let before = n_published.fetch_add(n_events, std::sync::atomic::Ordering::Relaxed);
                let after = before + n_events;
                // A line each time another tenth is done.
                if before * 10 / n_pending != after * 10 / n_pending {
                    let seconds = fill_started.elapsed().as_secs_f64();
                    eprintln!(
                        "  {after}/{n_pending} published, {:.0} events/s",
                        after as f64 / seconds
                    );
                }
            }
        });
    }
    while publishers.join_next().await.is_some() {}
    let fill_seconds = fill_started.elapsed().as_secs_f64();
    let rss_after_fill = cluster.current_rss();
    let n_errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    let expected = n_pending - n_errors;
    let delivered_while_paused = n_received(&state);
    eprintln!(
        "backlog: {expected} queued in {fill_seconds:.1} s; resuming the endpoint and draining..."
    );

    let (_, cpu_before_drain) = cluster.usage();
    let drain_started = Instant::now();
    send_json(
        &client,
        reqwest::Method::PATCH,
        format!("{base}/v1/tenants/bench/endpoints/{endpoint_id}"),
        key.clone(),
        json!({"paused": false}),
    )
    .await?;
    let deadline = drain_started + Duration::from_secs(args.max_seconds);
    // A line each time another tenth has arrived.
    let step = expected.div_ceil(10).max(1);
    let mut next_report = step;
    loop {
        let received = n_received(&state);
        if received >= next_report {
            let seconds = drain_started.elapsed().as_secs_f64();
            eprintln!(
                "  {received}/{expected} delivered, {:.0} /s",
                received as f64 / seconds
            );
            next_report = (received / step + 1) * step;
        }
        if received >= expected || Instant::now() >= deadline {
            break;
        }
        let _ = tokio::time::timeout(Duration::from_millis(500), state.progress.notified()).await;
    }
    let rss_drain_max = sampler
        .max_since(drain_started)
        .into_iter()
        .chain(cluster.current_rss())
        .reduce(f64::max);
    drop(sampler);
    let (peak_rss_mib, cpu_seconds) = cluster.usage();
    cluster.stop().await;
    let arrivals = state
        .arrivals
        .lock()
        .map_err(|_| anyhow::anyhow!("receiver state poisoned"))?;
    let delivered_unique = arrivals.seen.len();
    let duplicates: u32 = arrivals.seen.values().map(|count| count - 1).sum();
    let drain_seconds = arrivals
        .last_arrival
        .filter(|last| *last >= drain_started)
        .map_or(f64::NAN, |last| (last - drain_started).as_secs_f64());
    Ok(json!({
        "scenario": "backlog",
        "backend": if args.postgres.is_some() { "postgres" } else { "sqlite" },
        "nodes": bases.len(),
        "pending": n_pending,
        "batch": batch,
        "publishers": args.concurrency,
        "publish_errors": n_errors,
        "fill_seconds": fill_seconds,
        "fill_rate_per_s": expected as f64 / fill_seconds,
        "delivered_while_paused": delivered_while_paused,
        "drain_seconds": drain_seconds,
        "drain_rate_per_s": delivered_unique as f64 / drain_seconds,
        "deliveries": delivered_unique,
        "deliveries_missing": expected.saturating_sub(delivered_unique),
        "duplicates": duplicates,
        "rss_mib": {"before_fill": rss_before_fill, "after_fill": rss_after_fill, "drain_max": rss_drain_max},
        "server_peak_rss_mib": peak_rss_mib,
        "server_cpu_seconds": cpu_seconds,
        "drain_cpu_seconds": cpu_seconds.zip(cpu_before_drain).map(|(total, before)| total - before),
    }))
}

/// Three hooks that allow at once, one evaluation at a time: per evaluation, the caller's round
/// trip and the sum of the hooks' exchanges as Herald timed them; the difference is Herald's own
/// overhead (the caller's HTTP hop to Herald included).
async fn run_hooks(args: &BenchArgs, n_evaluations: usize) -> anyhow::Result<Value> {
    let admin_key = format!("bench-admin-{}", now_us());
    let cluster = Cluster::start(args, &admin_key).await?;
    let base = cluster.bases()[0].clone();
    let client = reqwest::Client::builder().build()?;
    let post = |path: String, key: String, body: Value| {
        post_json(&client, format!("{base}{path}"), key, body)
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_address = listener.local_addr()?;
    let hook_server =
        axum::Router::new().fallback(|| async { axum::Json(json!({"is_allowed": true})) });
    tokio::spawn(async move {
        let _ = axum::serve(listener, hook_server).await;
    });
    post(
        "/v1/tenants".into(),
        admin_key.clone(),
        json!({"id": "bench", "name": "Benchmark"}),
    )
    .await?;
    let key = post(
        "/v1/tenants/bench/api-keys".into(),
        admin_key.clone(),
        json!({}),
    )
    .await?["key"]
        .as_str()
        .context("no key")?
        .to_owned();
    for position in 1..=3 {
        post("/v1/tenants/bench/hooks".into(), key.clone(), json!({"event_type": "user.pre_create", "url": format!("http://{hook_address}/hook/{position}"), "position": position})).await?;
    }
    let event = json!({"id": "bench", "type": "user.pre_create", "payload": {"user": {"id": "u1", "standard_attributes": {"email": "ada@example.com"}}, "identities": []}, "context": {"timestamp": 1_764_000_000, "triggered_by": "user"}});
    eprintln!("hooks: {n_evaluations} evaluations through 3 instant hooks...");
    let mut round_trips_us = Vec::with_capacity(n_evaluations);
    let mut overheads_us = Vec::with_capacity(n_evaluations);
    let mut hooks_us = Vec::with_capacity(n_evaluations);
    let mut n_refused = 0usize;
    let started = Instant::now();
    for index in 0..n_evaluations {
        let sent = Instant::now();
        let decision = post(
            "/v1/tenants/bench/blocking-events".into(),
            key.clone(),
            event.clone(),
        )
        .await?;
        let round_trip_us = sent.elapsed().as_micros() as u64;
        if decision["is_allowed"] != true {
            n_refused += 1;
        }
        let hook_time_us: f64 = decision["trace"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry["latency_ms"].as_f64())
            .sum::<f64>()
            * 1000.0;
        round_trips_us.push(round_trip_us);
        hooks_us.push(hook_time_us as u64);
        overheads_us.push(round_trip_us.saturating_sub(hook_time_us as u64));
        if (index + 1) % 2_000 == 0 {
            eprintln!("  {}/{n_evaluations}", index + 1);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (peak_rss_mib, cpu_seconds) = cluster.usage();
    cluster.stop().await;
    for values in [&mut round_trips_us, &mut overheads_us, &mut hooks_us] {
        values.sort_unstable();
    }
    let summary = |values: &[u64]| json!({"p50": percentile(values, 0.5), "p90": percentile(values, 0.9), "p99": percentile(values, 0.99), "max": percentile(values, 1.0)});
    Ok(json!({
        "scenario": "hooks",
        "backend": if args.postgres.is_some() { "postgres" } else { "sqlite" },
        "evaluations": n_evaluations,
        "hooks_per_chain": 3,
        "refused": n_refused,
        "evaluations_per_s": n_evaluations as f64 / seconds,
        "round_trip_ms": summary(&round_trips_us),
        "hooks_time_ms": summary(&hooks_us),
        "herald_overhead_ms": summary(&overheads_us),
        "server_peak_rss_mib": peak_rss_mib,
        "server_cpu_seconds": cpu_seconds,
    }))
}

fn print_table(report: &Value) {
    if report["scenario"] == "backlog" {
        print_backlog_table(report);
        return;
    }
    if report["scenario"] == "hooks" {
        let number = |value: &Value| {
            value
                .as_f64()
                .map_or("-".to_owned(), |number| format!("{number:.3}"))
        };
        let line = |label: &str, value: &Value| {
            println!(
                "{label:<20}p50 {}  p90 {}  p99 {}  max {}",
                number(&value["p50"]),
                number(&value["p90"]),
                number(&value["p99"]),
                number(&value["max"])
            )
        };
        println!(
            "scenario            hooks ({} evaluations, 3 hooks, {} refused)",
            report["evaluations"], report["refused"]
        );
        line("round trip ms", &report["round_trip_ms"]);
        line("hooks' own ms", &report["hooks_time_ms"]);
        line("Herald overhead ms", &report["herald_overhead_ms"]);
        println!(
            "server              peak RSS {} MiB, CPU {} s",
            number(&report["server_peak_rss_mib"]),
            number(&report["server_cpu_seconds"])
        );
        return;
    }
    let number = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_owned(), |number| format!("{number:.1}"))
    };
    println!(
        "scenario            {} ({}, {} node(s))",
        report["scenario"].as_str().unwrap_or_default(),
        report["backend"].as_str().unwrap_or_default(),
        report["nodes"]
    );
    println!(
        "events x endpoints  {} x {}  ({} publishers)",
        report["events"], report["endpoints"], report["publishers"]
    );
    println!(
        "store before run    {} delivered deliveries, {} idle endpoints",
        report["history_deliveries"], report["idle_endpoints"]
    );
    println!(
        "publish rate        {} /s  ({} errors)",
        number(&report["publish_rate_per_s"]),
        report["publish_errors"]
    );
    println!(
        "delivery rate       {} /s  ({} delivered, {} missing, {} duplicates)",
        number(&report["delivery_rate_per_s"]),
        report["deliveries"],
        report["deliveries_missing"],
        report["duplicates"]
    );
    let latency = &report["latency_ms"];
    println!(
        "latency ms          p50 {}  p90 {}  p99 {}  max {}",
        number(&latency["p50"]),
        number(&latency["p90"]),
        number(&latency["p99"]),
        number(&latency["max"])
    );
    println!(
        "server              peak RSS {} MiB, CPU {} s",
        number(&report["server_peak_rss_mib"]),
        number(&report["server_cpu_seconds"])
    );
    if let Some(instructions) = report["server_instructions"].as_u64() {
        println!(
            "callgrind           {instructions} instructions, {} per delivery",
            number(&report["instructions_per_delivery"])
        );
    }
}

fn print_backlog_table(report: &Value) {
    let number = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_owned(), |number| format!("{number:.1}"))
    };
    println!(
        "scenario            backlog ({}, {} node(s))",
        report["backend"].as_str().unwrap_or_default(),
        report["nodes"]
    );
    println!(
        "pending             {}  ({} a batch, {} publishers, {} errors)",
        report["pending"], report["batch"], report["publishers"], report["publish_errors"]
    );
    println!(
        "fill                {} events/s  ({} s; {} delivered while paused)",
        number(&report["fill_rate_per_s"]),
        number(&report["fill_seconds"]),
        report["delivered_while_paused"]
    );
    println!(
        "drain               {} /s  ({} s; {} delivered, {} missing, {} duplicates)",
        number(&report["drain_rate_per_s"]),
        number(&report["drain_seconds"]),
        report["deliveries"],
        report["deliveries_missing"],
        report["duplicates"]
    );
    let rss = &report["rss_mib"];
    println!(
        "server RSS MiB      before fill {}  after fill {}  drain max {}  peak {}",
        number(&rss["before_fill"]),
        number(&rss["after_fill"]),
        number(&rss["drain_max"]),
        number(&report["server_peak_rss_mib"])
    );
    println!(
        "server CPU          {} s  ({} s while draining)",
        number(&report["server_cpu_seconds"]),
        number(&report["drain_cpu_seconds"])
    );
}
