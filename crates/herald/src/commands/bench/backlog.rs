//! The `backlog` scenario: deliveries queued behind a paused endpoint, then drained.

use super::*;

/// Fills a paused endpoint's queue with `n_pending` deliveries, published in batches by
/// `--concurrency` publishers, then resumes the endpoint and waits for the queue to drain. The
/// drain is timed from the resuming PATCH to the last arrival. Latency percentiles would only
/// measure how long events waited behind the pause, so there are none.
pub(super) async fn run_backlog(
    args: &BenchArgs,
    n_pending: usize,
    batch: usize,
) -> anyhow::Result<Value> {
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
