//! `herald serve`: run the hub until SIGINT or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use herald::config::{ServeArgs, ServeSettings};
use herald::server::{ServerOptions, start};
use herald_core::clock::SystemClock;
use herald_delivery::dispatcher::DispatcherSettings;

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = ServeSettings::resolve(args)?;
    init_logging(settings.log_json);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let server = start(ServerOptions {
            settings,
            clock: Arc::new(SystemClock),
            run_background_work: true,
            dispatcher: DispatcherSettings::default(),
        })
        .await?;
        if let Some(key) = &server.generated_admin_key {
            // Shown once, on the terminal only (never in the logs): Herald keeps just its hash.
            eprintln!("\nHerald admin key (shown once; store it now, it cannot be recovered):\n\n    {key}\n\nUse it as `Authorization: Bearer <key>`, or set HERALD_ADMIN_KEY to choose your own.\n");
        }
        eprintln!("Herald listening on http://{}", server.address);
        wait_for_signal().await;
        tracing::info!("stopping: finishing deliveries in flight");
        server.shutdown().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
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
