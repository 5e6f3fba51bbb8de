//! Herald as a cluster: real `herald serve` processes sharing one fresh PostgreSQL database, under
//! continuous load, while a node is killed, while PostgreSQL restarts, and while a reader pages
//! the log through alternating nodes. What the README promises of a cluster is checked end to
//! end: no acknowledged event is lost, a dead node's work is taken over, an unreachable database
//! is answered 503 promptly, and `seq` paging misses nothing.
//!
//! PostgreSQL is `postgres://postgres@127.0.0.1:5432`, managed by `pg_ctlcluster` (one test stops
//! and starts it). When it cannot be reached the tests fail saying so: they never skip, so a
//! machine without PostgreSQL cannot pass them by accident.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::postgres::FreshPostgres;
use crate::support::{ADMIN_KEY, HeraldProcess, Receiver, Reply};

/// A short lease, so a killed node's deliveries are taken over in seconds rather than the
/// default 90 s; it covers the endpoints' 1 s timeout with room to record the attempt.
const LEASE_SECONDS: &str = "5";
const ENDPOINT_TIMEOUT_MS: u64 = 1_000;

/// Events the paging test publishes.
const N_EVENTS: usize = 1_500;

/// How long a publish may take to be answered, even while PostgreSQL is down: the README promises
/// a 503 "within about 5 s", and the pool gives up waiting for a connection after 5 s.
const MOST_ANSWER_TIME: Duration = Duration::from_secs(7);

/// Test databases are named `herald_cluster_<unix seconds>_<random>`. Each test makes its own
/// with `FreshPostgres::create_alone`: one test stops the PostgreSQL server every test on it
/// uses, and the load tests measure what a small machine can do, so each runs alone among the
/// tests on PostgreSQL.
const DATABASE_PREFIX: &str = "herald_cluster";

// ---- PostgreSQL ---------------------------------------------------------------------------------

/// `pg_ctlcluster --skip-systemctl-redirect VERSION main ACTION`, which waits until the server
/// has stopped or has started. Stopping is "fast": open connections are cut at once, as when the
/// database host restarts.
fn pg_ctlcluster(action: &str) -> std::io::Result<std::process::ExitStatus> {
    let version = std::fs::read_dir("/etc/postgresql")?
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .next()
        .ok_or_else(|| std::io::Error::other("no cluster under /etc/postgresql"))?;
    Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", action])
        .stdin(Stdio::null())
        .status()
}

/// PostgreSQL stopped; dropping the guard starts it again, so a failing test never leaves the
/// server down for everything else on this machine.
struct PostgresOutage {
    stopped: bool,
}

impl PostgresOutage {
    async fn begin() -> Self {
        let status = tokio::task::spawn_blocking(|| pg_ctlcluster("stop"))
            .await
            .expect("joined")
            .expect("pg_ctlcluster runs");
        assert!(status.success(), "pg_ctlcluster stop: {status}");
        PostgresOutage { stopped: true }
    }

    /// Starts PostgreSQL and waits (at most 30 s) until it accepts connections.
    async fn end(mut self) {
        let status = tokio::task::spawn_blocking(|| pg_ctlcluster("start"))
            .await
            .expect("joined")
            .expect("pg_ctlcluster runs");
        self.stopped = !status.success();
        assert!(status.success(), "pg_ctlcluster start: {status}");
        let ready = tokio::task::spawn_blocking(|| {
            Command::new("pg_isready")
                .args(["-h", "127.0.0.1", "-p", "5432", "-t", "30"])
                .stdout(Stdio::null())
                .status()
        })
        .await
        .expect("joined")
        .expect("pg_isready runs");
        assert!(ready.success(), "PostgreSQL accepts connections again");
    }
}

impl Drop for PostgresOutage {
    fn drop(&mut self) {
        if self.stopped {
            match pg_ctlcluster("start") {
                Ok(status) if status.success() => {}
                outcome => eprintln!(
                    "could not start PostgreSQL again ({outcome:?}): start it by hand with \
                     `pg_ctlcluster --skip-systemctl-redirect <version> main start`"
                ),
            }
        }
    }
}

// ---- Herald nodes and their tenant --------------------------------------------------------------

/// Starts `n_nodes` Herald processes on `database` at once (so their migrations race, as nodes
/// started together do), each allowed to deliver to loopback.
async fn start_nodes(
    database: &FreshPostgres,
    n_nodes: usize,
    extra: &[&str],
) -> Vec<HeraldProcess> {
    let mut args = vec!["--allow-network".to_owned(), "127.0.0.0/8".to_owned()];
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let starts: Vec<_> = (0..n_nodes)
        .map(|_| {
            let (url, args) = (database.url.clone(), args.clone());
            tokio::spawn(async move {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                HeraldProcess::serve(Path::new(&url), &args, &[]).await
            })
        })
        .collect();
    let mut nodes = Vec::with_capacity(n_nodes);
    for start in starts {
        nodes.push(start.await.expect("the node started"));
    }
    nodes
}

