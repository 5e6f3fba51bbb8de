//! `herald serve`: opens the store, sets up the admin key, starts the API and the delivery
//! dispatcher, and stops both cleanly.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use herald_api::{ApiSettings, AppState, CustomTypes, DecisionRecorder, HooksCache};
use herald_core::clock::Clock;
use herald_delivery::dispatcher::{Dispatcher, DispatcherSettings};
use herald_delivery::http_client::HttpClient;
use herald_delivery::listen::ListenHub;
use herald_delivery::ssf::{SsfSettings, SsfSignals, SsfWorker};
use herald_delivery::ssrf::NetworkPolicy;
use herald_store::{Backend, ChangeListener, Store};
use herald_store_postgres::PostgresStore;
use herald_store_sqlite::SqliteStore;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::admin_key::{GeneratedAdminKey, set_up_admin_key};
use crate::config::{Database, ServeSettings};

/// What a caller controls besides the settings: the clock, and whether the background loops run
/// (tests drive the dispatcher step by step instead).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub settings: ServeSettings,
    pub clock: Arc<dyn Clock>,
    pub run_background_work: bool,
    pub dispatcher: DispatcherSettings,
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    pub address: SocketAddr,
    pub store: Arc<dyn Store>,
    pub dispatcher: Arc<Dispatcher>,
    /// The Shared Signals worker (tests step it with `run_once`).
    pub ssf: SsfWorker,
    /// The admin key made at first start, when `HERALD_ADMIN_KEY` was not set, and its file.
    pub generated_admin_key: Option<GeneratedAdminKey>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// Kept alive for as long as the server runs; dropping it stops listening.
    _wakeups: Option<ChangeListener>,
    /// The `herald listen` streams connected here: ended at shutdown, since the HTTP server's
    /// graceful stop waits for every response and a stream's response never ends by itself.
    listen: Arc<ListenHub>,
}

impl RunningServer {
    /// Stops accepting requests, lets in-flight attempts finish (or releases them), and returns
    /// when everything has stopped.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        self.listen.close();
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a server task failed while stopping");
            }
        }
    }
}

/// How often histogram samples are folded into their summaries when nobody scrapes.
const METRICS_UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Bucket bounds, in seconds, of every `*_seconds` histogram: sub-millisecond store round trips
/// up to a day of delivery lag (retries). Histograms rather than the exporter's default summaries:
/// Prometheus can add them up across nodes, and a sample costs a bucket search where a summary
/// sample cost about 5,800 instructions, measured (BENCHMARKS.md).
const SECONDS_BUCKETS: [f64; 22] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5, 10.0, 60.0, 300.0, 1_800.0, 3_600.0, 86_400.0,
];

/// The process-wide Prometheus recorder: `metrics` has one global recorder, so several servers
/// in one process (tests) share it.
fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            match PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder)
            {
                Ok(handle) => {
                    // The recorder keeps every histogram sample until upkeep folds it in; a scrape
                    // does that too, but nobody may scrape, and memory must not grow with traffic.
                    let upkeep = handle.clone();
                    let started = std::thread::Builder::new()
                        .name("herald-metrics-upkeep".into())
                        .spawn(move || {
                            loop {
                                std::thread::sleep(METRICS_UPKEEP_EVERY);
                                upkeep.run_upkeep();
                            }
                        });
                    if let Err(error) = started {
                        tracing::warn!(%error, "metrics upkeep could not start");
                    }
                    Some(handle)
                }
                Err(error) => {
                    tracing::warn!(%error, "metrics are not available");
                    None
                }
            }
        })
        .clone()
}

/// Opens the configured database, bringing its schema up to date: the one place that looks at
/// which kind it is.
pub async fn open_backend(database: &Database) -> anyhow::Result<Box<dyn Backend>> {
    match database {
        Database::Postgres { url, pool_size } => {
            let store = PostgresStore::connect(url, *pool_size)
                .await
                .context("failed to connect to PostgreSQL")?;
            Ok(Box::new(store))
        }
        Database::Sqlite(path) => {
            let path = path.clone();
            let store = tokio::task::spawn_blocking(move || SqliteStore::open(&path))
                .await
                .context("failed to open the database")?
                .context("failed to open the SQLite database")?;
            Ok(Box::new(store))
        }
    }
}

/// Removes expired events, then expired Shared Signals push attempts, in small batches until none
/// is left; returns how many events went.
pub async fn run_retention_once(
    store: &Arc<dyn Store>,
    clock: &Arc<dyn Clock>,
    retention_days: u32,
) -> anyhow::Result<u64> {
    let cutoff = clock.now() - time::Duration::days(i64::from(retention_days));
    let mut n_removed = 0;
    loop {
        let removed = store.remove_expired(cutoff, 500).await?;
        n_removed += removed;
        if removed == 0 {
            break;
        }
        // Small transactions keep publishes flowing while a large backlog is cleaned.
        tokio::task::yield_now().await;
    }
    // Shared Signals push attempts expire like events.
    while store.remove_expired_ssf_push_attempts(cutoff, 500).await? > 0 {
        tokio::task::yield_now().await;
    }
    Ok(n_removed)
}

