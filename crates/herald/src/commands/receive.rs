//! `herald receive`: a small local webhook receiver for trying Herald out. It prints each delivery
//! and saves its headers and raw body so `herald verify` can check them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use clap::Args;

#[derive(Debug, Args)]
pub struct ReceiveArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// Folder where each delivery is saved as N.headers and N.body.
    #[arg(long, default_value = "received")]
    save_dir: PathBuf,
    /// Status to answer with (e.g. 500 to watch retries, 410 to see the endpoint disabled).
    #[arg(long, default_value_t = 200)]
    status: u16,
}

struct Receiver {
    save_dir: PathBuf,
    status: StatusCode,
    n_received: AtomicU64,
}

pub fn run(args: &ReceiveArgs) -> anyhow::Result<ExitCode> {
    let status = StatusCode::from_u16(args.status).context("--status must be an HTTP status")?;
    std::fs::create_dir_all(&args.save_dir)
        .with_context(|| format!("failed to create {}", args.save_dir.display()))?;
    let receiver = Arc::new(Receiver {
        save_dir: args.save_dir.clone(),
        status,
        n_received: AtomicU64::new(0),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("failed to listen on {}", args.listen))?;
        eprintln!(
            "receiving on http://{}/ (answering {}), saving to {}",
            listener.local_addr()?,
            status.as_u16(),
            args.save_dir.display()
        );
        let app = axum::Router::new().fallback(receive).with_state(receiver);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("the receiver stopped")?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let number = receiver.n_received.fetch_add(1, Ordering::SeqCst) + 1;
    let header_lines: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {}\n", String::from_utf8_lossy(value.as_bytes())))
        .collect();
    let save = |extension: &str, content: &[u8]| {
        let path = receiver.save_dir.join(format!("{number}.{extension}"));
        if let Err(error) = std::fs::write(&path, content) {
            eprintln!("could not save {}: {error}", path.display());
        }
    };
    save("headers", header_lines.as_bytes());
    save("body", &body);
    // Printed after saving, so whoever sees this line finds the files in place.
    println!(
        "--- delivery {number} to {uri}\n{header_lines}\n{}\n",
        String::from_utf8_lossy(&body)
    );
    receiver.status
}
