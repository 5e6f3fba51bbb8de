//! `herald listen`: receive a tenant's deliveries on a developer's machine. The CLI holds a
//! Server-Sent Events stream open to Herald (outbound, plain HTTP, so it passes any proxy that
//! passes HTTP), forwards each delivery to `--forward-to` with the same body and headers, and
//! reports the local answer back, where it becomes the attempt's result.
//!
//! The forward goes only to the URL the developer gave, on their own machine: there is no SSRF
//! guard on this side, and no proxy is used for it.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Base URL of the Herald server.
    #[arg(long, env = "HERALD_URL", default_value = "http://127.0.0.1:8470")]
    server: String,
    /// The tenant's API key.
    #[arg(long, env = "HERALD_API_KEY", hide_env_values = true)]
    key: Option<String>,
    #[arg(long)]
    tenant: String,
    /// Where each delivery is sent on this machine, e.g. http://localhost:3000/webhooks.
    #[arg(long)]
    forward_to: String,
    /// Event filter (repeatable): exact type, `prefix.*`, a taxonomy name, or `*` (default).
    #[arg(long = "filter")]
    filters: Vec<String>,
    /// Reconnect to an earlier session (`ep_...`, as printed) instead of starting a new one.
    #[arg(long)]
    session: Option<String>,
    /// The longest wait between two reconnection attempts, in seconds.
    #[arg(long, default_value_t = 30)]
    max_backoff_s: u64,
}

/// The first wait before reconnecting; doubled after each failed attempt up to the cap.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Herald sends a keep-alive comment every 15 s: this long without a byte, the stream is dead.
const STREAM_SILENCE_LIMIT: Duration = Duration::from_secs(45);
/// How long the local receiver has to answer (Herald waits 10 s for the whole round trip).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(9);
/// The most of the local answer's body that is reported.
const EXCERPT_LIMIT: usize = 4096;

#[derive(Debug, Deserialize)]
struct SessionIn {
    session_id: String,
    secret: String,
    filters: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct DeliveryIn {
    delivery_id: String,
    event_type: String,
    attempt_number: u32,
    headers: Vec<(String, String)>,
    body: String,
}

/// Why one stream ended.
enum StreamEnd {
    /// It ended after it was established (Herald restarting, the network dropping).
    Dropped { reason: String },
    /// It could not be established.
    Refused { reason: String },
}

struct Listener {
    args: ListenArgs,
    key: String,
    stream_client: reqwest::Client,
    forward_client: reqwest::Client,
    /// Whether the session and its secret were printed (once per session and process).
    announced: std::sync::atomic::AtomicBool,
}

pub fn run(args: &ListenArgs) -> anyhow::Result<ExitCode> {
    herald::install_tls_provider();
    let key = args
        .key
        .clone()
        .context("an API key is needed: --key or HERALD_API_KEY")?;
    if !args.forward_to.starts_with("http://") && !args.forward_to.starts_with("https://") {
        bail!("--forward-to must be an http:// or https:// URL");
    }
    let listener = Arc::new(Listener {
        args: ListenArgs {
            server: args.server.trim_end_matches('/').to_owned(),
            key: None,
            tenant: args.tenant.clone(),
            forward_to: args.forward_to.clone(),
            filters: args.filters.clone(),
            session: args.session.clone(),
            max_backoff_s: args.max_backoff_s.max(1),
        },
        key,
        stream_client: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()?,
        // The receiver is on the developer's side: a proxy set for the outside world must not
        // carry it, and a redirect it answers is reported, not followed (as Herald does).
        forward_client: reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FORWARD_TIMEOUT)
            .build()?,
        announced: std::sync::atomic::AtomicBool::new(false),
    });
    let runtime = tokio::runtime::Runtime::new().context("failed to start the runtime")?;
    runtime.block_on(listener.run())
}

