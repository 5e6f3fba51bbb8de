//! The `hooks` scenario: the overhead around a chain of instant blocking hooks.

use super::*;

/// Three hooks that allow at once, one evaluation at a time: per evaluation, the caller's round
/// trip and the sum of the hooks' exchanges as Herald timed them; the difference is Herald's own
/// overhead (the caller's HTTP hop to Herald included).
pub(super) async fn run_hooks(args: &BenchArgs, n_evaluations: usize) -> anyhow::Result<Value> {
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
