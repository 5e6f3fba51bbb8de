//! `herald serve`: run the hub until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use herald::config::{ServeArgs, ServeSettings, check_lease_covers};
use herald::server::{RunningServer, ServerOptions, start};
use herald_core::clock::SystemClock;
use herald_delivery::dispatcher::DispatcherSettings;

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = ServeSettings::resolve(args)?;
    let lease = args.lease()?;
    init_logging(settings.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut dispatcher = DispatcherSettings::default();
    if let Some(lease) = lease {
        dispatcher.lease = lease;
    }
    runtime.block_on(async move {
        let server = start(ServerOptions {
            settings,
            clock: Arc::new(SystemClock),
            run_background_work: true,
            dispatcher,
        })
        .await?;
        if let Some(lease) = lease {
            // Checked before the node announces itself, so nothing relies on a node whose
            // leases its endpoints could outlast.
            if let Err(error) = check_endpoint_timeouts(&server, lease).await {
                server.shutdown().await;
                return Err(error);
            }
        }
        if let Some(generated) = &server.generated_admin_key {
            // The key itself is in the file only: this line may end up in a log.
            eprintln!(
                "Herald generated an admin key and wrote it to {} (readable only by this user; \
                 shown nowhere else). Use it as `Authorization: Bearer <key>`, or set \
                 HERALD_ADMIN_KEY to choose your own.",
                generated.file.display()
            );
        }
        eprintln!("Herald listening on http://{}", server.address);
        wait_for_signal().await;
        tracing::info!("stopping: finishing deliveries in flight");
        server.shutdown().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Refuses a shortened lease that an existing endpoint's timeout could outlast. Endpoints made
/// later are not checked against it, which is why the flag is hidden and says so.
async fn check_endpoint_timeouts(server: &RunningServer, lease: Duration) -> anyhow::Result<()> {
    let mut endpoint_timeouts = Vec::new();
    for tenant in server.store.list_tenants().await? {
        for endpoint in server.store.list_endpoints(&tenant.id).await? {
            endpoint_timeouts.push((endpoint.id.into_string(), endpoint.timeout_ms));
        }
    }
    check_lease_covers(lease, endpoint_timeouts)?;
    tracing::warn!(
        lease_seconds = lease.as_secs(),
        "delivery lease shortened; every endpoint's timeout must stay below it"
    );
    Ok(())
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn wait_for_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
