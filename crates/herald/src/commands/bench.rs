//! `herald bench`: runs a Herald server as a child process, a loopback receiver and a load
//! generator, and reports publish and delivery rates, end-to-end latency, duplicates, errors and
//! the server's peak memory and CPU time. Everything is bounded in count and time and stays on
//! loopback.

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
    /// Publish at a fixed rate and measure latency.
    Steady {
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
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
    fn start(database: &std::path::Path, admin_key: &str) -> anyhow::Result<Self> {
        let mut child = Command::new(std::env::current_exe()?)
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

    /// Peak resident memory (MiB) and CPU seconds of the server so far, from /proc.
    fn usage(&self) -> (Option<f64>, Option<f64>) {
        let pid = self.child.id();
        let peak_rss_mib = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find(|line| line.starts_with("VmHWM:"))
                    .and_then(|line| line.split_whitespace().nth(1)?.parse::<f64>().ok())
                    .map(|kib| kib / 1024.0)
            });
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
    };
    let directory = tempfile::tempdir()?;
    let admin_key = format!("bench-admin-{}", now_us());
    let server = ServerProcess::start(&directory.path().join("bench.db"), &admin_key)?;
    let base = format!("http://{}", server.address);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let call = |path: &str, key: &str, body: Value| {
        let request = client
            .post(format!("{base}{path}"))
            .bearer_auth(key)
            .header("content-type", "application/json")
            .body(body.to_string());
        async move {
            let response = request.send().await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                bail!("{status}: {text}");
            }
            Ok::<Value, anyhow::Error>(serde_json::from_str(&text).unwrap_or(Value::Null))
        }
    };

    let state = ReceiverState {
        arrivals: Arc::new(Mutex::new(Arrivals::default())),
        progress: Arc::new(Notify::new()),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_address = listener.local_addr()?;
    let receiver = axum::Router::new()
        .route("/hook/{endpoint}", axum::routing::post(receive))
        .with_state(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, receiver).await;
    });

    call(
        "/v1/tenants",
        &admin_key,
        json!({"id": "bench", "name": "Benchmark"}),
    )
    .await?;
    let key = call("/v1/tenants/bench/api-keys", &admin_key, json!({})).await?["key"]
        .as_str()
        .context("no key")?
        .to_owned();
    call("/v1/tenants/bench/catalog", &key, json!({
        "type": "bench.ping", "description": "A benchmark event carrying its send time.",
        "schema": {"type": "object", "properties": {"n": {"type": "integer"}, "sent_us": {"type": "integer"}}, "required": ["n", "sent_us"]},
    })).await?;
    for index in 0..n_endpoints {
        call("/v1/tenants/bench/endpoints", &key, json!({"url": format!("http://{receiver_address}/hook/{index}"), "filters": ["bench.*"], "max_concurrency": 64})).await?;
    }

    eprintln!(
        "{name}: publishing {n_events} events to {n_endpoints} endpoint(s) with {} publishers...",
        args.concurrency
    );
    let started = Instant::now();
    let next_number = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut publishers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, base, key) = (client.clone(), base.clone(), key.clone());
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
    let (peak_rss_mib, cpu_seconds) = server.usage();
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
        "events": n_events,
        "endpoints": n_endpoints,
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
        "wall_seconds": delivery_seconds,
    }))
}

fn print_table(report: &Value) {
    let number = |value: &Value| {
        value
            .as_f64()
            .map_or("-".to_owned(), |number| format!("{number:.1}"))
    };
    println!(
        "scenario            {}",
        report["scenario"].as_str().unwrap_or_default()
    );
    println!(
        "events x endpoints  {} x {}  ({} publishers)",
        report["events"], report["endpoints"], report["publishers"]
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
}
