//! `herald serve`: run the hub until SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use herald::config::{ServeArgs, ServeSettings, check_lease_covers};
use herald::server::{RunningServer, ServerOptions, start};
use herald_core::clock::SystemClock;
use herald_delivery::dispatcher::DispatcherSettings;

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = ServeSettings::resolve(args)?;
    let admin_key_file = settings.admin_key_file.clone();
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
        if let Some(key) = &server.generated_admin_key
            && let Err(error) = show_generated_admin_key(key, &admin_key_file)
        {
            // A key nobody can read locks the operator out: take it back, so that the next
            // start makes another.
            let _ = server.store.revoke_generated_admin_keys().await;
            server.shutdown().await;
            return Err(error);
        }
        eprintln!("Herald listening on http://{}", server.address);
        wait_for_signal().await;
        tracing::info!("stopping: finishing deliveries in flight");
        server.shutdown().await;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Shows a generated admin key once, where logs do not go: on the terminal when standard error
/// is one, and otherwise (a service manager, a pipe, a log file) in a file only the current user
/// can read, whose path is printed instead. Herald keeps just the key's hash.
fn show_generated_admin_key(key: &str, file: &Path) -> anyhow::Result<()> {
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\nHerald admin key (shown once; store it now, it cannot be recovered):\n\n    {key}\n\n\
             Use it as `Authorization: Bearer <key>`, or set HERALD_ADMIN_KEY to choose your own.\n"
        );
        return Ok(());
    }
    write_private_file(file, key)
        .with_context(|| format!("failed to write the admin key to {}", file.display()))?;
    eprintln!(
        "Herald generated an admin key and wrote it to {} (readable only by this user; it is \
         shown nowhere else). Use it as `Authorization: Bearer <key>`, or set HERALD_ADMIN_KEY \
         to choose your own.",
        file.display()
    );
    Ok(())
}

/// Writes `key` to `path` with mode 0600, replacing what was there, and syncs it: the file is
/// the only copy of the key.
fn write_private_file(path: &Path, key: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        let file = options.open(path)?;
        // A file that existed keeps its mode through `open`: narrow it before writing.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        write_and_sync(file, key)
    }
    #[cfg(not(unix))]
    {
        write_and_sync(options.open(path)?, key)
    }
}

fn write_and_sync(mut file: std::fs::File, key: &str) -> std::io::Result<()> {
    use std::io::Write;
    writeln!(file, "{key}")?;
    file.sync_all()
}

/// Refuses a shortened lease that an existing endpoint's timeout could outlast. Endpoints made
/// later are not checked against it, which is why the flag is hidden and says so.
async fn check_endpoint_timeouts(server: &RunningServer, lease: Duration) -> anyhow::Result<()> {
    let mut endpoint_timeouts = Vec::new();
    for tenant in server.store.list_tenants().await? {
        for endpoint in server.store.list_endpoints(&tenant.id).await? {
            endpoint_timeouts.push((endpoint.id, endpoint.timeout_ms));
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
