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

mod backlog;
mod fixtures;
mod hooks;
mod processes;
mod receiver;
mod report;
mod server_metrics;

use backlog::*;
use fixtures::*;
use hooks::*;
use processes::*;
use receiver::*;
use report::*;

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
    /// Attempts each busy endpoint allows at once (its `max_concurrency`).
    #[arg(long, global = true, default_value_t = 64)]
    max_concurrency: u32,
    /// Run each server under `valgrind --tool=callgrind`, its profiles written to this directory,
    /// and report the instructions it executed from the first publish to the last delivery.
    #[arg(long, global = true)]
    callgrind: Option<std::path::PathBuf>,
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
        let created = post_json(&client, format!("{first_base}/v1/tenants/bench/endpoints"), key.clone(), json!({"url": format!("http://{receiver_address}/hook/{index}"), "filters": ["bench.*"], "max_concurrency": args.max_concurrency})).await?;
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
    // Read after the instruction count, so the scrape's own work is not counted.
    let server_timings = server_metrics::scrape(&client, &bases).await;
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
        "max_concurrency": args.max_concurrency,
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
        "server_timings": server_timings,
    }))
}