impl Listener {
    async fn run(self: Arc<Self>) -> anyhow::Result<ExitCode> {
        let mut session = self.args.session.clone();
        let mut backoff = FIRST_BACKOFF;
        let max_backoff = Duration::from_secs(self.args.max_backoff_s);
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            let end = tokio::select! {
                _ = &mut interrupted => break,
                end = self.stream_once(&mut session) => end?,
            };
            match end {
                StreamEnd::Dropped { reason } => {
                    backoff = FIRST_BACKOFF;
                    eprintln!("The stream ended ({reason}); reconnecting.");
                }
                StreamEnd::Refused { reason } => {
                    eprintln!(
                        "Could not connect ({reason}); retrying in {} ms.",
                        backoff.as_millis()
                    );
                }
            }
            tokio::select! {
                _ = &mut interrupted => break,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(max_backoff);
        }
        if let Some(session_id) = session {
            let closed = self
                .stream_client
                .delete(self.url(&format!("/listen/{session_id}")))
                .bearer_auth(&self.key)
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            match closed {
                Ok(response) if response.status().is_success() => {
                    println!("Session {session_id} closed.");
                }
                Ok(response) => eprintln!(
                    "Session {session_id} not closed (HTTP {}); Herald removes it after 24 h.",
                    response.status().as_u16()
                ),
                Err(error) => eprintln!(
                    "Session {session_id} not closed ({error}); Herald removes it after 24 h."
                ),
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    fn url(&self, rest: &str) -> String {
        format!("{}/v1/tenants/{}{rest}", self.args.server, self.args.tenant)
    }

    /// One stream, from connecting until it ends. An error is final (bad key, bad filter).
    async fn stream_once(
        self: &Arc<Self>,
        session: &mut Option<String>,
    ) -> anyhow::Result<StreamEnd> {
        let mut url = reqwest::Url::parse(&self.url("/listen"))
            .with_context(|| format!("--server {:?} is not a URL", self.args.server))?;
        {
            let mut query = url.query_pairs_mut();
            if !self.args.filters.is_empty() {
                query.append_pair("filters", &self.args.filters.join(","));
            }
            if let Some(session_id) = session.as_deref() {
                query.append_pair("session", session_id);
            }
        }
        let sent = self
            .stream_client
            .get(url)
            .bearer_auth(&self.key)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => {
                return Ok(StreamEnd::Refused {
                    reason: error.to_string(),
                });
            }
        };
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            if status == reqwest::StatusCode::NOT_FOUND && session.is_some() {
                eprintln!("Session {session:?} is gone; starting a new one.");
                *session = None;
                return Ok(StreamEnd::Refused {
                    reason: "session gone".to_owned(),
                });
            }
            if status.is_client_error() {
                bail!(
                    "Herald refused the stream: HTTP {}: {body}",
                    status.as_u16()
                );
            }
            return Ok(StreamEnd::Refused {
                reason: format!("HTTP {}", status.as_u16()),
            });
        }
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let chunk = match tokio::time::timeout(STREAM_SILENCE_LIMIT, response.chunk()).await {
                Err(_) => {
                    return Ok(StreamEnd::Dropped {
                        reason: "no keep-alive from Herald".to_owned(),
                    });
                }
                Ok(Err(error)) => {
                    return Ok(StreamEnd::Dropped {
                        reason: error.to_string(),
                    });
                }
                Ok(Ok(None)) => {
                    return Ok(StreamEnd::Dropped {
                        reason: "closed by Herald".to_owned(),
                    });
                }
                Ok(Ok(Some(chunk))) => chunk,
            };
            buffer.extend_from_slice(&chunk);
            while let Some((event_name, data)) = take_event(&mut buffer) {
                self.handle_event(session, &event_name, &data);
            }
        }
    }

    fn handle_event(self: &Arc<Self>, session: &mut Option<String>, event_name: &str, data: &str) {
        match event_name {
            "session" => match serde_json::from_str::<SessionIn>(data) {
                Ok(opened) => {
                    let first_here = !self
                        .announced
                        .swap(true, std::sync::atomic::Ordering::SeqCst);
                    if first_here || session.as_deref() != Some(opened.session_id.as_str()) {
                        println!(
                            "Forwarding deliveries of tenant {} ({}) to {}",
                            self.args.tenant,
                            opened.filters.join(", "),
                            self.args.forward_to
                        );
                        println!("Signing secret: {}", opened.secret);
                        println!(
                            "Session: {} (resume it with --session {})",
                            opened.session_id, opened.session_id
                        );
                    }
                    println!("Connected: session {}", opened.session_id);
                    *session = Some(opened.session_id);
                }
                Err(error) => eprintln!("An unreadable session event: {error}"),
            },
            "delivery" => match serde_json::from_str::<DeliveryIn>(data) {
                Ok(delivery) => {
                    let Some(session_id) = session.clone() else {
                        eprintln!("A delivery before the session event; ignored.");
                        return;
                    };
                    // Each delivery in its own task: a slow local answer must not hold up the
                    // others, which Herald may send concurrently.
                    let listener = Arc::clone(self);
                    tokio::spawn(async move { listener.forward(&session_id, delivery).await });
                }
                Err(error) => eprintln!("An unreadable delivery event: {error}"),
            },
            _ => {}
        }
    }