fn http_client() -> reqwest::Client {
    // Bounded, so a request that hangs shows up as a slow answer instead of hanging the test.
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
}

/// Creates tenant `acme` through `node`; returns its API key.
async fn create_tenant(node: &HeraldProcess, http: &reqwest::Client) -> String {
    let tenant = json!({"id": "acme", "name": "Acme"});
    let (status, body) = node
        .call(http, "POST", "/v1/tenants", Some(ADMIN_KEY), Some(&tenant))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = node
        .call(
            http,
            "POST",
            "/v1/tenants/acme/api-keys",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["key"].as_str().expect("key").to_owned()
}

/// An endpoint for every event, with a 1 s timeout, room for the whole load at once, and quick
/// retries, so a delivery that fails once under load is soon tried again.
async fn create_endpoint(
    node: &HeraldProcess,
    http: &reqwest::Client,
    key: &str,
    url: String,
) -> String {
    let endpoint = json!({
        "url": url,
        "filters": ["*"],
        "timeout_ms": ENDPOINT_TIMEOUT_MS,
        "max_concurrency": 1000,
        "retry_schedule_s": vec![1; 20],
    });
    let (status, body) = node
        .call(
            http,
            "POST",
            "/v1/tenants/acme/endpoints",
            Some(key),
            Some(&endpoint),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

/// How many of the endpoint's deliveries are in `state`, counted through `node`.
async fn count_deliveries(
    http: &reqwest::Client,
    node: &str,
    key: &str,
    endpoint_id: &str,
    state: &str,
) -> usize {
    let mut n_deliveries = 0;
    let mut after = String::new();
    for _ in 0..100 {
        let url = format!(
            "{node}/v1/tenants/acme/endpoints/{endpoint_id}/deliveries?state={state}&limit=1000{after}"
        );
        let response = http
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .expect("deliveries are listed");
        let status = response.status();
        let text = response.text().await.expect("body");
        assert_eq!(status.as_u16(), 200, "GET {state} deliveries: {text}");
        let page: Value = serde_json::from_str(&text).expect("JSON");
        n_deliveries += page["data"].as_array().expect("data").len();
        match page["next_after"].as_str() {
            Some(next_after) => after = format!("&after={next_after}"),
            None => return n_deliveries,
        }
    }
    panic!("more than 100 pages of {state} deliveries");
}

/// The event numbered `n`: a OneWelcome password change of one of a few users.
fn event(prefix: &str, n: usize) -> (String, String) {
    let event_id = format!("{prefix}-{n:05}");
    let user_id = format!("00000000-0000-4000-8000-{:012}", n % 7);
    let body =
        json!({"id": event_id, "type": "PasswordUpdatedEvent", "payload": {"userId": user_id}});
    (event_id, body.to_string())
}

/// The tenant's whole log read through `node` by cursor, checking on the way that seqs run
/// 1, 2, 3, ... without a gap or a repeat.
async fn read_log(http: &reqwest::Client, node: &str, key: &str) -> Vec<String> {
    let mut event_ids = Vec::new();
    for _ in 0..1_000 {
        let page = events_page(http, node, key, event_ids.len(), 1_000).await;
        if page.is_empty() {
            return event_ids;
        }
        for (seq, event_id) in page {
            assert_eq!(seq, event_ids.len() + 1, "seqs run on without a gap");
            event_ids.push(event_id);
        }
    }
    panic!("the log did not end within 1,000 pages");
}

/// One page of the log after `after_seq`: (seq, event id) in the order served.
async fn events_page(
    http: &reqwest::Client,
    node: &str,
    key: &str,
    after_seq: usize,
    limit: usize,
) -> Vec<(usize, String)> {
    let url = format!("{node}/v1/tenants/acme/events?after_seq={after_seq}&limit={limit}");
    let response = http
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("the log is served");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(status.as_u16(), 200, "GET events after {after_seq}: {text}");
    let page: Value = serde_json::from_str(&text).expect("JSON");
    page["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|event| {
            let seq = event["seq"].as_u64().expect("seq");
            (
                usize::try_from(seq).expect("seq fits"),
                event["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect()
}

// ---- Publishers ---------------------------------------------------------------------------------

/// One answer a publisher got (or did not get).
#[derive(Debug, Clone)]
struct Answer {
    /// `None` when no HTTP answer came: the node died under the request, or it timed out.
    status: Option<u16>,
    has_retry_after: bool,
    sent_at: Instant,
    answered_at: Instant,
}

/// Counts the test waits on, so it waits on progress, not on a timer.
#[derive(Debug, Default, Clone, Copy)]
struct Progress {
    n_accepted: usize,
    n_unavailable: usize,
}

/// Publishers spreading events over the nodes, and what they were answered.
struct Load {
    http: reqwest::Client,
    nodes: Vec<String>,
    /// Cleared for a node once the test has killed it, so new events go elsewhere.
    alive: Vec<AtomicBool>,
    key: String,
    event_prefix: &'static str,
    /// A pause between one publisher's events; zero for as fast as they are answered.
    pace: Duration,
    /// No publisher goes beyond this many events in all, whatever the test waits for.
    max_events: usize,
    next_n: AtomicUsize,
    running: AtomicBool,
    /// Event ids answered 202, each once.
    accepted: Mutex<Vec<String>>,
    answers: Mutex<Vec<Answer>>,
    progress: watch::Sender<Progress>,
}

/// Attempts at one event before its publisher gives up and fails the test: enough to ride out a
/// restart of PostgreSQL at one attempt a second.
const MOST_TRIES_PER_EVENT: usize = 60;

impl Load {
    fn new(
        nodes: &[HeraldProcess],
        key: &str,
        event_prefix: &'static str,
        pace: Duration,
        max_events: usize,
    ) -> Arc<Self> {
        Arc::new(Load {
            http: http_client(),
            nodes: nodes.iter().map(|node| node.base.clone()).collect(),
            alive: nodes.iter().map(|_| AtomicBool::new(true)).collect(),
            key: key.to_owned(),
            event_prefix,
            pace,
            max_events,
            next_n: AtomicUsize::new(0),
            running: AtomicBool::new(true),
            accepted: Mutex::new(Vec::new()),
            answers: Mutex::new(Vec::new()),
            progress: watch::Sender::new(Progress::default()),
        })
    }

    /// Starts `n_publishers` publishers.
    fn start(self: &Arc<Self>, n_publishers: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n_publishers)
            .map(|_| tokio::spawn(Arc::clone(self).publish_until_stopped()))
            .collect()
    }

    /// The node for an event's `attempt_idx`th attempt: events go round the live nodes, and a
    /// retry goes to the next one.
    fn node(&self, n: usize, attempt_idx: usize) -> &str {
        let n_nodes = self.nodes.len();
        (0..n_nodes)
            .map(|offset| (n + attempt_idx + offset) % n_nodes)
            .find(|&node_idx| self.alive[node_idx].load(Ordering::SeqCst))
            .map(|node_idx| self.nodes[node_idx].as_str())
            .expect("a live node")
    }

    /// New events, each published until it is answered 202, as a producer that must not lose
    /// one would: after a 503 it waits as `Retry-After` says; after no answer at all (its node
    /// died) it sends the same event id to the next node at once, so an event whose outcome was
    /// unknown is stored once.
    async fn publish_until_stopped(self: Arc<Self>) {
        while self.running.load(Ordering::SeqCst) {
            let n = self.next_n.fetch_add(1, Ordering::SeqCst);
            if n >= self.max_events {
                return;
            }
            let (event_id, body) = event(self.event_prefix, n);
            let mut is_accepted = false;
            for attempt_idx in 0..MOST_TRIES_PER_EVENT {
                let node = self.node(n, attempt_idx);
                let sent_at = Instant::now();
                let response = self
                    .http
                    .post(format!("{node}/v1/tenants/acme/events"))
                    .bearer_auth(&self.key)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let mut answer = Answer {
                    status: None,
                    has_retry_after: false,
                    sent_at,
                    answered_at: Instant::now(),
                };
                let Ok(response) = response else {
                    self.answers.lock().expect("answers").push(answer);
                    continue;
                };
                answer.status = Some(response.status().as_u16());
                answer.has_retry_after = response.headers().contains_key("retry-after");
                self.answers.lock().expect("answers").push(answer);
                match response.status().as_u16() {
                    202 => {
                        self.accepted
                            .lock()
                            .expect("accepted")
                            .push(event_id.clone());
                        self.progress
                            .send_modify(|progress| progress.n_accepted += 1);
                        is_accepted = true;
                        break;
                    }
                    503 => {
                        self.progress
                            .send_modify(|progress| progress.n_unavailable += 1);
                        // Herald says `Retry-After: 1`; a producer honours it.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    status => {
                        let text = response.text().await.unwrap_or_default();
                        panic!("publishing {event_id} to {node}: {status} {text}");
                    }
                }
            }
            assert!(
                is_accepted,
                "{event_id} was not accepted in {MOST_TRIES_PER_EVENT} attempts"
            );
            if !self.pace.is_zero() {
                tokio::time::sleep(self.pace).await;
            }
        }
    }

    /// Waits at most `within` until `done` holds of the progress.
    async fn wait_for(&self, what: &str, within: Duration, done: impl FnMut(&Progress) -> bool) {
        let mut progress = self.progress.subscribe();
        let is_done = tokio::time::timeout(within, progress.wait_for(done))
            .await
            .is_ok_and(|waited| waited.is_ok());
        let now = *self.progress.borrow();
        assert!(is_done, "{what} within {within:?}; got to {now:?}");
    }

    fn n_accepted(&self) -> usize {
        self.progress.borrow().n_accepted
    }

    /// Stops the publishers, lets each finish the event it holds, and returns the accepted ids.
    async fn stop(&self, publishers: Vec<tokio::task::JoinHandle<()>>) -> BTreeSet<String> {
        self.running.store(false, Ordering::SeqCst);
        for publisher in publishers {
            tokio::time::timeout(Duration::from_secs(60), publisher)
                .await
                .expect("a publisher finishes its event within 60 s")
                .expect("the publisher ran without failing");
        }
        let accepted = self.accepted.lock().expect("accepted");
        let unique: BTreeSet<String> = accepted.iter().cloned().collect();
        assert_eq!(unique.len(), accepted.len(), "each event is accepted once");
        unique
    }

    fn answers(&self) -> Vec<Answer> {
        self.answers.lock().expect("answers").clone()
    }
}

// ---- Arrivals -----------------------------------------------------------------------------------

/// Deliveries received, by event id (the `webhook-id` header).
#[derive(Debug, Default)]
struct Arrivals {
    by_event: BTreeMap<String, usize>,
}

impl Arrivals {
    /// Counts every request that has reached the receiver so far.
    fn take_arrived(&mut self, receiver: &mut Receiver) {
        for received in receiver.drain() {
            self.count(&received);
        }
    }

    fn count(&mut self, received: &crate::support::Received) {
        *self
            .by_event
            .entry(received.webhook_id().to_owned())
            .or_default() += 1;
    }

    /// Waits, driven by arrivals, until every event in `expected` has arrived at least once;
    /// fails naming the lost ones when `within` runs out first.
    async fn wait_for_all(
        &mut self,
        receiver: &mut Receiver,
        expected: &BTreeSet<String>,
        within: Duration,
    ) {
        let deadline = Instant::now() + within;
        loop {
            self.take_arrived(receiver);
            let lost: Vec<&String> = expected
                .iter()
                .filter(|event_id| !self.by_event.contains_key(*event_id))
                .collect();
            if lost.is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.next_within(left).await {
                Some(received) => self.count(&received),
                None => panic!(
                    "{} of {} acknowledged events never reached the endpoint within {within:?}, \
                     e.g. {:?}",
                    lost.len(),
                    expected.len(),
                    &lost[..lost.len().min(20)]
                ),
            }
        }
    }

    /// Waits, driven by arrivals, until one of `event_ids` has arrived a second time.
    async fn wait_for_a_repeat(
        &mut self,
        receiver: &mut Receiver,
        event_ids: &BTreeSet<String>,
        within: Duration,
    ) {
        let deadline = Instant::now() + within;
        loop {
            self.take_arrived(receiver);
            if event_ids
                .iter()
                .any(|event_id| self.by_event.get(event_id).is_some_and(|n| *n > 1))
            {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match receiver.next_within(left).await {
                Some(received) => self.count(&received),
                None => panic!(
                    "none of the {} deliveries at the endpoint when the node was killed came \
                     again within {within:?}: its leased work was not taken over",
                    event_ids.len()
                ),
            }
        }
    }

    /// Counts arrivals until the endpoint has nothing left to send (no delivery pending,
    /// scheduled or leased), so no further duplicate can come; looks after each arrival, or
    /// after half a second without one. Returns how many deliveries are recorded as delivered.
    async fn wait_until_settled(
        &mut self,
        receiver: &mut Receiver,
        (http, node, key, endpoint_id): (&reqwest::Client, &str, &str, &str),
        within: Duration,
    ) -> usize {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            self.take_arrived(receiver);
            let mut n_unsettled = 0;
            for state in ["pending", "scheduled", "in_flight"] {
                n_unsettled += count_deliveries(http, node, key, endpoint_id, state).await;
            }
            if n_unsettled == 0 {
                self.take_arrived(receiver);
                return count_deliveries(http, node, key, endpoint_id, "delivered").await;
            }
            if let Some(received) = receiver.next_within(Duration::from_millis(500)).await {
                self.count(&received);
            }
        }
        panic!("deliveries were still pending, scheduled or leased after {within:?}");
    }

    fn n_deliveries(&self) -> usize {
        self.by_event.values().sum()
    }

    fn n_duplicates(&self) -> usize {
        self.n_deliveries() - self.by_event.len()
    }
}

// ---- The tests ----------------------------------------------------------------------------------

/// Three nodes share the load; one is killed with SIGKILL in the middle of it. Every event
/// answered 202 (by any node, the dead one included) reaches the endpoint, the deliveries the
/// dead node was holding are sent again by the others once its lease expires, and the log holds
/// every event once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_under_load_loses_no_acknowledged_event() {
    let database = FreshPostgres::create_alone(DATABASE_PREFIX).await;
    let started = Instant::now();
    let mut receiver = Receiver::start().await;
    // The endpoint holds every request 300 ms before answering, so at any moment each node has
    // deliveries under way: the kill always catches some, sent but never recorded.
    receiver.script(std::iter::repeat_n(
        Reply::After(Duration::from_millis(300), 200),
        10_000,
    ));
    let mut nodes = start_nodes(&database, 3, &["--lease-seconds", LEASE_SECONDS]).await;
    let http = http_client();
    let key = create_tenant(&nodes[0], &http).await;
    let endpoint_id = create_endpoint(&nodes[1], &http, &key, receiver.url("/hooks")).await;

    let load = Load::new(&nodes, &key, "kill", Duration::from_millis(10), 5_000);
    let publishers = load.start(4);
    load.wait_for(
        "200 events accepted before the kill",
        Duration::from_secs(30),
        |progress| progress.n_accepted >= 200,
    )
    .await;
    let killed_idx = 2;
    nodes[killed_idx].kill();
    let killed_at = Instant::now();
    load.alive[killed_idx].store(false, Ordering::SeqCst);
    // What had reached the endpoint by the kill. The killed node was holding some of it, sent but
    // never recorded as delivered.
    let mut arrivals = Arrivals::default();
    arrivals.take_arrived(&mut receiver);
    let arrived_before_kill: BTreeSet<String> = arrivals.by_event.keys().cloned().collect();
    let n_accepted_at_kill = load.n_accepted();
    load.wait_for(
        "200 more events accepted after the kill",
        Duration::from_secs(30),
        |progress| progress.n_accepted >= n_accepted_at_kill + 200,
    )
    .await;
    let accepted = load.stop(publishers).await;

    arrivals
        .wait_for_all(&mut receiver, &accepted, Duration::from_secs(40))
        .await;
    let all_arrived_after_kill = killed_at.elapsed();
    // The killed node's leases run out 5 s after its last claims; then the others send what it
    // held again.
    arrivals
        .wait_for_a_repeat(&mut receiver, &arrived_before_kill, Duration::from_secs(30))
        .await;
    let first_taken_over_after_kill = killed_at.elapsed();
    let n_delivered = arrivals
        .wait_until_settled(
            &mut receiver,
            (&http, &nodes[0].base, &key, &endpoint_id),
            Duration::from_secs(30),
        )
        .await;
    let n_taken_over = arrived_before_kill
        .iter()
        .filter(|event_id| arrivals.by_event[*event_id] > 1)
        .count();
    let n_unanswered = load
        .answers()
        .iter()
        .filter(|answer| answer.status.is_none())
        .count();

    let stored = read_log(&http, &nodes[0].base, &key).await;
    let stored_ids: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored_ids.len(), stored.len(), "each event is stored once");
    assert_eq!(
        stored_ids, accepted,
        "the log holds exactly the accepted events"
    );
    assert_eq!(
        n_delivered,
        accepted.len(),
        "every delivery is recorded delivered"
    );
    println!(
        "cluster kill: 3 nodes, 1 SIGKILLed after {n_accepted_at_kill} acknowledgements \
         ({n_unanswered} publishes cut off by it); {} events acknowledged, {} stored, lost 0; all \
         arrived {:.1} s after the kill; its held deliveries sent again from {:.1} s after it; \
         {} deliveries, {} duplicates ({n_taken_over} taken over from the killed node); \
         {:.1} s in all",
        accepted.len(),
        stored.len(),
        all_arrived_after_kill.as_secs_f64(),
        first_taken_over_after_kill.as_secs_f64(),
        arrivals.n_deliveries(),
        arrivals.n_duplicates(),
        started.elapsed().as_secs_f64()
    );
    drop(nodes);
    database.remove().await;
}

/// PostgreSQL stops while two nodes take publishes and starts again. While it is down, every
/// publish is answered 503 with `Retry-After`, promptly; once it is back the nodes reconnect by
/// themselves, publishing succeeds again, and every event answered 202 is delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_restart_under_load_is_answered_503_and_loses_nothing() {
    let database = FreshPostgres::create_alone(DATABASE_PREFIX).await;
    let started = Instant::now();
    let mut receiver = Receiver::start().await;
    // A short lease: a delivery sent just as the database went away cannot be recorded, and is
    // sent again once its lease runs out.
    let nodes = start_nodes(&database, 2, &["--lease-seconds", LEASE_SECONDS]).await;
    let http = http_client();
    let key = create_tenant(&nodes[0], &http).await;
    let endpoint_id = create_endpoint(&nodes[1], &http, &key, receiver.url("/hooks")).await;

    let load = Load::new(&nodes, &key, "restart", Duration::from_millis(20), 5_000);
    let publishers = load.start(2);
    load.wait_for(
        "40 events accepted before the outage",
        Duration::from_secs(30),
        |progress| progress.n_accepted >= 40,
    )
    .await;
    let outage = PostgresOutage::begin().await;
    let stopped_at = Instant::now();
    load.wait_for(
        "6 publishes answered 503 during the outage",
        Duration::from_secs(30),
        |progress| progress.n_unavailable >= 6,
    )
    .await;
    let restarting_at = Instant::now();
    outage.end().await;
    let restarted_at = Instant::now();
    let n_accepted_at_restart = load.n_accepted();
    load.wait_for(
        "40 events accepted after the restart",
        Duration::from_secs(30),
        |progress| progress.n_accepted >= n_accepted_at_restart + 40,
    )
    .await;
    let accepted = load.stop(publishers).await;
    let answers = load.answers();

    let slowest = answers
        .iter()
        .map(|answer| answer.answered_at - answer.sent_at)
        .max()
        .expect("answers");
    assert!(
        slowest <= MOST_ANSWER_TIME,
        "every publish is answered within {MOST_ANSWER_TIME:?}, even with the database down; the \
         slowest took {slowest:?}"
    );
    assert!(
        answers.iter().all(|answer| answer.status.is_some()),
        "every publish got an HTTP answer"
    );
    let unavailable: Vec<&Answer> = answers
        .iter()
        .filter(|answer| answer.status == Some(503))
        .collect();
    assert!(
        unavailable.iter().all(|answer| answer.has_retry_after),
        "a 503 says when to retry"
    );
    let accepted_while_down = answers
        .iter()
        .filter(|answer| {
            answer.status == Some(202)
                && answer.sent_at > stopped_at
                && answer.answered_at < restarting_at
        })
        .count();
    assert_eq!(
        accepted_while_down, 0,
        "nothing is accepted while the database is down"
    );
    let first_accepted_after = answers
        .iter()
        .filter(|answer| answer.status == Some(202) && answer.sent_at > restarted_at)
        .map(|answer| answer.answered_at - restarted_at)
        .min()
        .expect("publishes are accepted after the restart");

    let mut arrivals = Arrivals::default();
    arrivals
        .wait_for_all(&mut receiver, &accepted, Duration::from_secs(40))
        .await;
    // A delivery sent as the database went away could not be recorded; it is sent again when
    // its lease runs out, and only then is nothing left to send.
    let n_delivered = arrivals
        .wait_until_settled(
            &mut receiver,
            (&http, &nodes[0].base, &key, &endpoint_id),
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(
        n_delivered,
        accepted.len(),
        "every delivery is recorded delivered"
    );
    let stored = read_log(&http, &nodes[1].base, &key).await;
    let stored_ids: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored_ids.len(), stored.len(), "each event is stored once");
    assert_eq!(
        stored_ids, accepted,
        "the log holds exactly the accepted events"
    );
    println!(
        "cluster restart: 2 nodes; PostgreSQL down {:.1} s; {} publishes answered 503 (slowest \
         answer {:.2} s), first 202 {:.2} s after it was back; {} events acknowledged, lost 0, {} \
         deliveries, {} duplicates; {:.1} s in all",
        (restarted_at - stopped_at).as_secs_f64(),
        unavailable.len(),
        slowest.as_secs_f64(),
        first_accepted_after.as_secs_f64(),
        accepted.len(),
        arrivals.n_deliveries(),
        arrivals.n_duplicates(),
        started.elapsed().as_secs_f64()
    );
    drop(nodes);
    database.remove().await;
}

/// Publishers on two nodes append to one tenant's log while a reader pages it by `after_seq`,
/// each page from the other node. The reader sees seq 1, 2, 3, ... each once, in order, never
/// one committed behind its cursor, and in the end exactly the events that were accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_paging_across_nodes_sees_every_seq_once_in_order() {
    let database = FreshPostgres::create_alone(DATABASE_PREFIX).await;
    let started = Instant::now();
    let nodes = start_nodes(&database, 2, &[]).await;
    let http = http_client();
    let key = create_tenant(&nodes[0], &http).await;

    let load = Load::new(&nodes, &key, "seq", Duration::ZERO, N_EVENTS);
    let publishers = load.start(6);
    let reader = {
        let (http, key, load) = (http.clone(), key.clone(), Arc::clone(&load));
        let bases: Vec<String> = nodes.iter().map(|node| node.base.clone()).collect();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut event_ids: Vec<String> = Vec::new();
            let mut n_pages_during_load = 0;
            for page_idx in 0..100_000 {
                assert!(Instant::now() < deadline, "the reader finished within 60 s");
                // Read before asking for the page: an empty page after the load ended is final.
                let load_ended = load.n_accepted() == N_EVENTS;
                let node = &bases[page_idx % bases.len()];
                let page = events_page(&http, node, &key, event_ids.len(), 20).await;
                if page.is_empty() && load_ended {
                    return (event_ids, n_pages_during_load);
                }
                if !page.is_empty() && !load_ended {
                    n_pages_during_load += 1;
                }
                for (seq, event_id) in page {
                    assert_eq!(
                        seq,
                        event_ids.len() + 1,
                        "after seq {}, node {node} served seq {seq} ({event_id})",
                        event_ids.len()
                    );
                    event_ids.push(event_id);
                }
            }
            panic!("the reader did not reach the end within 100,000 pages");
        })
    };
    load.wait_for(
        "every event accepted",
        Duration::from_secs(60),
        |progress| progress.n_accepted >= N_EVENTS,
    )
    .await;
    let accepted = load.stop(publishers).await;
    let (read, n_pages_during_load) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader finishes")
        .expect("the reader saw every seq once, in order");

    let read_ids: BTreeSet<String> = read.iter().cloned().collect();
    assert_eq!(read_ids.len(), read.len(), "each event is read once");
    assert_eq!(
        read_ids, accepted,
        "the reader saw exactly the accepted events"
    );
    assert!(
        n_pages_during_load >= 10,
        "the reader paged while the publishers ran ({n_pages_during_load} pages)"
    );
    let n_publish_errors = load
        .answers()
        .iter()
        .filter(|answer| answer.status != Some(202))
        .count();
    assert_eq!(n_publish_errors, 0, "every publish was accepted at once");
    println!(
        "cluster seq: 2 nodes, 6 publishers, {} events accepted; the reader paged {} of them in \
         {n_pages_during_load} pages while publishing went on, seqs 1..={} each once in order; \
         {:.1} s",
        accepted.len(),
        read.len(),
        read.len(),
        started.elapsed().as_secs_f64()
    );
    drop(nodes);
    database.remove().await;
}

