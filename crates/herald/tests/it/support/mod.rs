//! Shared test harness: a real Herald server in-process on port 0 with a fresh SQLite file, a
//! manual clock and the dispatcher driven step by step; and a real HTTP receiver on port 0 that
//! records what arrives and answers as each test scripts it.

pub mod postgres;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use herald::config::{ConnectionSettings, Database, ServeSettings};
use herald::server::{RunningServer, ServerOptions, start};
use herald_core::clock::{Clock, ManualClock};
use herald_delivery::dispatcher::DispatcherSettings;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef";

pub struct TestApp {
    pub server: RunningServer,
    pub base: String,
    pub clock: Arc<ManualClock>,
    pub http: reqwest::Client,
    pub directory: tempfile::TempDir,
}

pub fn settings(directory: &std::path::Path) -> ServeSettings {
    ServeSettings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database: Database::Sqlite(directory.join("herald.db")),
        allow_network: vec!["127.0.0.0/8".parse().expect("cidr")],
        max_body_bytes: 256 * 1024,
        retention_days: 30,
        auto_disable_days: 5,
        hook_chain_deadline_ms: 10_000,
        log_json: false,
        connections: ConnectionSettings::default(),
        admin_key: Some(ADMIN_KEY.to_owned()),
        admin_key_file: directory.join("herald-admin-key"),
        public_url: None,
    }
}

impl TestApp {
    /// A server on a fresh database; background loops off, so tests call [`TestApp::deliver`].
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(configure: impl FnOnce(&mut ServerOptions)) -> Self {
        let directory = tempfile::tempdir().expect("tempdir");
        Self::spawn_in(directory, configure).await
    }

    /// A server on the database in `directory` (to restart on the same file).
    pub async fn spawn_in(
        directory: tempfile::TempDir,
        configure: impl FnOnce(&mut ServerOptions),
    ) -> Self {
        let clock = Arc::new(ManualClock::new(time::OffsetDateTime::now_utc()));
        let mut options = ServerOptions {
            settings: settings(directory.path()),
            clock: Arc::clone(&clock) as Arc<dyn Clock>,
            run_background_work: false,
            dispatcher: DispatcherSettings::default(),
        };
        configure(&mut options);
        let server = start(options).await.expect("server starts");
        let base = format!("http://{}", server.address);
        herald::install_tls_provider();
        TestApp {
            server,
            base,
            clock,
            http: reqwest::Client::new(),
            directory,
        }
    }

