//! Crash safety: `herald serve` as a real process, killed with SIGKILL at random moments while
//! producers publish continuously, restarted on the same SQLite file each time. Every event that
//! was answered 202 must be in the log afterwards and must reach the endpoint at least once.
//!
//! The kill moments come from a seeded generator (printed; set `HERALD_CRASH_SEED` to repeat a
//! run): each kill waits for a random number of further acknowledgements, so it lands while
//! publishes and deliveries are in flight. Producers retry an unanswered publish with the same
//! event id on the next process, as a real producer would, so idempotency across a crash is
//! exercised too. Duplicated deliveries are allowed (at-least-once) and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::support::postgres::FreshPostgres;
use crate::support::{ADMIN_KEY, HeraldProcess, Received, Receiver};

const N_KILLS: usize = 6;
const N_PRODUCERS: usize = 4;
const ALLOW_LOOPBACK: [&str; 2] = ["--allow-network", "127.0.0.0/8"];

/// The seed of this run: `HERALD_CRASH_SEED`, or one drawn now.
fn seed() -> u64 {
    std::env::var("HERALD_CRASH_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().r#gen())
}

/// The event with sequence number `n`: a OneWelcome password change of one of a few users.
fn event(n: usize) -> (String, Value) {
    let event_id = format!("crash-{n:05}");
    let user_id = format!("00000000-0000-4000-8000-{:012}", n % 7);
    let body =
        json!({"id": event_id, "type": "PasswordUpdatedEvent", "payload": {"userId": user_id}});
    (event_id, body)
}

/// What the producers share: where Herald is now, and what it acknowledged.
struct Producers {
    /// The base URL of the running process; changes at every restart.
    base: watch::Receiver<String>,
    key: String,
    next_n: AtomicUsize,
    running: AtomicBool,
    acknowledged: Mutex<Vec<String>>,
    /// Bumped at every acknowledgement, so the test waits on progress, not on a timer.
    n_acknowledged: watch::Sender<usize>,
}

/// One producer: publishes new events until told to stop, each until it is answered 202.
async fn produce(shared: Arc<Producers>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut base = shared.base.clone();
    while shared.running.load(Ordering::SeqCst) {
        let (event_id, body) = event(shared.next_n.fetch_add(1, Ordering::SeqCst));
        loop {
            let url = format!("{}/v1/tenants/acme/events", *base.borrow_and_update());
            let answer = http
                .post(url)
                .bearer_auth(&shared.key)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == StatusCode::ACCEPTED => {
                    shared
                        .acknowledged
                        .lock()
                        .expect("acknowledged")
                        .push(event_id);
                    shared.n_acknowledged.send_modify(|n| *n += 1);
                    break;
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    panic!("publishing {event_id}: {status} {text}");
                }
                // Killed under us: the outcome is unknown, so the same event goes again once a
                // new process is up (or, if none comes within the wait, to the same one).
                Err(_) => {
                    let _ = tokio::time::timeout(Duration::from_millis(500), base.changed()).await;
                }
            }
        }
    }
}

/// Counts one arrival of its event.
fn record(received: Received, arrivals: &mut BTreeMap<String, usize>) {
    *arrivals
        .entry(received.webhook_id().to_owned())
        .or_default() += 1;
}