/// A key revoked through one node is refused by the other on the very next request, though that
/// node had just accepted it: no node keeps keys in memory. The same for an admin key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_node_is_refused_by_every_node_at_once() {
    let database = FreshPostgres::create_alone(DATABASE_PREFIX).await;
    let nodes = start_nodes(&database, 2, &[]).await;
    let http = http_client();
    let tenant_key = create_tenant(&nodes[0], &http).await;
    let (status, made) = nodes[0]
        .call(&http, "POST", "/v1/admin-keys", Some(ADMIN_KEY), None)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let admin_key = made["key"].as_str().expect("key").to_owned();
    let status_on = |node: usize, path: &'static str, key: String| {
        let (nodes, http) = (&nodes, &http);
        async move {
            nodes[node]
                .call(http, "GET", path, Some(&key), None)
                .await
                .0
        }
    };
    for node in 0..2 {
        assert_eq!(
            status_on(node, "/v1/tenants/acme", tenant_key.clone()).await,
            StatusCode::OK
        );
        assert_eq!(
            status_on(node, "/v1/tenants", admin_key.clone()).await,
            StatusCode::OK
        );
    }
    let (_, listed) = nodes[0]
        .call(
            &http,
            "GET",
            "/v1/tenants/acme/api-keys",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    let tenant_key_id = listed["data"][0]["id"].as_str().expect("id").to_owned();
    for (path, key) in [
        (
            format!("/v1/tenants/acme/api-keys/{tenant_key_id}"),
            &tenant_key,
        ),
        (
            format!("/v1/admin-keys/{}", made["id"].as_str().expect("id")),
            &admin_key,
        ),
    ] {
        let (status, answer) = nodes[0]
            .call(&http, "DELETE", &path, Some(ADMIN_KEY), None)
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{path}: {answer}");
        for node in [1, 0] {
            let (status, _) = nodes[node]
                .call(&http, "GET", "/v1/tenants/acme", Some(key), None)
                .await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "node {node} after {path}");
        }
    }
    drop(nodes);
    database.remove().await;
}

