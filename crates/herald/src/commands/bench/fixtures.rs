//! What a scenario sets up through the API or straight in the store: the tenant and its endpoints, idle endpoints and delivered history.

use super::*;

/// POSTs JSON to the server under test; anything but 2xx is an error carrying the answer.
pub(super) async fn post_json(
    client: &reqwest::Client,
    url: String,
    key: String,
    body: Value,
) -> anyhow::Result<Value> {
    send_json(client, reqwest::Method::POST, url, key, body).await
}

/// Sends JSON with `method`; anything but 2xx is an error carrying the answer.
pub(super) async fn send_json(
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

/// Writes `n_deliveries` of delivered history for the `bench` tenant's endpoints straight into
/// the store (see `herald_store_sqlite::history`).
pub(super) async fn fill_history(
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
pub(super) const IDLE_TENANTS: usize = 10;

/// Creates `n_endpoints` enabled endpoints over [`IDLE_TENANTS`] tenants, each subscribed to a
/// custom type nobody publishes: what a multi-tenant deployment's quiet majority looks like.
pub(super) async fn create_idle_endpoints(
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

/// Creates the `bench` tenant, a key for it and the `bench.ping` custom type; returns the key.
pub(super) async fn bench_tenant(
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