pub async fn start(options: ServerOptions) -> anyhow::Result<RunningServer> {
    let ServerOptions {
        settings,
        clock,
        run_background_work,
        dispatcher: dispatcher_settings,
    } = options;
    let backend = open_backend(&settings.database).await?;
    let store = backend.store();
    let (admin_key_hash, generated_admin_key) = set_up_admin_key(&store, &settings, &clock).await?;
    let custom_types = CustomTypes::from_records(store.list_custom_types(None).await?);
    let policy = NetworkPolicy::with_allowed(settings.allow_network.iter().copied());
    let client = HttpClient::new(policy.clone()).context("failed to build the HTTP client")?;
    let hook_client = client.clone();
    let wakeup = Arc::new(Notify::new());
    let hooks = Arc::new(HooksCache::default());
    // Nodes sharing PostgreSQL wake each other through LISTEN/NOTIFY, so an idle cluster sleeps
    // until there is work instead of polling; the same connection tells this node's hooks cache
    // when another node changed a tenant's hooks.
    let ssf_signals = Arc::new(SsfSignals::default());
    let wakeups = {
        let hooks = Arc::clone(&hooks);
        let ssf_signals = Arc::clone(&ssf_signals);
        backend
            .listen_for_changes(
                Arc::clone(&wakeup),
                Arc::new(move |notice| {
                    hooks.notice(&notice);
                    // Shared Signals: SETs queued by any node (or notices perhaps missed) send
                    // this node's long polls back to their queues.
                    if matches!(
                        notice,
                        herald_store::ChangeNotice::Ssf { .. }
                            | herald_store::ChangeNotice::MaybeMissed
                            | herald_store::ChangeNotice::ListenerUp
                    ) {
                        ssf_signals.announce_sets_queued();
                    }
                }),
            )
            .await
            .context("failed to LISTEN for other nodes' work")?
    };
    let mut dispatcher_settings = dispatcher_settings;
    dispatcher_settings.auto_disable_after =
        Duration::from_secs(u64::from(settings.auto_disable_days) * 24 * 3600);
    // A rotated-out Ed25519 key signs `v1a` for as long as the JWKS publishes it.
    dispatcher_settings.key_overlap = ApiSettings::default().secret_overlap;
    let listen = Arc::new(ListenHub::new());
    let dispatcher = Dispatcher::new(
        Arc::clone(&store),
        client,
        Arc::clone(&listen),
        Arc::clone(&clock),
        dispatcher_settings,
        Arc::clone(&wakeup),
    );
    let ssf = SsfWorker::new(
        Arc::clone(&store),
        hook_client.clone(),
        Arc::clone(&clock),
        SsfSettings::default(),
        Arc::clone(&ssf_signals),
    );
    let state = AppState {
        store: Arc::clone(&store),
        clock: Arc::clone(&clock),
        admin_key_hash: admin_key_hash.into(),
        network_policy: Arc::new(policy),
        delivery_wakeup: Arc::clone(&wakeup),
        settings: Arc::new(ApiSettings {
            max_body_bytes: settings.max_body_bytes,
            hook_chain_deadline: Duration::from_millis(settings.hook_chain_deadline_ms),
            public_url: settings.public_url.clone(),
            ..ApiSettings::default()
        }),
        custom_types: Arc::new(custom_types),
        metrics: metrics_handle(),
        hook_client,
        hooks,
        decisions: DecisionRecorder::start(Arc::clone(&store)),
        known_tenants: Arc::default(),
        listen: Arc::clone(&listen),
        ssf: ssf_signals,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("failed to listen on {}", settings.listen))?;
    let address = listener.local_addr()?;
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let mut server_shutdown = shutdown_rx.clone();
    let connections = settings.connections;
    tasks.push(tokio::spawn(async move {
        crate::http_server::serve(
            listener,
            herald_api::router(state),
            connections,
            async move {
                let _ = server_shutdown.wait_for(|stop| *stop).await;
            },
        )
        .await;
    }));
    if run_background_work {
        tasks.push(tokio::spawn(
            Arc::clone(&dispatcher).run(shutdown_rx.clone()),
        ));
        // Shared Signals beside the dispatcher: SETs from the log, pushes to receivers.
        tasks.push(tokio::spawn(ssf.clone().run(shutdown_rx.clone())));
        let (store, clock, days, listen) = (
            Arc::clone(&store),
            Arc::clone(&clock),
            settings.retention_days,
            Arc::clone(&listen),
        );
        let mut retention_shutdown = shutdown_rx;
        tasks.push(tokio::spawn(async move {
            loop {
                match run_retention_once(&store, &clock, days).await {
                    Ok(0) => {}
                    Ok(n_removed) => tracing::info!(n_removed, "expired events removed"),
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "retention cleanup failed")
                    }
                }
                match herald_api::routes::listen::remove_stale_sessions(
                    store.as_ref(),
                    &listen,
                    clock.now(),
                )
                .await
                {
                    Ok(0) => {}
                    Ok(n_removed) => tracing::info!(n_removed, "stale listen sessions removed"),
                    Err(error) => tracing::warn!(%error, "removing stale listen sessions failed"),
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(3600)) => {}
                    _ = retention_shutdown.wait_for(|stop| *stop) => return,
                }
            }
        }));
    }
    tracing::info!(%address, "Herald is listening");
    Ok(RunningServer {
        address,
        store,
        dispatcher,
        ssf,
        generated_admin_key,
        shutdown,
        tasks,
        _wakeups: wakeups,
        listen,
    })
}