    async fn forward(&self, session_id: &str, delivery: DeliveryIn) {
        let started = Instant::now();
        let mut request = self
            .forward_client
            .post(&self.args.forward_to)
            .body(delivery.body);
        for (name, value) in &delivery.headers {
            // Framing is the local connection's own.
            if !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("host") {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        let (status, excerpt, error) = match request.send().await {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let mut excerpt = Vec::new();
                while excerpt.len() < EXCERPT_LIMIT {
                    match response.chunk().await {
                        Ok(Some(chunk)) => excerpt.extend_from_slice(&chunk),
                        _ => break,
                    }
                }
                excerpt.truncate(EXCERPT_LIMIT);
                (
                    Some(status),
                    String::from_utf8_lossy(&excerpt).into_owned(),
                    None,
                )
            }
            Err(error) => (None, String::new(), Some(error.to_string())),
        };
        let latency = started.elapsed();
        let now = time::OffsetDateTime::now_utc();
        let outcome = match (status, &error) {
            (Some(status), _) => status.to_string(),
            (None, Some(error)) => format!("failed: {error}"),
            (None, None) => "failed".to_owned(),
        };
        println!(
            "{:02}:{:02}:{:02}  {:<40} {}  {} ms  {} (attempt {})",
            now.hour(),
            now.minute(),
            now.second(),
            delivery.event_type,
            outcome,
            latency.as_millis(),
            delivery.delivery_id,
            delivery.attempt_number
        );
        let reported = self
            .stream_client
            .post(self.url(&format!("/listen/{session_id}/results")))
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(10))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(
                json!({
                    "delivery_id": delivery.delivery_id,
                    "status": status,
                    "latency_ms": u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
                    "response_excerpt": excerpt,
                    "error": error,
                })
                .to_string(),
            )
            .send()
            .await;
        match reported {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => eprintln!(
                "Herald did not take the answer to {} (HTTP {}): it will be retried.",
                delivery.delivery_id,
                response.status().as_u16()
            ),
            Err(error) => eprintln!(
                "Could not report the answer to {} ({error}): it will be retried.",
                delivery.delivery_id
            ),
        }
    }
}

/// Takes the first complete Server-Sent Event off `buffer`: its `event` name (`message` when
/// absent) and its `data` lines joined by newlines. Comments (`:` lines, Herald's keep-alives)
/// and events without data are skipped. Lines may end in LF, CRLF or CR.
fn take_event(buffer: &mut Vec<u8>) -> Option<(String, String)> {
    loop {
        let (end, separator_len) = find_blank_line(buffer)?;
        let block: Vec<u8> = buffer.drain(..end + separator_len).collect();
        let text = String::from_utf8_lossy(&block[..end]).into_owned();
        let mut event_name = "message".to_owned();
        let mut data: Option<String> = None;
        for line in text.split(['\n', '\r']) {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event_name = value.to_owned(),
                "data" => match data.as_mut() {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
        if let Some(data) = data {
            return Some((event_name, data));
        }
    }
}

/// Where the first blank line (the end of an event) starts, and the separator's length.
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    for separator in [&b"\r\n\r\n"[..], b"\n\n", b"\r\r"] {
        if let Some(position) = buffer
            .windows(separator.len())
            .position(|window| window == separator)
        {
            return Some((position, separator.len()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_whole_and_comments_skipped() {
        let mut buffer =
            b": keep-alive\n\nevent: session\ndata: {\"a\":1}\n\nevent: delivery\ndata: x\ndata: y\n\nevent: del"
                .to_vec();
        assert_eq!(
            take_event(&mut buffer),
            Some(("session".to_owned(), "{\"a\":1}".to_owned()))
        );
        assert_eq!(
            take_event(&mut buffer),
            Some(("delivery".to_owned(), "x\ny".to_owned()))
        );
        assert_eq!(take_event(&mut buffer), None);
        assert_eq!(buffer, b"event: del");
    }
}