    /// Stops the server and hands back its directory, for a restart on the same file.
    pub async fn stop(self) -> tempfile::TempDir {
        self.server.shutdown().await;
        self.directory
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let (status, _, text) = self
            .call_raw(
                method,
                path,
                key,
                body.map(|body| body.to_string()),
                "application/json",
            )
            .await;
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<String>,
        content_type: &str,
    ) -> (StatusCode, HeaderMap, String) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.expect("request sent");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        (status, headers, text)
    }

    /// Creates a tenant and returns one of its API keys.
    pub async fn tenant(&self, id: &str) -> String {
        let (status, body) = self
            .call(
                "POST",
                "/v1/tenants",
                Some(ADMIN_KEY),
                Some(&json!({"id": id, "name": id})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/tenants/{id}/api-keys"),
                Some(ADMIN_KEY),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["key"].as_str().expect("key").to_owned()
    }

    /// Creates an endpoint; returns its id and secret.
    pub async fn endpoint(&self, tenant: &str, key: &str, body: Value) -> (String, String) {
        let (status, created) = self
            .call(
                "POST",
                &format!("/v1/tenants/{tenant}/endpoints"),
                Some(key),
                Some(&body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        (
            created["id"].as_str().expect("id").to_owned(),
            created["secret"].as_str().expect("secret").to_owned(),
        )
    }

    pub async fn publish(&self, tenant: &str, key: &str, event: &Value) -> Value {
        let (status, body) = self
            .call(
                "POST",
                &format!("/v1/tenants/{tenant}/events"),
                Some(key),
                Some(event),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body
    }

    /// One dispatcher step: claims what is due now and attempts it all.
    pub async fn deliver(&self) -> usize {
        self.server
            .dispatcher
            .run_once()
            .await
            .expect("dispatcher step")
    }

    /// Dispatcher steps until one finds nothing due; returns how many attempts were made.
    /// Bounded, so a delivery that keeps falling due at once cannot hang a test.
    pub async fn deliver_until_idle(&self) -> usize {
        let mut n_attempts = 0;
        for _ in 0..100 {
            let n_step = self.deliver().await;
            if n_step == 0 {
                return n_attempts;
            }
            n_attempts += n_step;
        }
        panic!("deliveries were still due after 100 dispatcher steps");
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The server's (manual) time.
    pub fn now(&self) -> time::OffsetDateTime {
        self.clock.now()
    }

    /// A GET that must answer 200.
    pub async fn get(&self, path: &str, key: &str) -> Value {
        let (status, body) = self.call("GET", path, Some(key), None).await;
        assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
        body
    }

    pub async fn delivery(&self, tenant: &str, key: &str, delivery_id: &str) -> Value {
        self.get(
            &format!("/v1/tenants/{tenant}/deliveries/{delivery_id}"),
            key,
        )
        .await
    }

    pub async fn attempts(&self, tenant: &str, key: &str, delivery_id: &str) -> Vec<Value> {
        let body = self
            .get(
                &format!("/v1/tenants/{tenant}/deliveries/{delivery_id}/attempts"),
                key,
            )
            .await;
        body["data"].as_array().expect("data").clone()
    }

    /// The endpoint's only delivery.
    pub async fn only_delivery(&self, tenant: &str, key: &str, endpoint_id: &str) -> Value {
        let deliveries = self.deliveries(tenant, key, endpoint_id).await;
        assert_eq!(deliveries.len(), 1, "{deliveries:?}");
        deliveries[0].clone()
    }

    /// The events of the tenant's log, from the start, optionally of one type.
    pub async fn events(&self, tenant: &str, key: &str, event_type: Option<&str>) -> Vec<Value> {
        let query = event_type.map_or(String::new(), |event_type| format!("?type={event_type}"));
        let body = self
            .get(&format!("/v1/tenants/{tenant}/events{query}"), key)
            .await;
        body["data"].as_array().expect("data").clone()
    }

    pub async fn deliveries(&self, tenant: &str, key: &str, endpoint_id: &str) -> Vec<Value> {
        let (status, body) = self
            .call(
                "GET",
                &format!("/v1/tenants/{tenant}/endpoints/{endpoint_id}/deliveries"),
                Some(key),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["data"].as_array().expect("data").clone()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    WithHeaders(u16, Vec<(&'static str, String)>),
    /// Waits before answering (a slow endpoint).
    After(Duration, u16),
}

#[derive(Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The Standard Webhooks id: the event's id.
    pub fn webhook_id(&self) -> &str {
        self.header("webhook-id")
    }
}

/// Scripted answers for requests carrying one `webhook-id`, consulted before the general script;
/// attempts that run concurrently arrive in any order, so a test that fails one event says which.
type EventScripts = Arc<Mutex<HashMap<String, VecDeque<Reply>>>>;

#[derive(Clone)]
struct ReceiverState {
    script: Arc<Mutex<VecDeque<Reply>>>,
    by_event: EventScripts,
    arrivals: mpsc::UnboundedSender<Received>,
}

/// A webhook receiver on 127.0.0.1:0. Unscripted requests get 200.
pub struct Receiver {
    pub address: SocketAddr,
    script: Arc<Mutex<VecDeque<Reply>>>,
    by_event: EventScripts,
    arrivals: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    pub async fn start() -> Self {
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let by_event = EventScripts::default();
        let (sender, arrivals) = mpsc::unbounded_channel();
        let state = ReceiverState {
            script: Arc::clone(&script),
            by_event: Arc::clone(&by_event),
            arrivals: sender,
        };
        let app = axum::Router::new().fallback(receive).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            address,
            script,
            by_event,
            arrivals,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Queues answers for the next requests, in order.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.script.lock().expect("script").extend(replies);
    }

    /// Queues answers for the next requests that carry the event `event_id` (`webhook-id`).
    pub fn script_for_event(&self, event_id: &str, replies: impl IntoIterator<Item = Reply>) {
        self.by_event
            .lock()
            .expect("script")
            .entry(event_id.to_owned())
            .or_default()
            .extend(replies);
    }

    /// The next request that arrives, waiting at most 10 s.
    pub async fn next(&mut self) -> Received {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("a request arrives within 10 s")
    }

    /// The next request that arrives within `wait`, if any.
    pub async fn next_within(&mut self, wait: Duration) -> Option<Received> {
        tokio::time::timeout(wait, self.arrivals.recv())
            .await
            .ok()
            .map(|received| received.expect("receiver running"))
    }

    /// The next `n` requests, each waited for as by [`Receiver::next`].
    pub async fn take(&mut self, n: usize) -> Vec<Received> {
        let mut received = Vec::with_capacity(n);
        for _ in 0..n {
            received.push(self.next().await);
        }
        received
    }

    /// Every request that has arrived so far, without waiting.
    pub fn drain(&mut self) -> Vec<Received> {
        let mut received = Vec::new();
        while let Ok(request) = self.arrivals.try_recv() {
            received.push(request);
        }
        received
    }
}

async fn receive(
    axum::extract::State(state): axum::extract::State<ReceiverState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let event_reply = headers
        .get("webhook-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|event_id| {
            state
                .by_event
                .lock()
                .expect("script")
                .get_mut(event_id)
                .and_then(VecDeque::pop_front)
        });
    let reply = event_reply
        .or_else(|| state.script.lock().expect("script").pop_front())
        .unwrap_or(Reply::Status(200));
    let _ = state.arrivals.send(Received {
        path: uri.path().to_owned(),
        headers,
        body,
    });
    let (status, extra_headers) = match reply {
        Reply::Status(status) => (status, Vec::new()),
        Reply::WithHeaders(status, headers) => (status, headers),
        Reply::After(delay, status) => {
            tokio::time::sleep(delay).await;
            (status, Vec::new())
        }
    };
    let mut response = (StatusCode::from_u16(status).expect("status"), "ok").into_response();
    for (name, value) in extra_headers {
        response
            .headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    response
}

// ---- `herald serve` as a child process ----------------------------------------------------------

/// Lines a child process prints, on stdout or stderr, as they come.
pub type Lines = mpsc::UnboundedReceiver<String>;

/// `herald serve` as a real child process on port 0, killed when dropped. Every line it prints
/// arrives on [`HeraldProcess::lines`], so a test waits on what the process says, never on a timer.
pub struct HeraldProcess {
    child: Option<std::process::Child>,
    /// `http://127.0.0.1:PORT`, as the process announced it.
    pub base: String,
    pub lines: Lines,
    /// The lines [`HeraldProcess::wait_for_line`] has read so far.
    pub seen: Vec<String>,
}

impl HeraldProcess {
    /// Starts `herald serve --listen 127.0.0.1:0 --db DATABASE ARGS...` with the admin key
    /// [`ADMIN_KEY`] and `env`, and waits at most 20 s for it to announce its address.
    pub async fn serve(database: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::serve_with_admin_key(database, args, env, Some(ADMIN_KEY)).await
    }

    /// Like [`HeraldProcess::serve`], with `HERALD_ADMIN_KEY` set to `admin_key`, or unset.
    pub async fn serve_with_admin_key(
        database: &std::path::Path,
        args: &[&str],
        env: &[(&str, &str)],
        admin_key: Option<&str>,
    ) -> Self {
        use std::io::BufRead;
        // The test's own reqwest clients need it.
        herald::install_tls_provider();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herald"));
        match admin_key {
            Some(key) => command.env("HERALD_ADMIN_KEY", key),
            None => command.env_remove("HERALD_ADMIN_KEY"),
        };
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--db"])
            .arg(database)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("herald starts");
        let (sender, lines) = mpsc::unbounded_channel();
        let streams: [Box<dyn std::io::Read + Send>; 2] = [
            Box::new(child.stdout.take().expect("stdout")),
            Box::new(child.stderr.take().expect("stderr")),
        ];
        for stream in streams {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let _ = sender.send(line);
                }
            });
        }
        let mut process = HeraldProcess {
            child: Some(child),
            base: String::new(),
            lines,
            seen: Vec::new(),
        };
        let announced = process
            .wait_for_line("Herald listening on ", Duration::from_secs(20))
            .await;
        process.base = announced.trim().trim_end_matches('/').to_owned();
        process
    }

    /// Waits at most `wait` for a line containing `marker`; returns the rest of that line.
    pub async fn wait_for_line(&mut self, marker: &str, wait: Duration) -> String {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no line with {marker:?} within {wait:?}"))
                .unwrap_or_else(|| panic!("herald ended before printing {marker:?}"));
            let rest = line.split(marker).nth(1).map(str::to_owned);
            self.seen.push(line);
            if let Some(rest) = rest {
                return rest;
            }
        }
    }

    /// SIGKILL: the process dies at once, wherever it is, as in a crash or a power cut.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL sent");
            child.wait().expect("reaped");
        }
    }

    /// SIGTERM, then waits at most 15 s for a clean exit; returns every line it printed.
    pub async fn stop(mut self) -> Vec<String> {
        let mut child = self.child.take().expect("running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let exited = tokio::task::spawn_blocking(move || child.wait());
        let status = tokio::time::timeout(Duration::from_secs(15), exited)
            .await
            .expect("herald stops within 15 s of SIGTERM")
            .expect("joined")
            .expect("waited");
        assert!(status.success(), "{status:?}");
        // The output threads end when the pipes close, which ends the channel.
        let mut printed = std::mem::take(&mut self.seen);
        while let Ok(Some(line)) =
            tokio::time::timeout(Duration::from_secs(5), self.lines.recv()).await
        {
            printed.push(line);
        }
        printed
    }

    /// A request to the process with an optional bearer key and JSON body; the status and the
    /// body as JSON (or as a string when it is not JSON).
    pub async fn call(
        &self,
        http: &reqwest::Client,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = http.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request sent");
        let status = StatusCode::from_u16(response.status().as_u16()).expect("status");
        let text = response.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }
}

impl Drop for HeraldProcess {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Receiver {
    /// A receiver on a listener the test made (to choose the moment a port starts accepting).
    pub async fn start_on(listener: tokio::net::TcpListener) -> Self {
        let script = Arc::new(Mutex::new(VecDeque::new()));
        let by_event = EventScripts::default();
        let (sender, arrivals) = mpsc::unbounded_channel();
        let state = ReceiverState {
            script: Arc::clone(&script),
            by_event: Arc::clone(&by_event),
            arrivals: sender,
        };
        let app = axum::Router::new().fallback(receive).with_state(state);
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            address,
            script,
            by_event,
            arrivals,
        }
    }
}