/// Hook changes made through one node reach the other: a new fail-closed hook starts refusing
/// there, a disabled or deleted one stops being called there, without a restart. A custom type
/// registered on one node can be published on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_and_custom_type_changes_on_one_node_are_seen_by_the_other() {
    let database = FreshPostgres::create_alone(DATABASE_PREFIX).await;
    let nodes = start_nodes(&database, 2, &[]).await;
    let http = http_client();
    let key = create_tenant(&nodes[0], &http).await;
    let pre_create: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../herald-catalog/tests/fixtures/authgear/envelopes/user.pre_create.json"),
        )
        .expect("seed"),
    )
    .expect("JSON");
    // Node 1's answer, asked again until it is `allowed` or 10 s have passed: the change reaches
    // node 1 as a notice, a few milliseconds after node 0 committed it.
    let node_1_answers = |allowed: bool| {
        let (nodes, http, key, event) = (&nodes, &http, &key, &pre_create);
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let (status, decision) = nodes[1]
                    .call(
                        http,
                        "POST",
                        "/v1/tenants/acme/blocking-events",
                        Some(key),
                        Some(event),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{decision}");
                if decision["is_allowed"] == allowed {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "node 1 still answers {decision} 10 s after the change on node 0"
                );
                tokio::task::yield_now().await;
            }
        }
    };
    // Node 1 reads (and caches) the empty chain first.
    node_1_answers(true).await;

    // A fail-closed hook nobody answers on: the operation is refused once node 1 knows of it.
    let hook = json!({"event_type": "user.pre_create", "url": "http://127.0.0.1:9/hook"});
    let (status, created) = nodes[0]
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/hooks",
            Some(&key),
            Some(&hook),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let hook_path = format!(
        "/v1/tenants/acme/hooks/{}",
        created["id"].as_str().expect("id")
    );
    node_1_answers(false).await;

    let (status, _) = nodes[0]
        .call(
            &http,
            "PATCH",
            &hook_path,
            Some(&key),
            Some(&json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    node_1_answers(true).await;

    let (status, _) = nodes[0]
        .call(
            &http,
            "PATCH",
            &hook_path,
            Some(&key),
            Some(&json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    node_1_answers(false).await;
    let (status, _) = nodes[0]
        .call(&http, "DELETE", &hook_path, Some(&key), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    node_1_answers(true).await;

    let badge_awarded = json!({
        "type": "acme.badge.awarded",
        "description": "A badge was awarded.",
        "schema": {"type": "object", "required": ["user_id"]},
        "example": {"user_id": "u-1"}
    });
    let (status, registered) = nodes[0]
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/catalog",
            Some(&key),
            Some(&badge_awarded),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    let event = json!({"type": "acme.badge.awarded", "payload": {"user_id": "u-1"}});
    let (status, published) = nodes[1]
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/events",
            Some(&key),
            Some(&event),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{published}");
    drop(nodes);
    database.remove().await;
}

/// `--lease-seconds` is refused below 2 s, and when an existing endpoint's timeout (plus the 1 s
/// it takes to record an attempt) would outlast it; otherwise the node starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_shorter_than_an_endpoint_timeout_is_refused() {
    let database = FreshPostgres::create_alone(DATABASE_PREFIX).await;
    let (succeeded, output) = serve_until_exit(&database, "1");
    assert!(!succeeded, "{output}");
    assert!(
        output.contains("--lease-seconds must be at least 2"),
        "{output}"
    );

    let nodes = start_nodes(&database, 1, &[]).await;
    let http = http_client();
    let key = create_tenant(&nodes[0], &http).await;
    // The default endpoint timeout, 15 s.
    let endpoint = json!({"url": "http://127.0.0.1:9/hooks", "filters": ["*"]});
    let (status, body) = nodes[0]
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/endpoints",
            Some(&key),
            Some(&endpoint),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let endpoint_id = body["id"].as_str().expect("id");

    let (succeeded, output) = serve_until_exit(&database, "15");
    assert!(!succeeded, "{output}");
    assert!(
        output.contains(&format!("endpoint {endpoint_id} has a 15000 ms timeout")),
        "{output}"
    );
    let long_enough = start_nodes(&database, 1, &["--lease-seconds", "16"]).await;
    drop(long_enough);
    drop(nodes);
    database.remove().await;
}

/// Runs `herald serve --lease-seconds LEASE` on `database`, expecting it to exit by itself within
/// 20 s; returns whether it succeeded and everything it printed.
fn serve_until_exit(database: &FreshPostgres, lease_seconds: &str) -> (bool, String) {
    let child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", &database.url])
        .args(["--lease-seconds", lease_seconds])
        .env("HERALD_ADMIN_KEY", ADMIN_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let pid = child.id();
    let (sender, exited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(child.wait_with_output());
    });
    let Ok(output) = exited.recv_timeout(Duration::from_secs(20)) else {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        panic!("herald serve --lease-seconds {lease_seconds} kept running; it should refuse");
    };
    let output = output.expect("waited");
    let mut printed = String::from_utf8_lossy(&output.stdout).into_owned();
    printed.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.success(), printed)
}