/// Every event of the tenant's log, by cursor.
async fn stored_event_ids(herald: &HeraldProcess, key: &str) -> Vec<(i64, String)> {
    let http = reqwest::Client::new();
    let mut stored = Vec::new();
    let mut after_seq = 0;
    loop {
        let path = format!("/v1/tenants/acme/events?after_seq={after_seq}&limit=1000");
        let (status, page) = herald.call(&http, "GET", &path, Some(key), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let events = page["data"].as_array().expect("data");
        if events.is_empty() {
            return stored;
        }
        for event in events {
            stored.push((
                event["seq"].as_i64().expect("seq"),
                event["id"].as_str().expect("id").to_owned(),
            ));
        }
        after_seq = page["next_after_seq"].as_i64().expect("cursor");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_herald_loses_no_acknowledged_event() {
    let directory = tempfile::tempdir().expect("tempdir");
    let database = directory.path().join("herald.db");
    crash_scenario("SQLite", &database, None).await;
}

/// The same on PostgreSQL, on a fresh database. Unlike SQLite, a killed process's in-flight
/// deliveries are only taken again once their lease runs out, so the lease is short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_herald_on_postgresql_loses_no_acknowledged_event() {
    let database = FreshPostgres::create("herald_crash").await;
    crash_scenario(
        "PostgreSQL",
        Path::new(&database.url),
        Some(Lease {
            seconds: "3",
            endpoint_timeout_ms: 1_000,
        }),
    )
    .await;
    database.remove().await;
}

/// A lease shorter than the default, and an endpoint timeout it covers (with the 1 s Herald
/// takes to record an attempt), so deliveries a killed process held are retaken in seconds.
struct Lease {
    seconds: &'static str,
    endpoint_timeout_ms: u64,
}

/// Publishes continuously to `herald serve --db DATABASE`, SIGKILLs it `N_KILLS` times at random
/// moments and restarts it on the same database; then checks that every acknowledged event is
/// stored once and delivered at least once.
async fn crash_scenario(backend: &str, database: &Path, lease: Option<Lease>) {
    let started = Instant::now();
    let seed = seed();
    println!(
        "crash test ({backend}) seed: {seed} (set HERALD_CRASH_SEED={seed} to repeat the kill \
         pattern)"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let mut serve_args = ALLOW_LOOPBACK.to_vec();
    if let Some(lease) = &lease {
        serve_args.extend(["--lease-seconds", lease.seconds]);
    }
    let mut receiver = Receiver::start().await;

    let mut herald = HeraldProcess::serve(database, &serve_args, &[]).await;
    let http = reqwest::Client::new();
    let (status, body) = herald
        .call(
            &http,
            "POST",
            "/v1/tenants",
            Some(ADMIN_KEY),
            Some(&json!({"id": "acme", "name": "Acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = herald
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/api-keys",
            Some(ADMIN_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let key = body["key"].as_str().expect("key").to_owned();
    let mut endpoint = json!({"url": receiver.url("/hooks"), "filters": ["*"]});
    if let Some(lease) = &lease {
        endpoint["timeout_ms"] = json!(lease.endpoint_timeout_ms);
    }
    let (status, body) = herald
        .call(
            &http,
            "POST",
            "/v1/tenants/acme/endpoints",
            Some(&key),
            Some(&endpoint),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (base_sender, base) = watch::channel(herald.base.clone());
    let (n_acknowledged, mut acknowledgements) = watch::channel(0);
    let shared = Arc::new(Producers {
        base,
        key: key.clone(),
        next_n: AtomicUsize::new(0),
        running: AtomicBool::new(true),
        acknowledged: Mutex::new(Vec::new()),
        n_acknowledged,
    });
    let producers: Vec<_> = (0..N_PRODUCERS)
        .map(|_| tokio::spawn(produce(Arc::clone(&shared))))
        .collect();

    let mut arrivals: BTreeMap<String, usize> = BTreeMap::new();
    for kill_idx in 0..N_KILLS {
        // A random number of further acknowledgements, then the kill: publishes, commits and
        // deliveries are under way at that moment.
        let target = *acknowledgements.borrow() + rng.gen_range(5..60);
        tokio::time::timeout(
            Duration::from_secs(20),
            acknowledgements.wait_for(|n| *n >= target),
        )
        .await
        .unwrap_or_else(|_| panic!("kill {kill_idx}: {target} acknowledgements within 20 s"))
        .expect("producers running");
        herald.kill();
        for received in receiver.drain() {
            record(received, &mut arrivals);
        }
        herald = HeraldProcess::serve(database, &serve_args, &[]).await;
        base_sender.send_replace(herald.base.clone());
    }
    // A last stretch on the final process, then the producers finish what they hold.
    let target = *acknowledgements.borrow() + 20;
    tokio::time::timeout(
        Duration::from_secs(20),
        acknowledgements.wait_for(|n| *n >= target),
    )
    .await
    .expect("acknowledgements after the last restart")
    .expect("producers running");
    shared.running.store(false, Ordering::SeqCst);
    for producer in producers {
        tokio::time::timeout(Duration::from_secs(20), producer)
            .await
            .expect("producers stop")
            .expect("producer ran");
    }
    let acknowledged: BTreeSet<String> = shared
        .acknowledged
        .lock()
        .expect("acknowledged")
        .iter()
        .cloned()
        .collect();

    // Stored: every acknowledged id is in the log, once, in increasing seq order.
    let stored = stored_event_ids(&herald, &key).await;
    assert!(
        stored.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "seq increases"
    );
    let stored_ids: BTreeSet<String> = stored.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(stored_ids.len(), stored.len(), "each event is stored once");
    let lost_from_log: Vec<&String> = acknowledged.difference(&stored_ids).collect();
    assert!(
        lost_from_log.is_empty(),
        "acknowledged but not stored: {lost_from_log:?}"
    );

    // Delivered: wait, driven by arrivals, until every acknowledged id has come.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let missing = acknowledged
            .iter()
            .filter(|id| !arrivals.contains_key(*id))
            .count();
        if missing == 0 {
            break;
        }
        match tokio::time::timeout_at(deadline, receiver.next_within(Duration::from_secs(30))).await
        {
            Ok(Some(received)) => record(received, &mut arrivals),
            _ => {
                let lost: Vec<&String> = acknowledged
                    .iter()
                    .filter(|id| !arrivals.contains_key(*id))
                    .collect();
                panic!(
                    "{backend}, seed {seed}: {} acknowledged events never arrived, e.g. {:?}",
                    lost.len(),
                    &lost[..lost.len().min(20)]
                );
            }
        }
    }
    // Whatever else is still on its way (a redelivery) counts as a duplicate too.
    for received in receiver.drain() {
        record(received, &mut arrivals);
    }
    let n_deliveries: usize = arrivals.values().sum();
    let n_duplicates = n_deliveries - arrivals.len();
    println!(
        "crash test ({backend}): seed {seed}, {N_KILLS} SIGKILLs, {} events acknowledged, {} stored, 0 lost, \
         {n_deliveries} deliveries received, {n_duplicates} duplicates, {:.1} s",
        acknowledged.len(),
        stored.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        arrivals.keys().all(|id| stored_ids.contains(id)),
        "only stored events are delivered"
    );
}
